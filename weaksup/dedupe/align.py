"""Temporal alignment of the frame matches between one source and one target video.

Single frame matches are weak evidence: natural scenes repeat looks, and a Hamming
radius of a few bits lets unrelated frames meet now and then. A copy, though, shows up
as many matches on one line ``j = speed * i + offset`` in the (source frame i, target
frame j) plane. So the matches vote, Hough style, for (speed, offset): speeds on a grid
over 0.9..1.1 (re-timed copies, 24 vs 25 fps conversions) and offsets in frames, each
vote counting within +-``tolerance`` frames. A source frame that matches many target
frames (a static shot) spreads one vote over them, so a still frame cannot outvote
motion; with match distances given, a frame votes only through its closest matches. The
winner is refined by a least-squares fit of its inliers (a long copy at a
speed between grid points drifts off a grid line) and its inliers are recounted.

Coverage is measured on each side from the inlier frames: they are grouped into runs
(split where more than ``max_gap`` informative frames pass without a match) and
neighbouring runs are merged while the merged span stays dense; a run covers its span,
from first to last matched frame, when at least ``min_density`` of the informative
frames in it matched. Spans are counted in frames, flat ones included, so a fade or a
black frame inside a copy does not lower its overlap, while scattered lucky matches
(single frames, sparse spans) cover nothing. ``overlap_source`` is the covered part of
the source's length, the paper's measure. :meth:`Alignment.consistent` tells a copy (its
matches walk along the target) from look-alike footage (a blob of source frames meeting
a few target frames).

Both videos' codes are at the same fps (frame k at k / fps seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AlignConfig:
    """How matches vote and how coverage is counted (frames at the codes' fps)."""

    tolerance: int = 2  # frames a match may sit off the alignment line
    min_speed: float = 0.9
    max_speed: float = 1.1
    speed_step: float = 0.01
    min_density: float = 0.3  # matched / informative frames for a span to count as covered
    max_gap: int = 16  # informative frames without a match that split a run (1 s at 16 fps)
    min_run: int = 2  # matched frames for a run to cover anything
    min_span_ratio: float = 0.8  # see Alignment.span_ratio

    def speeds(self) -> np.ndarray:
        """The speed grid, nearest to 1.0 first (ties in the vote go to the plainer speed)."""
        n = int(round((self.max_speed - self.min_speed) / self.speed_step))
        grid = np.round(self.min_speed + self.speed_step * np.arange(n + 1), 6)
        if not np.any(np.isclose(grid, 1.0)) and self.min_speed <= 1.0 <= self.max_speed:
            grid = np.append(grid, 1.0)
        return grid[np.argsort(np.abs(grid - 1.0), kind="stable")]


@dataclass(frozen=True)
class Alignment:
    """The best alignment of a source and a target: ``target frame = speed * source frame + offset``."""

    matched_frames: int  # distinct source frames on the alignment
    overlap_source: float  # percent of the source's length covered
    overlap_target: float  # percent of the target's length covered
    offset_s: float  # target time minus source time at the first matched source frame
    speed: float
    source_first: int  # first and last matched source frame
    source_last: int
    target_first: int
    target_last: int
    target_frames: int  # distinct target frames on the alignment
    intercept: float = 0.0  # the line's offset in frames: target frame = speed * source frame + intercept

    @property
    def span_ratio(self) -> float:
        """Target span of the matched frames over the source span times the speed (~1 for a copy).

        Each source frame pairs with its target frame nearest the line, so a copy (even of
        a still shot, whose frames all look alike) walks along the target at ``speed``
        frames per source frame. Look-alike footage that is no copy (a slow scene resembling
        another one) makes a blob instead: many source frames meeting a few target frames.
        On the dedupe quality benchmark every true copy scored >= 0.96 and the one
        look-alike that aligned 0.69.
        """
        source_span = self.source_last - self.source_first + 1
        return (self.target_last - self.target_first + 1) / max(self.speed * source_span, 1e-9)

    def consistent(self, config: "AlignConfig") -> bool:
        """Whether the matches walk the target like a copy (see :attr:`span_ratio`)."""
        return self.span_ratio >= config.min_span_ratio


def _covered(frames: np.ndarray, n_frames: int, informative: np.ndarray | None, cfg: AlignConfig) -> int:
    """Frames of a video covered by dense runs of its matched ``frames`` (sorted, distinct)."""
    if not len(frames):
        return 0
    inf = np.ones(n_frames, bool) if informative is None else np.asarray(informative, bool)
    before = np.concatenate(([0], np.cumsum(inf)))  # informative frames before frame k

    def informative_in(first: int, last: int) -> int:
        return max(int(before[last + 1] - before[first]), 1)

    # informative frames strictly between consecutive matched frames
    between = before[frames[1:]] - before[frames[:-1] + 1]
    cuts = np.flatnonzero(between > cfg.max_gap) + 1
    bounds = np.concatenate(([0], cuts, [len(frames)]))
    runs = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]  # [a, b) into frames

    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged:
            pa, _ = merged[-1]
            if (b - pa) / informative_in(int(frames[pa]), int(frames[b - 1])) >= cfg.min_density:
                merged[-1] = (pa, b)
                continue
        merged.append((a, b))

    covered = 0
    for a, b in merged:
        first, last = int(frames[a]), int(frames[b - 1])
        if b - a >= cfg.min_run and (b - a) / informative_in(first, last) >= cfg.min_density:
            covered += last - first + 1
    return covered


