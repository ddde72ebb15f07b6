"""Sub-sampling a manifest into pre-training subsets: random, tail-preserving and sqrt.

The paper (Ghadiyaram et al. 2019, Sec. 4.1.1) compares subsets of one labelled pool at
equal size: *random* subsets, *tail-preserving* ones that keep every video of tail labels
and sub-sample only head labels, and square-root sampling (Mahajan et al. 2018) that draws
a label with probability proportional to sqrt(count). Every strategy here is a **draw
order** over the manifest: the subset of size N is the first N draws, so the subsets of a
series (``--sizes``) are nested, and a bigger run never reshuffles a smaller one.

All randomness comes from :mod:`weaksup.hashing` keyed by ``(seed, video_id)`` (and, for
sqrt with replacement, a numpy Generator seeded by ``seed`` that draws from labels and
within-label ranks, never from row positions), so the same seed gives the same subset
whatever the manifest's row order. The work is vectorised numpy over two columns
(``video_id``, ``label_id``); the full rows are read only for the videos that are drawn,
row group by row group, so memory follows those two columns and the drawn rows, not the
whole table (``--weights-only`` streams the manifest through).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup.errors import InputError
from weaksup.hashing import stable_hash64, stable_uniform
from weaksup.outputs import atomic_path, commit_output, output_set, require_local_output, side_path
from weaksup.tables import check_table, conform, load_schema, open_parquet, read_table, write_json, write_table

Strategy = Literal["random", "tail-preserving", "sqrt"]
STRATEGIES: tuple[str, ...] = ("random", "tail-preserving", "sqrt")

HEAD_LABEL_FRACTION = 0.2
"""Head labels = the most frequent 20% of the manifest's labels (by assigned videos);
summaries report the share of a subset's videos that falls on them."""

_DRAW_CHUNK = 1 << 22  # rows per Generator call for sqrt with replacement (bounded temporaries)


@dataclass(frozen=True)
class SampleConfig:
    """One ``weaksup sample`` job.

    ``sizes`` holds one size (``--size``: ``out`` is a Parquet file) or a series
    (``series=True``, ``--sizes``: ``out`` is a directory of ``{strategy}_{N}.parquet``).
    ``weights_only`` writes the whole manifest (in its own row order) with sqrt weights and
    each video's sqrt draw position, for a weighted sampler, instead of a subset.
    """

    manifest: Path
    strategy: str
    out: Path
    sizes: tuple[int, ...] = ()
    series: bool = False
    seed: int = 0
    replacement: bool = False
    weights_only: bool = False


# --------------------------------------------------------------------------- parsing


_SIZE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_size(text: str) -> int:
    """Parse one subset size: ``100000``, ``1e5``, ``2.5e6`` or ``1_000_000``; must be a whole number > 0."""
    raw = text.strip().replace("_", "")
    if not _SIZE.fullmatch(raw):
        raise InputError(f"size {text.strip()!r} is not a number (examples: 100000, 1e5, 2.5e6)")
    value = float(raw)
    if not math.isfinite(value) or value != int(value):
        raise InputError(f"size {text.strip()!r} is not a whole number of videos")
    if value <= 0:
        raise InputError(f"size {text.strip()!r} must be at least 1")
    return int(value)


def parse_sizes(text: str) -> tuple[int, ...]:
    """Parse a comma list of sizes (``1e5,1e6``) into ascending unique ints."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise InputError("--sizes needs at least one size, e.g. --sizes 1e5,1e6")
    return tuple(sorted({parse_size(p) for p in parts}))


# --------------------------------------------------------------------------- manifest access


def check_manifest_columns(path: Path) -> pa.Schema:
    """Check the manifest's columns and types from its footer alone (no data read)."""
    path = Path(path)
    schema = open_parquet(path, "manifest .parquet").schema_arrow  # missing, a FIFO, not Parquet: one line
    check_table(schema.empty_table(), load_schema("manifest"), str(path))
    return schema


