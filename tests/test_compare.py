"""weaksup.eval.compare: paired bootstrap intervals over test videos and seeds."""

import numpy as np
import pytest

from weaksup.errors import InputError
from weaksup.eval.compare import bootstrap_accuracy, compare_arms


def test_a_clear_gain_excludes_zero_and_a_tie_does_not():
    rng = np.random.default_rng(0)
    good = (rng.random((3, 300)) < 0.7).astype(int)
    bad = (rng.random((3, 300)) < 0.3).astype(int)
    cmp = compare_arms(good, bad, chance=0.25)
    assert 0.25 < cmp.diff.low < cmp.diff.mean < cmp.diff.high and cmp.diff.excludes_zero()
    assert cmp.a.low < cmp.a.mean < cmp.a.high and cmp.b.low < cmp.b.mean < cmp.b.high
    assert cmp.to_dict()["clear"] and cmp.to_dict()["chance"] == 0.25
    same = compare_arms(good, good)
    assert same.diff.mean == 0 and same.diff.low == 0 and same.diff.high == 0 and not same.diff.excludes_zero()
    noise = compare_arms((rng.random((3, 40)) < 0.5).astype(int), (rng.random((3, 40)) < 0.5).astype(int))
    assert noise.diff.low < 0 < noise.diff.high  # 40 videos cannot separate two coin flips


def test_pairing_makes_a_small_consistent_gain_visible():
    rng = np.random.default_rng(1)
    base = (rng.random((2, 400)) < 0.5).astype(int)
    better = base.copy()
    better[:, :40] = 1  # 40 more videos right, every seed
    paired = compare_arms(better, base)
    assert paired.diff.low > 0
    unpaired_width = 2 * 1.96 * np.sqrt(2 * 0.25 / 800)
    assert paired.diff.high - paired.diff.low < unpaired_width


def test_interval_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(2)
    covered = 0
    for k in range(60):
        m = (rng.random((2, 150)) < 0.6).astype(int)
        iv = bootstrap_accuracy(m, resamples=500, seed=k)
        covered += iv.low <= 0.6 <= iv.high
    assert covered >= 50


def test_deterministic_and_checked():
    m = np.eye(4, 10, dtype=int)
    assert compare_arms(m, 1 - m, seed=3) == compare_arms(m, 1 - m, seed=3)
    with pytest.raises(InputError, match="same seeds"):
        compare_arms(np.ones((2, 5)), np.ones((3, 5)))
    with pytest.raises(InputError, match="0 or 1"):
        compare_arms(np.full((1, 5), 0.5), np.ones((1, 5)))
    with pytest.raises(InputError, match="matrix"):
        compare_arms(np.ones((1, 0)), np.ones((1, 0)))
    one_seed = compare_arms(np.ones(5, int), np.zeros(5, int))
    assert one_seed.seeds == 1 and one_seed.diff.mean == 1
