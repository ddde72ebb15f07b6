"""Dedupe: remove from a training manifest the videos that overlap benchmark (target) videos.

Paper supp. A.2: every training (source) video is compared with every benchmark
(target) video on per-frame census codes at 16 fps; the overlap is the share of the
*source's* length that the target covers, and every flagged source is removed ("low
precision, high recall": ~20-29K of 65M). Here:

1. every informative code of every target, in its full, 10%- and 20%-crop variants, goes
   into one exact Hamming index (:class:`~weaksup.dedupe.search.HammingIndex`);
2. sources are queried in chunks (bounded memory): each informative code and its mirror
   (:func:`~weaksup.dedupe.census.mirror_codes`, for flipped copies) against the index at
   ``radius`` bits;
3. the frame matches are grouped per (source, target, variant, mirrored), groups with at
   least ``min_frames`` distinct source frames are aligned in time
   (:func:`~weaksup.dedupe.align.align`), and each (source, target) keeps its best group;
4. a pair is reported when its alignment holds ``matched_frames >= min_frames`` source frames
   and walks along the target like a copy does (``Alignment.span_ratio``: look-alike
   scenes make blobs, not lines), and the source is removed when
   ``overlap_source >= threshold``.

Defaults, and why:

* ``radius = 7`` bits: copies (re-encodes, WebM vs MP4, rescales) of the shared real videos
  sit at 0-3 bits from their original frame, while the nearest unrelated frame in 0.9M
  cross-video pairs was 12 bits away. 7 leaves room for harsher transcodes and is the
  largest radius the 4 x 16-bit index reaches with 17 probes per substring (8 needs 137).
* ``min_frames = 8``: half a second of frames on one alignment line; lucky single-frame
  matches (possible at 65M x 650K videos) do not line up for that long. This gate, with
  the alignment, is what keeps false positives out.
* ``threshold = 1%`` of the source: the paper removes aggressively (high recall), and
  benchmark clips are short (Something-Something 2-6 s, Kinetics 10 s) while training
  sources run up to minutes. At 5% a whole 2.6 s benchmark clip inside a 56 s source
  (4.7%) was kept (benchmarks/dedupe_quality.py); at 1% any aligned overlap of >= 0.6 s
  in an Instagram-length (<= 60 s) source is removed, so for such sources the decision
  rests on the ``min_frames`` evidence, and the threshold only spares long sources with a
  sliver of overlap (< 6 s of a 10 minute video). Those still appear in the report
  (``removed = false``); ``--threshold 0`` removes every reported pair.

Self-dedupe (``--self``, or targets that are the manifest or its own codes): each video is
matched against all the others (never itself, by video_id). The report holds both
directions of a pair, each with the usual meaning (the source's full codes against the
target's variant codes; the crop relation is not symmetric). Removal keeps one video of
each group of copies: videos are visited longest first (then in manifest order) and one
is removed when a video already kept covers at least ``threshold`` of it, read from
either direction's row (source -> kept: ``overlap_source``; kept -> source:
``overlap_target``). A report row's ``removed`` says its source was removed because of
that (kept) target.

Engines: fingerprinting (when codes are not given) runs as a bulk job, locally or on Ray
(:mod:`weaksup.bulk`). With ``engine="ray"`` the source search runs on Ray too
(:func:`scan_sources_ray`): the driver builds the target index once and puts it into the
object store; the source codes table is cut into blocks planned from its Parquet footer
(consecutive row groups of about ``block_rows`` rows, a larger row group sliced into at
most ``MAX_SLICES`` row ranges), and one Ray task per block reads its rows, runs the same
:func:`match_chunk` as the local search, and writes its pairs as a stamped part
(``OUT.parts/part-START-END.parquet``, atomic) beside the output. The stamp holds the
settings that change pairs, a digest of the target codes and a digest of the block's
rows, so a rerun after a failure redoes only the blocks without a matching part. The
driver then reads the parts (pairs are few) in table order and decides removals exactly
as the local engine does: the outputs are the same, file for file. Fingerprinting and
search stay two passes (the search needs every target fingerprinted first). Limits: every
node holds one copy of the index in its object store (workers map its arrays, they do
not copy them), linear in target frames; workers write the
parts beside ``OUT``, so on several machines ``OUT`` must be on storage they all mount;
a codes table of one row group gives at most ``MAX_SLICES`` tasks.

Outputs: the cleaned manifest (``OUT``: the manifest minus removed rows, same schema),
``OUT-stem.removed.parquet`` (removed manifest rows plus the overlap columns of their best
match), the report (schema ``overlaps``) and ``OUT-stem.summary.json``. Sources that could
not be fingerprinted (rejected, unfingerprintable) are kept and counted: with no codes
they can be matched with nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.blocks import PartStore
from weaksup.bulk import STAMP_KEY, StaleParts, make_stamp, parts_dir, read_stamp, row_digest, stale_reason
from weaksup.dedupe.align import AlignConfig, Alignment, align
from weaksup.dedupe.census import CODE_VERSION, hamming, mirror_codes
from weaksup.dedupe.search import HammingIndex
from weaksup.errors import InputError
from weaksup.outputs import atomic_output, output_set, require_local_output, separate_job, side_path
from weaksup.ray_engine import check_engine
from weaksup.tables import (
    RowGroupWriter,
    check_table,
    conform,
    load_schema,
    open_parquet,
    read_batches,
    read_table,
    write_json,
    write_table,
)

DEFAULT_RADIUS = 7
DEFAULT_MIN_FRAMES = 8
DEFAULT_THRESHOLD = 1.0
DEFAULT_FPS = 16.0
MAX_RADIUS = 15
VARIANTS = ("full", "crop10", "crop20")
VARIANT_COLUMNS = ("codes", "codes_crop10", "codes_crop20")
OVERLAP_COLUMNS = ("overlap_source", "overlap_target", "offset_s", "matched_frames", "mirrored", "variant")
DEFAULT_BLOCK_ROWS = 4096  # source codes rows per Ray search task (consecutive row groups)
MAX_SLICES = 16  # a larger row group is cut into at most this many row ranges (each task decodes up to its own)


@dataclass(frozen=True)
class DedupeConfig:
    """A dedupe run: the manifest, the targets, where the outputs go, and the match rules."""

    manifest: Path
    out: Path
    report: Path
    targets: Path | None = None  # codes table, or videos table (fingerprinted first); None with self_dedupe
    source_codes: Path | None = None  # codes of the manifest's videos; fingerprinted when absent
    threshold: float = DEFAULT_THRESHOLD  # percent of the source's length
    radius: int = DEFAULT_RADIUS  # Hamming bits for a frame match
    min_frames: int = DEFAULT_MIN_FRAMES  # aligned source frames for a reported pair
    min_seeds: int = 3  # strict (radius) frame matches that start an alignment
    verify_radius: int = 14  # Hamming bits for frames checked along a seeded alignment line (0: off)
    self_dedupe: bool = False
    chunk_size: int = 256  # source videos queried together
    workers: int = 2  # fingerprinting worker processes (and CPUs of a local Ray instance)
    engine: str = "local"  # "local", or "ray": fingerprinting and the source search on Ray (weaksup.ray_engine)
    block_rows: int = DEFAULT_BLOCK_ROWS  # with engine "ray": source codes rows per search task (row groups merged)
    ray_address: str | None = None
    fps: float = DEFAULT_FPS  # sampling rate when fingerprinting here
    progress: bool = True
    align: AlignConfig = field(default_factory=AlignConfig)


def output_paths(out: Path) -> tuple[Path, Path, Path, Path]:
    """removed table, summary, and the source/target codes fingerprinted here, beside ``out``."""
    return (
        side_path(out, ".removed.parquet"),
        side_path(out, ".summary.json"),
        side_path(out, ".source_codes.parquet"),
        side_path(out, ".target_codes.parquet"),
    )


# ---------------------------------------------------------------------------- code tables


@dataclass
class CodeSet:
    """Code rows as flat numpy arrays: row r's frames are ``starts[r] : starts[r] + lengths[r]``."""

    ids: list[str]
    status: list[str]
    lengths: np.ndarray
    starts: np.ndarray
    codes: dict[str, np.ndarray]
    informative: np.ndarray

    def usable(self, r: int) -> bool:
        """Has codes and at least one informative frame (else it can match nothing)."""
        a = self.starts[r]
        return self.status[r] == "ok" and bool(self.informative[a : a + self.lengths[r]].any())

    def frames(self, r: int, variant: str = "full") -> tuple[np.ndarray, np.ndarray]:
        a, n = self.starts[r], self.lengths[r]
        return self.codes[variant][a : a + n], self.informative[a : a + n]