def dense_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids present (ascending), each value's index into them, and the count of each id.

    Label ids are normally dense from 0, so a bincount (O(n)) does it; arbitrary ids fall
    back to a sort.
    """
    values = np.asarray(values)
    if values.size == 0:
        return values[:0].astype(np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi < 4 * values.size + (1 << 16):
        bins = np.bincount(values, minlength=hi + 1)
        ids = np.flatnonzero(bins)
        remap = np.zeros(hi + 1, np.int32)  # 4 bytes a row on 65M rows
        remap[ids] = np.arange(ids.size)
        return ids, remap[values], bins[ids]
    ids, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return ids, inverse.reshape(-1), counts


def head_label_mask(label_ids: np.ndarray, counts: np.ndarray, fraction: float = HEAD_LABEL_FRACTION) -> np.ndarray:
    """True for the ``fraction`` most frequent labels (ties broken by label id, so it is deterministic)."""
    n_head = int(math.ceil(fraction * counts.size)) if counts.size else 0
    by_count = np.lexsort((label_ids, -counts.astype(np.int64)))
    mask = np.zeros(counts.size, bool)
    mask[by_count[:n_head]] = True
    return mask


@dataclass(frozen=True)
class ManifestIndex:
    """The two columns every strategy needs, arranged once.

    ``order`` lists rows by priority (the seeded hash of video_id); ``grouped`` lists rows
    by label, and within a label by priority (label ``j`` owns
    ``grouped[label_start[j]:label_start[j + 1]]``); ``rank`` is each row's position in
    its label. None of these depend on the manifest's row order. The per-label
    arrangement is computed on first use (random sampling never needs it).
    """

    video_id: pa.ChunkedArray
    label_ids: np.ndarray  # label ids present, ascending
    label_index: np.ndarray  # per row: index into label_ids
    counts: np.ndarray  # per label: assigned videos
    order: np.ndarray

    @property
    def n_videos(self) -> int:
        return int(self.label_index.size)

    @cached_property
    def grouped(self) -> np.ndarray:
        # Radix sort (stable, O(n)) on 16-bit label indices keeps the priority order within a label.
        small = np.uint16 if self.counts.size <= (1 << 16) else np.int64
        return self.order[np.argsort(self.label_index[self.order].astype(small), kind="stable")]

    @cached_property
    def label_start(self) -> np.ndarray:
        start = np.zeros(self.counts.size + 1, np.int64)
        np.cumsum(self.counts, out=start[1:])
        return start

    @cached_property
    def rank(self) -> np.ndarray:
        rank = np.empty(self.n_videos, np.int32 if self.n_videos < 2**31 else np.int64)
        rank[self.grouped] = np.arange(self.n_videos) - np.repeat(self.label_start[:-1], self.counts)
        return rank


def _priority_order(video_id: pa.ChunkedArray, seed: int, path: Path) -> np.ndarray:
    """Rows sorted by priority; equal hashes are duplicate ids (rejected) or, once in ~1e4
    65M-row manifests, a true collision, broken by a second hash so row order never matters."""
    priority = stable_hash64(video_id, seed, "sample")
    order = np.argsort(priority)  # keys unique (checked below), so any sort gives the same order
    sorted_priority = priority[order]
    tied = np.flatnonzero(sorted_priority[1:] == sorted_priority[:-1])
    if tied.size:
        left = video_id.take(pa.array(order[tied]))
        right = video_id.take(pa.array(order[tied + 1]))
        same = np.asarray(pc.equal(left, right).to_numpy(zero_copy_only=False), bool)
        if same.any():
            example = left[int(np.flatnonzero(same)[0])].as_py()
            raise InputError(
                f"{path}: {int(same.sum())} duplicate video_id value(s), e.g. {example!r}; a manifest holds each "
                f"video once"
            )
        order = np.lexsort((stable_hash64(video_id, seed, "sample-tiebreak"), priority))
    return order


def index_manifest(path: Path, seed: int) -> ManifestIndex:
    """Read ``video_id`` and ``label_id`` and build the draw-independent index."""
    check_manifest_columns(path)
    table = read_table("manifest", path, columns=["video_id", "label_id"])
    if table.num_rows == 0:
        raise InputError(f"{path}: manifest has no rows")
    video_id = table.column("video_id")
    label_ids, label_index, counts = dense_ids(table.column("label_id").to_numpy())
    return ManifestIndex(video_id, label_ids, label_index, counts, _priority_order(video_id, seed, path))


# --------------------------------------------------------------------------- strategies


def tail_preserving_cap(counts: np.ndarray, size: int) -> int:
    """The largest k with sum_l min(c_l, k) <= size: every label keeps up to k videos."""
    sorted_counts = np.sort(counts)
    prefix = np.concatenate(([0], np.cumsum(sorted_counts)))

    def kept(k: int) -> int:
        below = int(np.searchsorted(sorted_counts, k, side="left"))  # labels with c < k keep all
        return int(prefix[below]) + k * (sorted_counts.size - below)

    lo, hi = 0, int(sorted_counts[-1]) if sorted_counts.size else 0
    if kept(hi) <= size:
        return hi
    while lo < hi:  # invariant: kept(lo) <= size < kept(hi + 1)
        mid = (lo + hi + 1) // 2
        if kept(mid) <= size:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _smallest_first(keys: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` smallest keys in ascending key order (partition first when n is small)."""
    if n < keys.size // 4:
        part = np.argpartition(keys, n - 1)[:n]
        return part[np.lexsort((part, keys[part]))]
    return np.argsort(keys, kind="stable")[:n]  # ties by position, as above: any n gives a prefix of one order