def _inliers(src: np.ndarray, tgt: np.ndarray, speed: float, offset: float, tol: float) -> np.ndarray:
    return np.abs(tgt - (speed * src + offset)) <= tol + 0.5


def _per_source(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct source frames and the mean target frame each matched (one point per frame for a fit)."""
    frames, inverse, counts = np.unique(src, return_inverse=True, return_counts=True)
    return frames, np.bincount(inverse, weights=tgt) / counts


def _informative_matches(
    source_frames: np.ndarray,
    target_frames: np.ndarray,
    distances: np.ndarray | None,
    source_informative: np.ndarray | None,
    target_informative: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matches as int64 arrays, minus those on a flat frame of either side (they never vote)."""
    src = np.asarray(source_frames, np.int64)
    tgt = np.asarray(target_frames, np.int64)
    dist = np.zeros(len(src), np.int64) if distances is None else np.asarray(distances, np.int64)
    keep = np.ones(len(src), bool)
    if source_informative is not None:
        keep &= np.asarray(source_informative, bool)[src]
    if target_informative is not None:
        keep &= np.asarray(target_informative, bool)[tgt]
    return src[keep], tgt[keep], dist[keep]


def _voters(src: np.ndarray, tgt: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each source frame's closest matches, sharing one vote: a still shot cannot outvote motion."""
    frames, inverse = np.unique(src, return_inverse=True)
    closest = np.full(len(frames), np.iinfo(np.int64).max)
    np.minimum.at(closest, inverse, dist)
    voter = dist == closest[inverse]
    degree = np.bincount(inverse[voter], minlength=len(frames))
    return src[voter], tgt[voter], 1.0 / degree[inverse[voter]]


def _vote(v_src: np.ndarray, v_tgt: np.ndarray, weight: np.ndarray, config: AlignConfig) -> tuple[float, float]:
    """The (speed, offset) line with the most votes within +-tolerance frames, Hough style."""
    tol = config.tolerance
    speeds = config.speeds()
    lines = v_tgt[None, :] - speeds[:, None] * v_src[None, :]  # offset voted for, per speed
    bins = np.rint(lines).astype(np.int64)
    low = int(bins.min())
    width = int(bins.max()) - low + 1
    flat = (np.arange(len(speeds))[:, None] * width + (bins - low)).ravel()
    hist = np.bincount(flat, weights=np.broadcast_to(weight, bins.shape).ravel(), minlength=len(speeds) * width)
    hist = hist.reshape(len(speeds), width)
    # votes within +-tol of each offset: window sums from a cumulative sum
    cum = np.cumsum(np.pad(hist, ((0, 0), (tol + 1, tol))), axis=1)
    window = cum[:, 2 * tol + 1 :] - cum[:, :width]
    window = np.round(window, 6)  # float noise must not break ties against speed 1.0
    best = window.reshape(-1).argmax()  # first maximum: the speed nearest 1.0 wins ties
    s_idx, b_idx = divmod(int(best), width)
    speed = float(speeds[s_idx])
    near = np.abs(bins[s_idx] - (b_idx + low)) <= tol
    offset = float(np.average(lines[s_idx][near], weights=weight[near]))  # centre of the winning window
    return speed, offset


def _refine(
    src: np.ndarray,
    tgt: np.ndarray,
    v_src: np.ndarray,
    v_tgt: np.ndarray,
    speed: float,
    offset: float,
    config: AlignConfig,
) -> tuple[float, float, np.ndarray]:
    """Least-squares refit of an off-grid speed, kept only if it gains source frames; (speed, offset, inliers)."""
    tol = config.tolerance
    inl = _inliers(src, tgt, speed, offset, tol)
    for _ in range(2):
        fit = _inliers(v_src, v_tgt, speed, offset, tol)
        s_fit, t_mean = _per_source(v_src[fit], v_tgt[fit])
        if len(s_fit) < 3:
            break
        slope, intercept = np.polyfit(s_fit, t_mean, 1)
        if not config.min_speed - config.speed_step <= slope <= config.max_speed + config.speed_step:
            break
        refit = _inliers(src, tgt, slope, intercept, tol)
        if len(np.unique(src[refit])) <= len(np.unique(src[inl])):
            break
        speed, offset, inl = float(slope), float(intercept), refit
    return speed, offset, inl


def _nearest_pairs(src: np.ndarray, tgt: np.ndarray, speed: float, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Distinct source frames, and the target frames they pair with: each its one nearest the line.

    The target side then covers the mapped span, not the +-tol halo of near-identical
    neighbouring frames.
    """
    nearest = np.lexsort((np.abs(tgt - (speed * src + offset)), src))
    src, tgt = src[nearest], tgt[nearest]
    lead = np.concatenate(([True], src[1:] != src[:-1]))
    return src[lead], np.unique(tgt[lead])


def align(
    source_frames: np.ndarray,
    target_frames: np.ndarray,
    *,
    n_source: int,
    n_target: int,
    fps: float,
    distances: np.ndarray | None = None,
    source_informative: np.ndarray | None = None,
    target_informative: np.ndarray | None = None,
    config: AlignConfig = AlignConfig(),
) -> Alignment | None:
    """Best alignment of frame matches (``source_frames[k]`` matched ``target_frames[k]``).

    With ``distances`` (Hamming bits of each match) a source frame votes only through its
    closest matches: in slow footage a frame also matches its neighbours' codes a few bits
    further off, and that halo would otherwise pull the line. Matches on a flat
    (non-informative) frame of either side are dropped: they never vote. Returns None
    when no match is left.
    """
    src, tgt, dist = _informative_matches(
        source_frames, target_frames, distances, source_informative, target_informative
    )
    if not len(src):
        return None
    v_src, v_tgt, weight = _voters(src, tgt, dist)
    speed, offset = _vote(v_src, v_tgt, weight, config)
    speed, offset, inl = _refine(src, tgt, v_src, v_tgt, speed, offset, config)
    # a source frame whose place on the line falls outside the target is a neighbour's halo
    # (the frame just before a copy starts looks like its first frame), not part of the copy
    inl &= (speed * src + offset >= -0.5) & (speed * src + offset <= n_target - 0.5)
    if not inl.any():
        return None
    s_in, t_in = _nearest_pairs(src[inl], tgt[inl], speed, offset)
    first = int(s_in[0])
    offset_frames = round(speed * first + offset - first)
    return Alignment(
        matched_frames=len(s_in),
        overlap_source=100.0 * _covered(s_in, n_source, source_informative, config) / max(n_source, 1),
        overlap_target=100.0 * _covered(t_in, n_target, target_informative, config) / max(n_target, 1),
        offset_s=offset_frames / fps,
        speed=round(speed, 4),
        source_first=first,
        source_last=int(s_in[-1]),
        target_first=int(t_in[0]),
        target_last=int(t_in[-1]),
        target_frames=len(t_in),
        intercept=float(offset),
    )