def _list_values(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row lengths (0 for null) and the flattened values of a list column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    return lengths, values


def code_set(table: pa.Table | pa.RecordBatch, source: str, variants: tuple[str, ...] = VARIANTS) -> CodeSet:
    """Flatten the code lists of a codes table; lists of one row must have one length."""
    lengths, informative = _list_values(table.column("informative"))
    codes = {}
    for variant in variants:
        n, values = _list_values(table.column(VARIANT_COLUMNS[VARIANTS.index(variant)]))
        bad = np.flatnonzero(n != lengths)
        if len(bad):
            r = int(bad[0])
            raise InputError(
                f"{source}: row {r} ({table.column('video_id')[r].as_py()!r}) has {n[r]} "
                f"{VARIANT_COLUMNS[VARIANTS.index(variant)]} but {lengths[r]} informative flags"
            )
        codes[variant] = values.astype(np.uint64, copy=False)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return CodeSet(
        ids=[str(v) for v in table.column("video_id").to_pylist()],
        status=table.column("status").to_pylist(),
        lengths=lengths,
        starts=starts,
        codes=codes,
        informative=informative.astype(bool, copy=False),
    )


def check_codes(path: Path) -> pa.Table:
    """Check a codes table without loading its codes; return its light columns.

    Same rules as :func:`weaksup.dedupe.fingerprint.read_codes` (schema, this code version,
    one fps), for tables streamed in chunks.
    """
    schema = load_schema("codes")
    light = ["video_id", "uri", "status", "code_version", "fps"]
    table = read_table("codes", path, columns=light)
    check_table(open_parquet(path).schema_arrow.empty_table(), schema, str(path))
    versions = sorted(set(table.column("code_version").to_pylist()))
    if any(v != CODE_VERSION for v in versions):
        raise InputError(
            f"{path}: stale code table (code_version {', '.join(map(str, versions))}, this weaksup codes "
            f"version {CODE_VERSION}); re-run weaksup fingerprint"
        )
    rates = sorted(set(table.column("fps").to_pylist()))
    if len(rates) > 1:
        raise InputError(f"{path}: rows were coded at different fps ({', '.join(f'{r:g}' for r in rates)})")
    return table


def _table_fps(table: pa.Table) -> float | None:
    rates = set(table.column("fps").to_pylist())
    return rates.pop() if rates else None


def is_codes_table(path: Path) -> bool:
    """A Parquet file with code lists (else: a videos table to fingerprint)."""
    if path.suffix.lower() not in ("", ".parquet", ".pq"):
        return False
    try:
        names = pq.read_schema(path).names
    except Exception:  # not Parquet: let the videos reader say what is wrong
        return False
    return "codes" in names and "code_version" in names


def _same_file(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


# ---------------------------------------------------------------------------- target index


@dataclass
class TargetIndex:
    """Every informative target code (all variants) in one index, and where each row came from."""

    videos: CodeSet
    index: HammingIndex
    row_video: np.ndarray  # code set row
    row_frame: np.ndarray
    row_variant: np.ndarray  # index into VARIANTS
    uid_of: dict[str, int]  # video_id -> one number per distinct id
    uid: np.ndarray  # uid of each code set row

    @classmethod
    def build(cls, videos: CodeSet, rows: list[int]) -> "TargetIndex":
        codes, vids, frames, variants = [], [], [], []
        for r in rows:
            if not videos.usable(r):
                continue
            a, n = videos.starts[r], videos.lengths[r]
            keep = np.flatnonzero(videos.informative[a : a + n])
            for v, name in enumerate(VARIANTS):
                codes.append(videos.codes[name][a + keep])
                vids.append(np.full(len(keep), r, np.int32))
                frames.append(keep.astype(np.int32))
                variants.append(np.full(len(keep), v, np.int8))

        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        flat = cat(codes, np.uint64)
        uid_of = {v: i for i, v in enumerate(dict.fromkeys(videos.ids))}
        uid = np.array([uid_of[v] for v in videos.ids], np.int64)
        return cls(
            videos,
            HammingIndex().build(flat),
            cat(vids, np.int32),
            cat(frames, np.int32),
            cat(variants, np.int8),
            uid_of,
            uid,
        )


# ---------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class PairMatch:
    """The best alignment of one (source, target) pair."""

    source: str
    target: str
    alignment: Alignment
    variant: str
    mirrored: bool


@dataclass
class MatchStats:
    query_codes: int = 0
    frame_matches: int = 0
    aligned_groups: int = 0
    candidate_pairs: int = 0


def _rank(m: PairMatch) -> tuple:
    a = m.alignment
    return (a.overlap_source, a.matched_frames, a.overlap_target, -VARIANTS.index(m.variant), not m.mirrored)


@dataclass(frozen=True)
class _FrameMatches:
    """A chunk's frame matches as parallel int64 arrays: one entry per (query code, target code) within the radius."""

    source: np.ndarray  # position in the chunk's rows
    source_frame: np.ndarray
    mirrored: np.ndarray  # 1: the query was the source frame's mirror
    target: np.ndarray  # target code set row
    target_frame: np.ndarray
    variant: np.ndarray  # index into VARIANTS
    distance: np.ndarray

    def take(self, index: np.ndarray) -> "_FrameMatches":
        """The matches at ``index`` (a mask or an order), every array alike."""
        return _FrameMatches(
            self.source[index],
            self.source_frame[index],
            self.mirrored[index],
            self.target[index],
            self.target_frame[index],
            self.variant[index],
            self.distance[index],
        )


def _query_codes(sources: CodeSet, rows: list[int]) -> tuple[np.ndarray, ...] | None:
    """Every informative code of the ``rows`` and its mirror: (codes, chunk row, frame, mirrored); None for no rows."""
    q_codes, q_src, q_frame, q_mirror = [], [], [], []
    for k, r in enumerate(rows):
        codes, inf = sources.frames(r)
        frames = np.flatnonzero(inf)
        c = codes[frames]
        for mirrored, qc in ((0, c), (1, mirror_codes(c))):
            q_codes.append(qc)
            q_src.append(np.full(len(frames), k, np.int64))
            q_frame.append(frames)
            q_mirror.append(np.full(len(frames), mirrored, np.int64))
    if not q_codes:
        return None
    return np.concatenate(q_codes), np.concatenate(q_src), np.concatenate(q_frame), np.concatenate(q_mirror)


def _frame_matches(
    sources: CodeSet,
    rows: list[int],
    targets: TargetIndex,
    cfg: DedupeConfig,
    stats: MatchStats,
    *,
    exclude_same_id: bool,
) -> _FrameMatches | None:
    """Query the target index with the rows' codes at ``radius`` bits; None when nothing matched."""
    query = _query_codes(sources, rows)
    if query is None:
        return None
    q, q_src, q_frame, q_mirror = query
    stats.query_codes += len(q)
    qi, ti, dist = targets.index.query(q, cfg.radius)
    matches = _FrameMatches(
        source=q_src[qi],
        source_frame=q_frame[qi],
        mirrored=q_mirror[qi],
        target=targets.row_video[ti].astype(np.int64),
        target_frame=targets.row_frame[ti].astype(np.int64),
        variant=targets.row_variant[ti].astype(np.int64),
        distance=dist.astype(np.int64),
    )
    if exclude_same_id:  # self-dedupe: a video never matches itself
        source_uid = np.array([targets.uid_of.get(sources.ids[r], -1) for r in rows], np.int64)
        matches = matches.take(targets.uid[matches.target] != source_uid[matches.source])
    stats.frame_matches += len(matches.source)
    if not len(matches.source):
        return None
    return matches


def _group(matches: _FrameMatches, n_targets: int) -> tuple[_FrameMatches, np.ndarray, np.ndarray, np.ndarray]:
    """Matches sorted into (source, target, variant, mirrored) groups: them, group starts, ends, distinct frames."""
    m = matches
    key = ((m.source * n_targets + m.target) * len(VARIANTS) + m.variant) * 2 + m.mirrored
    order = np.lexsort((m.target_frame, m.source_frame, key))
    key, m = key[order], m.take(order)
    sf = m.source_frame
    group_start = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    new_frame = np.concatenate(([True], (key[1:] != key[:-1]) | (sf[1:] != sf[:-1])))
    distinct = np.add.reduceat(new_frame.astype(np.int64), group_start)
    group_end = np.append(group_start[1:], len(key))
    return m, group_start, group_end, distinct


def _align_group(
    sources: CodeSet, r: int, targets: CodeSet, m: _FrameMatches, a: int, b: int, cfg: DedupeConfig, fps: float
) -> Alignment | None:
    """Align one group ``m[a:b]`` of source row ``r``; a line its seeds form is re-aligned with the frames along it."""
    t = int(m.target[a])
    s_codes, s_inf = sources.frames(r)
    _, t_inf = targets.frames(t)
    sf, tf, dist = m.source_frame[a:b], m.target_frame[a:b], m.distance[a:b]
    al = align(
        sf,
        tf,
        n_source=len(s_codes),
        n_target=len(t_inf),
        fps=fps,
        distances=dist,
        source_informative=s_inf,
        target_informative=t_inf,
        config=cfg.align,
    )
    if al is not None and cfg.verify_radius > cfg.radius and al.consistent(cfg.align):  # seeds form a line
        extra = _verify_line(
            sources, r, targets, t, VARIANTS[int(m.variant[a])], bool(m.mirrored[a]), al, cfg.verify_radius
        )
        if extra is not None:
            al = (
                align(
                    np.concatenate([sf, extra[0]]),
                    np.concatenate([tf, extra[1]]),
                    n_source=len(s_codes),
                    n_target=len(t_inf),
                    fps=fps,
                    distances=np.concatenate([dist, extra[2]]),
                    source_informative=s_inf,
                    target_informative=t_inf,
                    config=cfg.align,
                )
                or al
            )
    return al


def match_chunk(
    sources: CodeSet,
    rows: list[int],
    targets: TargetIndex,
    cfg: DedupeConfig,
    fps: float,
    stats: MatchStats,
    *,
    exclude_same_id: bool,
) -> list[PairMatch]:
    """Best alignment of each (source, target) pair of the source ``rows`` that meets min_frames."""
    matches = _frame_matches(sources, rows, targets, cfg, stats, exclude_same_id=exclude_same_id)
    if matches is None:
        return []
    m, group_start, group_end, distinct = _group(matches, max(len(targets.videos.ids), 1))

    best: dict[tuple[int, str], PairMatch] = {}
    aligned: set[tuple[int, int]] = set()
    for g in np.flatnonzero(distinct >= min(cfg.min_seeds, cfg.min_frames)):
        a, b = int(group_start[g]), int(group_end[g])
        k, t = int(m.source[a]), int(m.target[a])
        r = rows[k]
        stats.aligned_groups += 1
        aligned.add((k, t))
        al = _align_group(sources, r, targets.videos, m, a, b, cfg, fps)
        if al is None or al.matched_frames < cfg.min_frames or not al.consistent(cfg.align):
            continue
        pm = PairMatch(sources.ids[r], targets.videos.ids[t], al, VARIANTS[int(m.variant[a])], bool(m.mirrored[a]))
        pair = (k, pm.target)
        if pair not in best or _rank(pm) > _rank(best[pair]):
            best[pair] = pm
    stats.candidate_pairs += len(aligned)
    return list(best.values())


def _verify_line(
    sources: CodeSet, r: int, targets: CodeSet, t: int, variant: str, mirrored: bool, al: Alignment, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Frame matches at a looser radius along a seeded alignment line.

    Text overlays, greyscale and letterboxing move many frames just past the strict radius;
    once a few strict matches fix a line, each source frame is compared with the target
    frames at its place on it (+-1). Unrelated frames sit ~32 bits apart, so a loose radius
    on one line adds copies' frames, not coincidences; the alignment is then recomputed.
    """
    s_codes, s_inf = sources.frames(r)
    t_codes, t_inf = targets.frames(t, variant)
    if mirrored:
        s_codes = mirror_codes(s_codes)
    i = np.flatnonzero(s_inf)
    j0 = np.rint(al.speed * i + al.intercept).astype(np.int64)
    src, tgt, dist = [], [], []
    for dj in (-1, 0, 1):
        j = j0 + dj
        ok = (j >= 0) & (j < len(t_codes))
        ii, jj = i[ok], j[ok]
        ok = t_inf[jj]
        ii, jj = ii[ok], jj[ok]
        d = hamming(s_codes[ii], t_codes[jj])
        hit = d <= radius
        src.append(ii[hit])
        tgt.append(jj[hit])
        dist.append(d[hit])
    src_a = np.concatenate(src)
    if not len(src_a):
        return None
    return src_a, np.concatenate(tgt), np.concatenate(dist).astype(np.int64)


# ---------------------------------------------------------------------------- the run


def _iter_source_chunks(path: Path, wanted: dict[int, str], chunk: int) -> Iterator[tuple[CodeSet, list[int]]]:
    """Chunks of the source codes table (only the full codes are read), rows restricted to ``wanted``."""
    pf = open_parquet(path)
    offset = 0
    for batch in pf.iter_batches(batch_size=chunk, columns=["video_id", "status", "codes", "informative"]):
        rows = [r for r in range(batch.num_rows) if offset + r in wanted]
        offset += batch.num_rows
        if rows:
            yield code_set(batch, str(path), variants=("full",)), rows


def _fingerprint(videos: Path, out: Path, cfg: DedupeConfig) -> Path:
    from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos

    with separate_job():  # the codes are read back below, and reused by later runs
        fingerprint_videos(
            FingerprintConfig(
                videos=videos,
                out=out,
                fps=cfg.fps,
                workers=cfg.workers,
                progress=cfg.progress,
                engine=cfg.engine,
                ray_address=cfg.ray_address,
            )
        )
    return out


def _validate(cfg: DedupeConfig) -> None:
    check_engine(cfg.engine, cfg.ray_address)
    if not 0 <= cfg.threshold <= 100:
        raise InputError(f"threshold must be a percentage within 0..100, got {cfg.threshold}")
    if not 0 <= cfg.radius <= MAX_RADIUS:
        raise InputError(f"radius must be within 0..{MAX_RADIUS} bits, got {cfg.radius}")
    if cfg.min_frames < 1:
        raise InputError(f"min frames must be at least 1, got {cfg.min_frames}")
    if cfg.chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {cfg.chunk_size}")
    if cfg.block_rows < 1:
        raise InputError(f"block rows must be at least 1, got {cfg.block_rows}")
    inputs = [p for p in (cfg.manifest, cfg.targets, cfg.source_codes) if p is not None]
    outputs = [cfg.out, cfg.report, *output_paths(Path(cfg.out))[:2]]
    for o in outputs:
        if any(_same_file(o, i) for i in inputs):
            raise InputError(f"{o}: output path is also an input; choose another --out/--report")
    if _same_file(cfg.out, cfg.report):
        raise InputError(f"{cfg.report}: --report and --out are the same file")


def _self_removal(
    matches: list[PairMatch], order: dict[str, tuple[int, int]], threshold: float
) -> tuple[dict[str, PairMatch], set[int]]:
    """Greedy keep-first over videos (longest, then manifest order): removed id -> its evidence.

    The evidence of a removal found on the reverse row (kept -> removed) is that row seen
    from the removed side; also returns the indexes of the report rows that caused removals.
    """
    edges: dict[str, list[tuple[float, str, int, bool]]] = defaultdict(list)
    for i, m in enumerate(matches):
        edges[m.source].append((m.alignment.overlap_source, m.target, i, False))
        edges[m.target].append((m.alignment.overlap_target, m.source, i, True))
    removed: dict[str, PairMatch] = {}
    causes: set[int] = set()
    last = (0, 1 << 62)
    for vid in sorted(edges, key=lambda v: order.get(v, last)):
        rank = order.get(vid, last)
        hits = [e for e in edges[vid] if e[0] >= threshold and e[1] not in removed and order.get(e[1], last) < rank]
        if not hits:
            continue
        share, _, i, reverse = max(hits, key=lambda e: (e[0], not e[3]))
        m = matches[i]
        if reverse:
            a = m.alignment
            flipped = replace(
                a,
                overlap_source=a.overlap_target,
                overlap_target=a.overlap_source,
                offset_s=-a.offset_s,
                matched_frames=a.target_frames,
                target_frames=a.matched_frames,
                speed=round(1 / a.speed, 4),
                source_first=a.target_first,
                source_last=a.target_last,
                target_first=a.source_first,
                target_last=a.source_last,
            )
            m = PairMatch(m.target, m.source, flipped, m.variant, m.mirrored)
        removed[vid] = m
        causes.update(e[2] for e in hits if not e[3])
    return removed, causes


def _self_mode(cfg: DedupeConfig) -> bool:
    """Whether this is a self-dedupe (``--self``, or targets that are the manifest or its codes); checks targets."""
    self_mode = cfg.self_dedupe or _same_file(cfg.targets, cfg.manifest) or _same_file(cfg.targets, cfg.source_codes)
    if (
        cfg.self_dedupe
        and cfg.targets is not None
        and not (_same_file(cfg.targets, cfg.manifest) or _same_file(cfg.targets, cfg.source_codes))
    ):
        raise InputError(f"{cfg.targets}: --self de-duplicates the manifest against itself; drop --targets or --self")
    if not self_mode and cfg.targets is None:
        raise InputError("no targets: give --targets (benchmark codes or videos), or --self")
    if cfg.targets is not None and not Path(cfg.targets).exists():
        raise InputError(f"{cfg.targets}: file not found")
    return self_mode


def _wanted_rows(source_meta: pa.Table, manifest_ids: list[str], source_codes: Path) -> dict[int, str]:
    """Codes row -> video_id: the first codes row of each manifest video (every one must have codes)."""
    first_row: dict[str, int] = {}
    for r, v in enumerate(source_meta.column("video_id").to_pylist()):
        first_row.setdefault(str(v), r)
    missing = [v for v in manifest_ids if v not in first_row]
    if missing:
        raise InputError(
            f"{source_codes}: no codes for {len(missing)} manifest video(s) (e.g. {missing[0]!r}); "
            "fingerprint the manifest's videos (or drop --source-codes)"
        )
    return {first_row[v]: v for v in dict.fromkeys(manifest_ids)}


@dataclass
class _Targets:
    """The targets of a run: their codes table (path, light or full columns), code set and index."""

    path: Path
    table: pa.Table
    codes: CodeSet
    index: TargetIndex


def _load_targets(
    cfg: DedupeConfig,
    self_mode: bool,
    source_codes: Path,
    source_meta: pa.Table,
    wanted: dict[int, str],
    target_codes_out: Path,
) -> _Targets:
    """Index the targets: the manifest's own codes in self-dedupe, else the target codes (fingerprinted if videos)."""
    if self_mode:
        full = pq.read_table(source_codes, columns=["video_id", "status", *VARIANT_COLUMNS, "informative"])
        target_rows = sorted(wanted)
        target_set = code_set(full.take(target_rows), str(source_codes))
        return _Targets(
            source_codes, source_meta, target_set, TargetIndex.build(target_set, list(range(len(target_rows))))
        )
    target_path = Path(cfg.targets)
    if not is_codes_table(target_path):
        target_path = _fingerprint(target_path, target_codes_out, cfg)
    from weaksup.dedupe.fingerprint import read_codes

    targets_table = read_codes(target_path)
    target_set = code_set(targets_table, str(target_path))
    return _Targets(
        target_path, targets_table, target_set, TargetIndex.build(target_set, list(range(targets_table.num_rows)))
    )


def _codes_fps(source_meta: pa.Table, targets: _Targets, source_codes: Path) -> float:
    """The fps both sides were coded at (the default when no source row says); InputError when they differ."""
    fps = _table_fps(source_meta) or DEFAULT_FPS
    target_fps = _table_fps(targets.table)
    if target_fps is not None and _table_fps(source_meta) is not None and target_fps != fps:
        raise InputError(
            f"{targets.path}: codes at {target_fps:g} fps but the source codes ({source_codes}) are at {fps:g} fps; "
            "fingerprint both at one --fps"
        )
    return fps


@dataclass
class _SourceScan:
    """What querying every source found: the reported pairs, counts, and each source's status and length."""

    matches: list[PairMatch] = field(default_factory=list)
    stats: MatchStats = field(default_factory=MatchStats)
    status_of: dict[str, str] = field(default_factory=dict)
    length_of: dict[str, int] = field(default_factory=dict)  # frames, for the self-dedupe order


def _scan_sources(
    source_codes: Path, wanted: dict[int, str], targets: TargetIndex, cfg: DedupeConfig, fps: float, self_mode: bool
) -> _SourceScan:
    """Query the manifest's sources against the targets in chunks (bounded memory), with a progress bar."""
    from weaksup.progress import job_progress

    scan = _SourceScan()
    with job_progress(enabled=cfg.progress, desc="dedupe", unit="videos") as progress:
        task = progress.add_task("dedupe", total=len(wanted))
        for chunk, rows in _iter_source_chunks(source_codes, wanted, cfg.chunk_size):
            usable = []
            for r in rows:
                vid = chunk.ids[r]
                usable_r = chunk.usable(r)
                scan.status_of[vid] = chunk.status[r] if chunk.status[r] != "ok" or usable_r else "unfingerprintable"
                scan.length_of[vid] = int(chunk.lengths[r])
                if usable_r:
                    usable.append(r)
            scan.matches += match_chunk(chunk, usable, targets, cfg, fps, scan.stats, exclude_same_id=self_mode)
            progress.advance(task, len(rows))
    return scan


# ---------------------------------------------------------------------------- the search on Ray

PART_VERSION = 1
PART_INFO_KEY = b"weaksup.dedupe_block"  # a part's block counts (rows, match stats) and unfingerprintable sources
ALIGNMENT_FIELDS = tuple(f.name for f in fields(Alignment))
_ARROW_OF = {"int": pa.int64(), "float": pa.float64()}


def _arrow_type(f: Field) -> pa.DataType:
    return _ARROW_OF[f.type if isinstance(f.type, str) else f.type.__name__]


PART_SCHEMA = pa.schema(
    [
        pa.field("source_row", pa.int64()),  # the source's row in the codes table
        pa.field("source_frames", pa.int64()),
        pa.field("source", pa.string()),
        pa.field("target", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("mirrored", pa.bool_()),
        *(pa.field(f.name, _arrow_type(f)) for f in fields(Alignment)),
    ]
)


@dataclass(frozen=True, eq=False)
class SearchBlock:
    """One Ray search task: source codes rows ``start:end``, read from ``row_groups`` (which begin at ``first_row``)."""

    path: str  # the source codes table (path or uri)
    start: int
    end: int
    row_groups: tuple[int, ...]
    first_row: int
    rows: np.ndarray | None  # the manifest's rows among start:end (ascending); None: every one
    n_rows: int  # how many those are
    part: str  # where the task writes its pairs
    settings: dict  # the stamp: what changes the pairs ...
    digest: str  # ... and the block's input rows
    cfg: DedupeConfig
    fps: float
    self_mode: bool


def plan_search_blocks(metadata: pq.FileMetaData, block_rows: int) -> list[tuple[int, int, tuple[int, ...], int]]:
    """Row ranges of a Parquet file for the search tasks, from its footer alone (O(row groups)).

    Returns (start, end, row groups, first row of those groups). Consecutive row groups are
    merged up to ``block_rows`` rows; a larger row group is cut into ``ceil(rows / block_rows)``
    ranges, at most :data:`MAX_SLICES` (a task decodes its row group from the start up to its
    range, so more slices would mostly decode rows of other tasks).
    """
    blocks: list[tuple[int, int, tuple[int, ...], int]] = []
    merged: list[int] = []
    merged_start = merged_rows = pos = 0
    for g in range(metadata.num_row_groups):
        n = metadata.row_group(g).num_rows
        if merged and merged_rows + n > block_rows:
            if merged_rows:
                blocks.append((merged_start, merged_start + merged_rows, tuple(merged), merged_start))
            merged, merged_rows = [], 0
        if n > block_rows:
            k = min(-(-n // block_rows), MAX_SLICES)
            cuts = [pos + n * i // k for i in range(k + 1)]
            blocks += [(a, b, (g,), pos) for a, b in zip(cuts, cuts[1:])]
        else:
            if not merged:
                merged_start = pos
            merged.append(g)
            merged_rows += n
        pos += n
    if merged and merged_rows:
        blocks.append((merged_start, merged_start + merged_rows, tuple(merged), merged_start))
    return blocks


def code_set_digest(codes: CodeSet) -> str:
    """sha256 of a code set's ids, statuses and every code and flag (the targets a part was matched against)."""
    h = hashlib.sha256(json.dumps([codes.ids, codes.status], ensure_ascii=False).encode())
    for arr in (codes.lengths, *(codes.codes[v] for v in sorted(codes.codes)), codes.informative):
        h.update(np.ascontiguousarray(arr).view(np.uint8))
    return h.hexdigest()


def _search_settings(cfg: DedupeConfig, fps: float, self_mode: bool, targets_digest: str) -> dict:
    """What changes a block's pairs (threshold does not: it only decides removals)."""
    return {
        "table": "dedupe-pairs",
        "part_version": PART_VERSION,
        "code_version": CODE_VERSION,
        "fps": fps,
        "radius": cfg.radius,
        "min_frames": cfg.min_frames,
        "min_seeds": cfg.min_seeds,
        "verify_radius": cfg.verify_radius,
        "align": asdict(cfg.align),
        "self_dedupe": self_mode,
        "targets": targets_digest,
    }


def _plan_search(
    source_codes: Path,
    source_meta: pa.Table,
    wanted: dict[int, str],
    settings: dict,
    cfg: DedupeConfig,
    fps: float,
    self_mode: bool,
    parts: Path,
) -> list[SearchBlock]:
    """The blocks of the source codes that hold manifest rows, each with its part and stamp."""
    metadata = open_parquet(source_codes).metadata
    wanted_rows = np.array(sorted(wanted), np.int64)
    ids, uri, status = (source_meta.column(c).to_pylist() for c in ("video_id", "uri", "status"))
    blocks = []
    for start, end, groups, first in plan_search_blocks(metadata, cfg.block_rows):
        lo, hi = np.searchsorted(wanted_rows, [start, end])
        rows = wanted_rows[lo:hi]
        if not len(rows):
            continue
        rl = rows.tolist()
        footer = [
            [metadata.row_group(g).num_rows]
            + [metadata.row_group(g).column(c).total_compressed_size for c in range(metadata.num_columns)]
            for g in groups
        ]  # stands in for the codes themselves: other codes, other sizes
        key = [start, end, rl, [ids[r] for r in rl], [uri[r] for r in rl], [status[r] for r in rl], footer]
        blocks.append(
            SearchBlock(
                path=uris.as_uri(source_codes),
                start=start,
                end=end,
                row_groups=groups,
                first_row=first,
                rows=None if len(rows) == end - start else rows,
                n_rows=len(rows),
                part=str(parts / f"part-{start:012d}-{end:012d}.parquet"),
                settings=settings,
                digest=row_digest([json.dumps(key, ensure_ascii=False).encode()]),
                cfg=cfg,
                fps=fps,
                self_mode=self_mode,
            )
        )
    return blocks


def _part_meta(metadata: dict | None) -> tuple[dict | None, dict | None]:
    """A part's stamp and block info from its schema metadata."""
    metadata = metadata or {}
    try:
        info = json.loads(metadata.get(PART_INFO_KEY) or b"null")
    except (ValueError, UnicodeDecodeError):
        info = None
    return read_stamp(metadata.get(STAMP_KEY)), info if isinstance(info, dict) else None


def _read_part_meta(part: Path) -> tuple[dict | None, dict | None]:
    try:
        return _part_meta(pq.read_schema(part).metadata)
    except Exception:  # noqa: BLE001 - missing or unreadable: not a finished part
        return None, None


def search_block(targets: TargetIndex, block: SearchBlock) -> dict:
    """Ray task: match one block of sources against the shared target index; write its part.

    Reads only the block's row groups, runs :func:`match_chunk` on chunks of
    ``cfg.chunk_size`` rows like the local search, and writes the pairs with the block's
    counts (atomic: temporary name, then rename). Safe to repeat: a part that already holds
    this block's stamp is left as it is. Returns the small counts (rows, pairs).
    """
    part = Path(block.part)
    stamp, info = _read_part_meta(part)
    if info is not None and stale_reason(stamp, block.settings, block.digest) is None:
        return {"rows": info["rows"], "pairs": info["pairs"], "reused": True}
    cfg, stats = block.cfg, MatchStats()
    wanted = None if block.rows is None else set(block.rows.tolist())
    found: list[tuple[int, int, PairMatch]] = []  # source row, source frames, pair
    unusable: list[str] = []
    offset = block.first_row
    batches = open_parquet(block.path).iter_batches(
        batch_size=cfg.chunk_size,
        row_groups=list(block.row_groups),
        columns=["video_id", "status", "codes", "informative"],
    )
    for batch in batches:
        lo, offset = offset, offset + batch.num_rows
        if offset <= block.start:
            continue
        if lo >= block.end:
            break
        span = range(max(block.start, lo) - lo, min(block.end, offset) - lo)
        rows = [r for r in span if wanted is None or lo + r in wanted]
        if not rows:
            continue
        chunk = code_set(batch, block.path, variants=("full",))
        usable = []
        for r in rows:
            if chunk.usable(r):
                usable.append(r)
            elif chunk.status[r] == "ok":
                unusable.append(chunk.ids[r])
        row_of = {chunk.ids[r]: r for r in usable}  # the manifest's rows have distinct ids
        for pm in match_chunk(chunk, usable, targets, cfg, block.fps, stats, exclude_same_id=block.self_mode):
            r = row_of[pm.source]
            found.append((lo + r, int(chunk.lengths[r]), pm))
    columns: dict[str, list] = {
        "source_row": [f[0] for f in found],
        "source_frames": [f[1] for f in found],
        "source": [f[2].source for f in found],
        "target": [f[2].target for f in found],
        "variant": [f[2].variant for f in found],
        "mirrored": [f[2].mirrored for f in found],
    }
    for name in ALIGNMENT_FIELDS:
        columns[name] = [getattr(f[2].alignment, name) for f in found]
    info = {"rows": block.n_rows, "pairs": len(found), "stats": asdict(stats), "unfingerprintable": unusable}
    metadata = {
        STAMP_KEY: json.dumps(make_stamp(block.settings, block.digest)).encode(),
        PART_INFO_KEY: json.dumps(info, ensure_ascii=False).encode(),
    }
    table = pa.table(columns, schema=PART_SCHEMA).replace_schema_metadata(metadata)
    store = PartStore(part.parent)
    store.make()
    store.write(part.name, table)  # atomic: a temporary name, then a rename
    return {"rows": block.n_rows, "pairs": len(found), "reused": False}


def _blocks_to_search(parts: Path, blocks: list[SearchBlock]) -> list[SearchBlock]:
    """The blocks without a finished part; stale parts (other settings, targets or rows, or of no
    block of this plan) and temporaries of killed runs are deleted, after one warning."""
    planned = {Path(b.part).name: b for b in blocks}
    finished: set[str] = set()
    stale = StaleParts(parts, "search part")
    remove: list[Path] = []
    for p in sorted(parts.iterdir()) if parts.is_dir() else []:
        if p.name.startswith(".part-") and ".tmp-" in p.name:  # the output's lock keeps other runs out
            remove.append(p)
            continue
        if not (p.name.startswith("part-") and p.name.endswith(".parquet")):
            continue
        stamp, info = _read_part_meta(p)
        block = planned.get(p.name)
        if info is None:  # unreadable
            remove.append(p)
        elif stale.check(
            "not a block of this run (the source codes' row groups or block_rows changed)"
            if block is None
            else stale_reason(stamp, block.settings, block.digest)
        ):
            finished.add(p.name)
        else:
            remove.append(p)
    stale.report(strict=False)
    for p in remove:
        p.unlink(missing_ok=True)
    return [b for b in blocks if Path(b.part).name not in finished]


def _read_parts(
    blocks: list[SearchBlock], source_meta: pa.Table, wanted: dict[int, str], targets: _Targets, self_mode: bool
) -> _SourceScan:
    """The scan the local search would have made, from the blocks' parts (in table order)."""
    scan = _SourceScan()
    unusable: set[str] = set()
    for block in blocks:
        part = Path(block.part)
        try:
            table = pq.read_table(part)
        except FileNotFoundError:
            raise InputError(
                f"{part}: a Ray worker wrote this search part but it is not here; on a cluster of several "
                "machines --out must be on a filesystem every node mounts"
            ) from None
        stamp, info = _part_meta(table.schema.metadata)
        if info is None or stale_reason(stamp, block.settings, block.digest) is not None:
            raise RuntimeError(f"{part}: search part changed while the job ran (another writer?)")
        for name, value in info["stats"].items():
            setattr(scan.stats, name, getattr(scan.stats, name) + value)
        unusable.update(info["unfingerprintable"])
        cols = table.to_pydict()
        for i in range(table.num_rows):
            al = Alignment(**{name: cols[name][i] for name in ALIGNMENT_FIELDS})
            scan.matches.append(
                PairMatch(cols["source"][i], cols["target"][i], al, cols["variant"][i], cols["mirrored"][i])
            )
            scan.length_of[cols["source"][i]] = cols["source_frames"][i]
    status = source_meta.column("status").to_pylist()
    for r, vid in wanted.items():
        scan.status_of[vid] = "unfingerprintable" if status[r] == "ok" and vid in unusable else status[r]
    if self_mode:  # the order of removal needs every video's length; the targets are the sources
        scan.length_of.update(zip(targets.codes.ids, targets.codes.lengths.tolist()))
    return scan


def scan_sources_ray(
    source_codes: Path,
    source_meta: pa.Table,
    wanted: dict[int, str],
    targets: _Targets,
    cfg: DedupeConfig,
    fps: float,
    self_mode: bool,
) -> tuple[_SourceScan, dict]:
    """:func:`_scan_sources` on Ray: one task per block of the source codes, the target index
    shared through the object store, pairs written as resumable parts (module docstring).
    Returns the scan and the run's block counts."""
    from weaksup.progress import job_progress
    from weaksup.ray_engine import ray_session, ray_tasks

    parts = parts_dir(cfg.out)
    settings = _search_settings(cfg, fps, self_mode, code_set_digest(targets.codes))
    blocks = _plan_search(source_codes, source_meta, wanted, settings, cfg, fps, self_mode, parts)
    todo = _blocks_to_search(parts, blocks)
    with job_progress(enabled=cfg.progress, desc="dedupe", unit="videos") as progress:
        task = progress.add_task("dedupe", total=len(wanted), completed=len(wanted) - sum(b.n_rows for b in todo))
        if todo:
            parts.mkdir(parents=True, exist_ok=True)
            with ray_session(address=cfg.ray_address, workers=cfg.workers):
                try:
                    for done in ray_tasks(search_block, todo, shared=targets.index, retries=3):
                        progress.advance(task, done["rows"])
                except Exception as exc:
                    cause = getattr(exc, "cause", None)  # a RayTaskError wraps the task's exception
                    if isinstance(cause, InputError):
                        raise InputError(str(cause)) from None
                    raise
    scan = _read_parts(blocks, source_meta, wanted, targets, self_mode)
    return scan, {"engine": "ray", "blocks": len(blocks), "blocks_searched": len(todo)}


def _removals(
    matches: list[PairMatch], order: dict[str, tuple[int, int]], threshold: float, self_mode: bool
) -> tuple[dict[str, PairMatch], list[bool]]:
    """Removed source -> its evidence, and whether each report row caused a removal."""
    if self_mode:
        removed_by, causes = _self_removal(matches, order, threshold)
        return removed_by, [i in causes for i in range(len(matches))]
    row_removed = [m.alignment.overlap_source >= threshold for m in matches]
    best: dict[str, PairMatch] = {}  # each removed source's best-ranked removing row
    for m, rm in zip(matches, row_removed):
        if rm and (m.source not in best or _rank(m) > _rank(best[m.source])):
            best[m.source] = m
    return best, row_removed


def _write_report(
    matches: list[PairMatch], row_removed: list[bool], order: dict[str, tuple[int, int]], path: Path
) -> None:
    """The overlaps report: one row per reported pair, in manifest order of the source, then by target."""
    ranked = sorted(range(len(matches)), key=lambda i: (order.get(matches[i].source, (0, 0))[1], matches[i].target))
    report = {
        "source_video_id": [matches[i].source for i in ranked],
        "target_video_id": [matches[i].target for i in ranked],
        "overlap_source": [round(matches[i].alignment.overlap_source, 3) for i in ranked],
        "overlap_target": [round(matches[i].alignment.overlap_target, 3) for i in ranked],
        "offset_s": [matches[i].alignment.offset_s for i in ranked],
        "matched_frames": [matches[i].alignment.matched_frames for i in ranked],
        "mirrored": [matches[i].mirrored for i in ranked],
        "variant": [matches[i].variant for i in ranked],
        "removed": [row_removed[i] for i in ranked],
    }
    write_table("overlaps", report, path)


#: Manifest rows per batch when it is checked and when the outputs are written (the driver
#: holds one batch of the manifest, never the whole table).
MANIFEST_BATCH = 1 << 16


def _manifest_ids(path: Path) -> list[str]:
    """Every manifest row checked (one streamed pass) and its ``video_id``: the one column held."""
    return [str(v) for t in read_batches("manifest", path, MANIFEST_BATCH) for v in t.column("video_id").to_pylist()]


def _write_manifests(path: Path, removed_by: dict[str, PairMatch], out: Path, removed_path: Path) -> int:
    """Write the cleaned manifest and the removed rows with their best match's overlap columns,
    streaming the manifest batch by batch; the rows removed."""
    schema = load_schema("manifest")
    removed = 0
    with atomic_output(out) as clean_tmp, atomic_output(removed_path) as removed_tmp:
        clean, gone = RowGroupWriter(clean_tmp), RowGroupWriter(removed_tmp)
        try:
            for table in read_batches("manifest", path, MANIFEST_BATCH):  # one (empty) batch at least
                ids = [str(v) for v in table.column("video_id").to_pylist()]
                mask = np.array([v in removed_by for v in ids], bool)
                removed += int(mask.sum())
                clean.add(conform(table.filter(pa.array(~mask)), schema))
                gone.add(conform(_with_evidence(table.filter(pa.array(mask)), removed_by), schema))
        finally:
            clean.close()
            gone.close()
    return removed


def _with_evidence(removed_rows: pa.Table, removed_by: dict[str, PairMatch]) -> pa.Table:
    """Removed manifest rows plus the overlap columns of the match that removed each."""
    evidence = [removed_by[str(v)] for v in removed_rows.column("video_id").to_pylist()]
    extra = {
        "target_video_id": pa.array([m.target for m in evidence], pa.string()),
        "overlap_source": pa.array([round(m.alignment.overlap_source, 3) for m in evidence], pa.float64()),
        "overlap_target": pa.array([round(m.alignment.overlap_target, 3) for m in evidence], pa.float64()),
        "offset_s": pa.array([m.alignment.offset_s for m in evidence], pa.float64()),
        "matched_frames": pa.array([m.alignment.matched_frames for m in evidence], pa.int32()),
        "mirrored": pa.array([m.mirrored for m in evidence], pa.bool_()),
        "variant": pa.array([m.variant for m in evidence], pa.string()),
    }
    for name, values in extra.items():
        if name in removed_rows.column_names:
            removed_rows = removed_rows.drop_columns([name])
        removed_rows = removed_rows.append_column(name, values)
    return removed_rows


def _status_counts(manifest_ids: list[str], status_of: dict[str, str], targets: CodeSet) -> dict[str, int]:
    """How many sources and targets were fingerprinted, unfingerprintable (no informative frame) or rejected."""
    source_status = Counter(status_of.get(v, "ok") for v in manifest_ids)
    target_status = Counter(
        s if s != "ok" or targets.usable(r) else "unfingerprintable" for r, s in enumerate(targets.status)
    )
    return {
        "sources": len(manifest_ids),
        "sources_fingerprinted": source_status.get("ok", 0),
        "sources_unfingerprintable": source_status.get("unfingerprintable", 0),
        "sources_rejected": source_status.get("rejected", 0),
        "targets": len(targets.ids),
        "targets_fingerprinted": target_status.get("ok", 0),
        "targets_unfingerprintable": target_status.get("unfingerprintable", 0),
        "targets_rejected": target_status.get("rejected", 0),
    }


def _match_counts(
    scan: _SourceScan, targets: _Targets, removed_by: dict[str, PairMatch], removed: int, rows: int, self_mode: bool
) -> dict:
    """The summary's match accounting: codes indexed and queried, matches, pairs, removals by variant and mirror."""
    stats, matches = scan.stats, scan.matches
    return {
        "self_dedupe": self_mode,
        "indexed_target_codes": len(targets.index.index),
        "query_codes": stats.query_codes,
        "frame_matches": stats.frame_matches,
        "aligned_groups": stats.aligned_groups,
        "candidate_pairs": stats.candidate_pairs,
        "reported_pairs": len(matches),
        "removed": removed,
        "kept": rows - removed,
        "reported_by_variant": {v: sum(m.variant == v for m in matches) for v in VARIANTS},
        "reported_mirrored": sum(m.mirrored for m in matches),
        "removed_by_variant": {v: sum(m.variant == v for m in removed_by.values()) for v in VARIANTS},
        "removed_mirrored": sum(m.mirrored for m in removed_by.values()),
    }


@output_set()  # clean manifest, overlaps report, removed rows and summary: all or none
def dedupe_manifest(cfg: DedupeConfig) -> dict:
    """Run dedupe (see the module docstring); write the outputs and return the summary."""
    require_local_output(cfg.out, cfg.report)
    start = time.perf_counter()
    _validate(cfg)
    out = Path(cfg.out)
    removed_path, summary_file, source_codes_out, target_codes_out = output_paths(out)
    manifest_ids = _manifest_ids(Path(cfg.manifest))  # every row checked; only the ids held
    self_mode = _self_mode(cfg)

    if cfg.source_codes is not None:
        source_codes = Path(cfg.source_codes)
    else:
        source_codes = _fingerprint(Path(cfg.manifest), source_codes_out, cfg)
    source_meta = check_codes(source_codes)
    wanted = _wanted_rows(source_meta, manifest_ids, source_codes)
    targets = _load_targets(cfg, self_mode, source_codes, source_meta, wanted, target_codes_out)
    fps = _codes_fps(source_meta, targets, source_codes)

    search = None
    if cfg.engine == "ray":
        scan, search = scan_sources_ray(source_codes, source_meta, wanted, targets, cfg, fps, self_mode)
    else:
        scan = _scan_sources(source_codes, wanted, targets.index, cfg, fps, self_mode)
    order = {v: (-scan.length_of.get(v, 0), i) for i, v in reversed(list(enumerate(manifest_ids)))}
    removed_by, row_removed = _removals(scan.matches, order, cfg.threshold, self_mode)
    _write_report(scan.matches, row_removed, order, cfg.report)
    removed = _write_manifests(Path(cfg.manifest), removed_by, out, removed_path)

    summary = {
        **_status_counts(manifest_ids, scan.status_of, targets.codes),
        **_match_counts(scan, targets, removed_by, removed, len(manifest_ids), self_mode),
        "threshold_pct": cfg.threshold,
        "radius_bits": cfg.radius,
        "min_frames": cfg.min_frames,
        "tolerance_frames": cfg.align.tolerance,
        "fps": fps,
        "code_version": CODE_VERSION,
        "source_codes": str(source_codes),
        "target_codes": str(targets.path),
        "report": str(cfg.report),
        "removed_table": str(removed_path),
        **({"search": search} if search is not None else {}),
        "wall_s": round(time.perf_counter() - start, 3),
    }
    write_json(summary, summary_file)
    if search is not None:
        shutil.rmtree(parts_dir(out), ignore_errors=True)  # every output is written: the parts are done with
    return summary
