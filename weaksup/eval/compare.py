"""Comparing two evaluation arms honestly: accuracy with a 95% bootstrap interval, and the
interval of their difference, over test videos and seeds.

One run on a few dozen test videos decides nothing (one video is several points, and a
second seed can move a result by ten). An arm here is a 0/1 matrix ``correct[seed, video]``:
each row one training seed's video-level hits on the same test videos. The bootstrap
resamples test videos and seeds with replacement, *paired* between the arms (the same
videos and the same seed indices on both sides, as the arms were run), and reports the
2.5 and 97.5 percentiles. A difference is "clear" when its interval excludes 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from weaksup.errors import InputError

DEFAULT_RESAMPLES = 4000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% bootstrap interval (fractions, not percent)."""

    mean: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}

    def percent(self, signed: bool = False) -> str:
        """``41.7% [35.0, 48.3]`` (``+6.3 points [1.0, 11.7]`` when ``signed``)."""
        if signed:
            return f"{100 * self.mean:+.1f} points [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"
        return f"{100 * self.mean:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]"


@dataclass(frozen=True)
class Comparison:
    """Arm A against arm B on the same test videos: each arm's accuracy and A - B."""

    a: Interval
    b: Interval
    diff: Interval
    videos: int
    seeds: int
    resamples: int
    chance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "a_minus_b": self.diff.to_dict(),
            "clear": self.diff.excludes_zero(),
            "videos": self.videos,
            "seeds": self.seeds,
            "resamples": self.resamples,
        }
        if self.chance is not None:
            out["chance"] = round(self.chance, 4)
        return out


def _as_matrix(correct: Any, name: str) -> np.ndarray:
    m = np.asarray(correct, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[1] == 0 or m.shape[0] == 0:
        raise InputError(f"{name}: need a (seeds, videos) matrix of 0/1 hits, got shape {m.shape}")
    if not np.isin(m, (0.0, 1.0)).all():
        raise InputError(f"{name}: hits must be 0 or 1")
    return m


def hits_matrix(hits: list[dict[str, int]], videos: list[str] | None = None) -> np.ndarray:
    """(seeds, videos) 0/1 hits from one {video_id: hit} per seed (``eval.report.read_predictions``),
    over ``videos`` or the videos every seed scored, in sorted order."""
    common = videos if videos is not None else sorted(set.intersection(*(set(h) for h in hits)))
    return np.array([[h[v] for v in common] for h in hits])


def bootstrap_accuracy(correct: Any, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Interval:
    """Accuracy of one arm with its 95% interval (videos and seeds resampled)."""
    m = _as_matrix(correct, "correct")
    return compare_arms(m, m, resamples=resamples, seed=seed).a


def compare_arms(
    correct_a: Any, correct_b: Any, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, chance: float | None = None
) -> Comparison:
    """Paired bootstrap of arm A against arm B over test videos and seeds.

    ``correct_a`` and ``correct_b`` are (seeds, videos) 0/1 matrices over the same test
    videos in the same order, row ``s`` of each from training seed ``s`` (a 1-D array is
    one seed). Each resample draws videos with replacement and seed indices with
    replacement, the same draw for both arms.
    """
    a, b = _as_matrix(correct_a, "arm A"), _as_matrix(correct_b, "arm B")
    if a.shape != b.shape:
        raise InputError(f"the two arms must have the same seeds and test videos, got shapes {a.shape} and {b.shape}")
    if resamples < 100:
        raise InputError(f"resamples must be at least 100, got {resamples}")
    n_seeds, n_videos = a.shape
    rng = np.random.default_rng(seed)
    # accumulate over chunks so memory stays small for large test sets
    stats = np.empty((resamples, 2))
    chunk = max(1, min(resamples, 2_000_000 // max(1, n_videos * n_seeds)))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        vid = rng.integers(0, n_videos, size=(k, n_videos))
        sd = rng.integers(0, n_seeds, size=(k, n_seeds))
        # mean over drawn seeds of mean over drawn videos
        pa = a[sd[:, :, None], vid[:, None, :]].mean(axis=(1, 2))
        pb = b[sd[:, :, None], vid[:, None, :]].mean(axis=(1, 2))
        stats[start : start + k, 0], stats[start : start + k, 1] = pa, pb

    def interval(point: float, samples: np.ndarray) -> Interval:
        lo, hi = np.percentile(samples, [2.5, 97.5])
        return Interval(float(point), float(lo), float(hi))

    return Comparison(
        a=interval(a.mean(), stats[:, 0]),
        b=interval(b.mean(), stats[:, 1]),
        diff=interval(a.mean() - b.mean(), stats[:, 0] - stats[:, 1]),
        videos=n_videos,
        seeds=n_seeds,
        resamples=resamples,
        chance=chance,
    )
