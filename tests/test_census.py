"""A small reliability census in CI (tests/census.py; docs/reliability.md has a larger one):
fuzzed label files, CSV and Parquet tables, special paths, bad numbers, full disks, kill -9
and rerun, two jobs on one output, killed parents. Nothing may end in a traceback, a hang, a
silent loss, a wrong exit code or a resume mismatch."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

import census  # noqa: E402  (tests/ is on sys.path)


@pytest.mark.slow
def test_census_finds_no_failure():
    tally = census.census(examples=12, n_kills=2, seed=1)
    counts = {k: dict(c) for k, c in tally.counts.items()}
    assert tally.bad() == 0, "\n".join(tally.failures) + f"\n{counts}"
    tried = sum(sum(c.values()) for c in tally.counts.values())
    assert tried >= 120 and sum(c["clean error"] for c in tally.counts.values()) >= 80, counts