def random_draws(index: ManifestIndex, n: int) -> np.ndarray:
    """Uniform without replacement: the n lowest priorities."""
    return index.order[:n]


def tail_preserving_draws(index: ManifestIndex, n: int) -> np.ndarray:
    """Round-robin over labels by within-label rank, ties by priority.

    The first N draws are every label's min(c, k) lowest-priority videos plus the
    lowest-priority rank-k videos of labels with more than k: exactly the tail-preserving
    subset, and nested in N.
    """
    k = tail_preserving_cap(index.counts, n)
    candidates = index.order[index.rank[index.order] <= k]  # priority order
    ranks = index.rank[candidates]
    ranks = ranks.astype(np.uint16) if k < (1 << 16) else ranks
    return candidates[np.argsort(ranks, kind="stable")[:n]]


def sqrt_weights(counts: np.ndarray) -> np.ndarray:
    """Per-video weight of each label, 1/sqrt(c), normalised to mean 1 over the manifest.

    A label's total weight is then c * w = N sqrt(c) / sum sqrt(c): proportional to sqrt(count).
    """
    counts = counts.astype(np.float64)
    return (counts.sum() / np.sqrt(counts).sum()) / np.sqrt(counts)


def sqrt_draws(index: ManifestIndex, n: int, seed: int) -> np.ndarray:
    """Square-root sampling without replacement, as a nested draw order.

    Each label emits its videos in priority order at the jump times of a Poisson process
    of rate sqrt(c_l) (Exp(1) gaps from a second hash of video_id, divided by the rate).
    Merging all labels by time draws, at each step, a non-exhausted label with probability
    proportional to sqrt(count), then its next video.
    """
    gaps = -np.log1p(-stable_uniform(index.video_id, seed, "sqrt-gap"))[index.grouped]
    cum = np.cumsum(gaps)
    before = np.concatenate(([0.0], cum))[index.label_start[:-1]]
    rate = np.sqrt(index.counts.astype(np.float64))
    times = (cum - np.repeat(before, index.counts)) / np.repeat(rate, index.counts)
    return index.grouped[_smallest_first(times, n)]


def _generator(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & (2**64 - 1), int(seed < 0), stream])))


def sqrt_draws_with_replacement(index: ManifestIndex, n: int, seed: int) -> np.ndarray:
    """Square-root sampling with replacement: a label ∝ sqrt(count), then a uniform video of it.

    Labels and within-label positions come from two separate generators consumed one
    double per draw, so the first N draws do not depend on how many are drawn in total.
    """
    rate = np.sqrt(index.counts.astype(np.float64))
    cdf = np.cumsum(rate / rate.sum())
    cdf[-1] = 1.0
    label_rng, video_rng = _generator(seed, 1), _generator(seed, 2)
    rows = np.empty(n, np.int64)
    for start in range(0, n, _DRAW_CHUNK):
        m = min(_DRAW_CHUNK, n - start)
        label = np.searchsorted(cdf, label_rng.random(m), side="right").clip(max=cdf.size - 1)
        within = np.minimum((video_rng.random(m) * index.counts[label]).astype(np.int64), index.counts[label] - 1)
        rows[start : start + m] = index.grouped[index.label_start[label] + within]
    return rows


def draw_rows(index: ManifestIndex, strategy: str, n: int, seed: int, replacement: bool) -> np.ndarray:
    """The first ``n`` rows of ``strategy``'s draw order."""
    if strategy == "random":
        return random_draws(index, n)
    if strategy == "tail-preserving":
        return tail_preserving_draws(index, n)
    if replacement:
        return sqrt_draws_with_replacement(index, n, seed)
    return sqrt_draws(index, n, seed)


# --------------------------------------------------------------------------- output


