"""Synthetic data for tests, benchmarks and the quickstart: tiny videos and web-video metadata."""
