"""Thin Typer front end: each command parses options and calls one library function."""