def gather_rows(path: Path, rows: np.ndarray, n_videos: int) -> pa.Table:
    """All columns of manifest ``rows``, in that order (repeats allowed).

    Reads one row group at a time and keeps only the rows drawn from it; the final
    reordering goes column by column, so the peak is about one copy of the drawn rows.
    """
    parquet = open_parquet(path, "manifest .parquet")
    drawn = np.zeros(n_videos, bool)
    drawn[rows] = True
    wanted = np.flatnonzero(drawn)  # ascending file positions
    position_among_drawn = (np.cumsum(drawn) - 1)[rows]
    del drawn
    parts: list[pa.Table] = []
    start = 0
    for group in range(parquet.num_row_groups):
        end = start + parquet.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(wanted, [start, end])
        if hi > lo:
            parts.append(parquet.read_row_group(group).take(pa.array(wanted[lo:hi] - start)))
        start = end
    picked = pa.concat_tables(parts).combine_chunks()
    del parts
    check_table(picked, load_schema("manifest"), str(path))  # nulls in columns not read before
    positions = pa.array(position_among_drawn)
    columns: dict[str, pa.ChunkedArray] = {}
    for name in picked.column_names:
        columns[name] = picked.column(name).take(positions)
        picked = picked.drop_columns([name])  # free each source column once reordered
    return pa.table(columns)


def write_weighted_manifest(path: Path, out: Path, draw_position: np.ndarray, weights: np.ndarray) -> None:
    """Stream the whole manifest, row group by row group, into ``out`` with its draw position and weight.

    Rows keep the manifest's order (no reshuffle of a 65M-row table); ``draw`` still gives
    each video's place in the sqrt draw order. Written to a temporary name, then renamed.
    """
    parquet = open_parquet(path, "manifest .parquet")
    manifest_schema, sample_schema = load_schema("manifest"), load_schema("sample")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(out)
    writer: pq.ParquetWriter | None = None
    start = 0
    committed = False
    try:
        for group in range(parquet.num_row_groups):
            part = parquet.read_row_group(group)
            end = start + part.num_rows
            check_table(part, manifest_schema, str(path))
            part = part.append_column("draw", pa.array(draw_position[start:end], pa.int64()))
            part = conform(
                part.append_column("sample_weight", pa.array(weights[start:end], pa.float64())), sample_schema
            )
            if writer is None:
                writer = pq.ParquetWriter(tmp, part.schema, compression="zstd")
            writer.write_table(part)
            start = end
        if writer is not None:
            writer.close()
            writer = None
            commit_output(tmp, out)
            committed = True
    finally:
        if writer is not None:
            writer.close()
        if not committed and tmp.exists():
            tmp.unlink()


def _size_summary(index: ManifestIndex, rows: np.ndarray, head: np.ndarray, replacement: bool) -> dict[str, Any]:
    per_label = np.bincount(index.label_index[rows], minlength=index.counts.size)
    present = per_label[per_label > 0]
    unique = rows.size
    if replacement:
        seen = np.zeros(index.n_videos, bool)
        seen[rows] = True
        unique = int(seen.sum())
    summary: dict[str, Any] = {
        "videos": int(rows.size),
        "unique_videos": int(unique),
        "labels": int(present.size),
        "min_per_label": int(present.min()) if present.size else 0,
        "median_per_label": float(np.median(present)) if present.size else 0.0,
        "max_per_label": int(present.max()) if present.size else 0,
        "head_share": float(per_label[head].sum() / max(rows.size, 1)),
    }
    summary["tail_share"] = 1.0 - summary["head_share"]
    return summary


def _validate(cfg: SampleConfig) -> None:
    if cfg.strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {cfg.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if cfg.series and cfg.out.exists() and not cfg.out.is_dir():
        raise InputError(f"{cfg.out}: exists and is not a directory (--sizes writes a directory)")
    if not cfg.series and cfg.out.is_dir():
        raise InputError(f"{cfg.out}: is a directory; --size and --weights-only write one .parquet file")
    if cfg.weights_only:
        if cfg.strategy != "sqrt":
            raise InputError(
                f"--weights-only needs --strategy sqrt (strategy {cfg.strategy!r} has no per-video weights)"
            )
        if cfg.sizes or cfg.series:
            raise InputError("--weights-only writes the whole manifest; drop --size/--sizes")
        if cfg.replacement:
            raise InputError("--replacement has no effect with --weights-only (the weighted sampler decides)")
        return
    if not cfg.sizes:
        raise InputError("give --size N or --sizes N1,N2,... (or --weights-only)")
    if len(cfg.sizes) > 1 and not cfg.series:
        raise InputError("several sizes need series=True (--sizes), which writes a directory")
    bad = [n for n in cfg.sizes if n <= 0]
    if bad:
        raise InputError(f"size {bad[0]} must be at least 1")
    if cfg.replacement and cfg.strategy != "sqrt":
        raise InputError(f"--replacement is only for --strategy sqrt, not {cfg.strategy!r}")


def summary_path(cfg: SampleConfig) -> Path:
    """Where the job's summary goes: OUT/summary.json for a series, else OUT-stem.summary.json beside OUT."""
    return cfg.out / "summary.json" if cfg.series else side_path(cfg.out, ".summary.json", any_extension=True)


@output_set()  # the sample(s) and the summary: all or none
def sample_manifest(cfg: SampleConfig) -> dict[str, Any]:
    """Draw the subset(s) of ``cfg``, write them and their summary, and return the summary."""
    require_local_output(cfg.out)
    _validate(cfg)
    index = index_manifest(cfg.manifest, cfg.seed)
    n_videos = index.n_videos
    sizes = (n_videos,) if cfg.weights_only else tuple(sorted(set(cfg.sizes)))
    if not cfg.replacement and sizes[-1] > n_videos:
        raise InputError(
            f"size {sizes[-1]} is larger than the manifest ({n_videos} videos); use a smaller size"
            + (" or --replacement" if cfg.strategy == "sqrt" else "")
        )
    rows = draw_rows(index, cfg.strategy, sizes[-1], cfg.seed, cfg.replacement)
    label_weight = sqrt_weights(index.counts) if cfg.strategy == "sqrt" else None
    weights = label_weight[index.label_index[rows]] if label_weight is not None else None
    if cfg.weights_only:
        assert label_weight is not None  # _validate: weights only with sqrt
        draw_position = np.empty(n_videos, np.int64)
        draw_position[rows] = np.arange(n_videos)
        write_weighted_manifest(cfg.manifest, cfg.out, draw_position, label_weight[index.label_index])
    else:
        table = gather_rows(cfg.manifest, rows, n_videos)
        table = table.append_column("draw", pa.array(np.arange(rows.size, dtype=np.int64)))
        table = table.append_column(
            "sample_weight",
            pa.array(weights, pa.float64()) if weights is not None else pa.nulls(rows.size, pa.float64()),
        )

    head = head_label_mask(index.label_ids, index.counts)
    summary: dict[str, Any] = {
        "manifest": str(cfg.manifest),
        "strategy": cfg.strategy,
        "seed": cfg.seed,
        "replacement": cfg.replacement,
        "weights_only": cfg.weights_only,
        "manifest_videos": n_videos,
        "manifest_labels": int(index.counts.size),
        "head_labels": int(head.sum()),
        "manifest_head_share": float(index.counts[head].sum() / n_videos),
        "head_definition": f"the {HEAD_LABEL_FRACTION:.0%} most frequent labels of the manifest",
        "sizes": [],
    }
    for n in sizes:
        out = cfg.out / f"{cfg.strategy}_{n}.parquet" if cfg.series else cfg.out
        if not cfg.weights_only:
            write_table("sample", table.slice(0, n), out)
        entry = {"size": n, "path": str(out), **_size_summary(index, rows[:n], head, cfg.replacement)}
        if cfg.strategy == "tail-preserving":
            entry["per_label_cap_k"] = tail_preserving_cap(index.counts, n)
        summary["sizes"].append(entry)
    if weights is not None:
        summary["sample_weight_min"] = float(weights.min())
        summary["sample_weight_max"] = float(weights.max())
    summary["summary_path"] = str(summary_path(cfg))
    write_json(summary, summary_path(cfg))
    return summary


def terminal_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A flat one-screen view of :func:`sample_manifest`'s summary (one row per size)."""
    flat = {k: summary[k] for k in ("strategy", "seed", "manifest_videos", "manifest_labels", "manifest_head_share")}
    for entry in summary["sizes"]:
        line = (
            f"{entry['labels']} labels, per label {entry['min_per_label']}/{entry['median_per_label']:g}/"
            f"{entry['max_per_label']} (min/median/max), head share {entry['head_share']:.3f}"
        )
        if "per_label_cap_k" in entry:
            line += f", k={entry['per_label_cap_k']}"
        if entry["unique_videos"] != entry["videos"]:
            line += f", {entry['unique_videos']} unique"
        flat[f"n={entry['size']}"] = line
    flat["summary"] = summary["summary_path"]
    return flat


def sizes_from_options(size: str | None, sizes: str | None, weights_only: bool) -> tuple[tuple[int, ...], bool]:
    """Turn the CLI's --size / --sizes into (sizes, series); exactly one of them unless --weights-only."""
    if size is not None and sizes is not None:
        raise InputError("give either --size or --sizes, not both")
    if size is not None:
        return (parse_size(size),), False
    if sizes is not None:
        return parse_sizes(sizes), True
    if not weights_only:
        raise InputError("give --size N or --sizes N1,N2,... (or --weights-only)")
    return (), False
