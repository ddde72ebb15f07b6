"""`match` and `hashtag-counts` on Ray: the partitioned match as distributed steps.

The driver plans, reduces and commits; it never holds rows. Its memory is bounded by the
input's row groups (the plan), the parts (their small summaries), the labels (the summed
support) and, for hashtag-counts, the distinct tags. Every step that reads rows is a Ray
task run by :func:`weaksup.ray_engine.ray_tasks`:

0. **plan** (driver): the Parquet footers of the input only (a file, or a folder of files in
   the order every weaksup reader takes them), cut into *blocks* of whole row groups (about
   ``block_rows`` rows, never across files), each with its first global row.
1. **partition** (a task per block): read the block, put each row in part
   ``part_of(video_id, P)`` (as ``partition-videos`` does: every copy of an id in one part)
   and write one bucket per non-empty part, ``STAGING/buckets/part-XXXXX/block-YYYYYYYY.parquet``,
   rows in input order with ``source_row`` (their row in the whole input, or the input's
   own ``source_row``), so "the first occurrence is kept" and the rejects' rows are exact.
2. **phase 1** (a task per non-empty part, match): the part's buckets concatenated in block
   order into ``STAGING/parts/part-XXXXX.parquet`` (labelled ``i/P`` like a
   ``partition-videos`` part), then :func:`~weaksup.assembly.match.count_matches` on it.
3. **reduce** (driver): the parts' label support summed (O(labels)) into ``OUT/support.parquet``.
4. **phase 2** (a task per part): :func:`~weaksup.assembly.match.match_videos` with that
   support: ``OUT/manifest/part-XXXXX.parquet`` and the part's rejects, label counts and
   summary in ``OUT/parts/``. The draw depends on ``(seed, video_id)`` only, so the union of
   the parts is row for row the manifest of one local ``match`` of the whole table.
5. **merge** (driver): label counts summed one part at a time, rejects merged by row
   (a streamed k-way merge), ``OUT/label_counts.parquet``, ``OUT/rejects.parquet`` and
   ``OUT/summary.json`` written together (:func:`~weaksup.outputs.output_set`).

The manifest is a **folder of parts**, ``OUT/manifest/`` (every weaksup reader takes a folder
of Parquet parts); only parts that received rows have one. hashtag-counts runs steps 0-1,
then :func:`~weaksup.assembly.hashtag_counts.count_hashtags` per part on its buckets, and one
merge on the driver bounded by the distinct tags: the same table, rejects and counts as a
local ``count_hashtags``.

Staging (``OUT/.ray`` for match, ``OUT.ray`` beside a hashtag-counts output) must be a local
path every Ray node sees (shared storage on a cluster); the input may be any uri. Resume:
``plan.json`` names the input (files, sizes, modification times, row groups), the columns,
``P`` and the block size; a rerun with another plan starts the staging over. Every piece
(a block's buckets, a part, its support, its manifest, its counts) gets a marker in
``STAGING/done/`` stamped (:func:`weaksup.bulk.make_stamp`) with the settings that change it
and the input's digest; the marker is removed before a piece is rewritten and written after
it is complete, so a rerun reuses exactly the pieces of the same input and settings (a new
``--min-videos`` or ``--seed`` redoes phase 2 only) and never a stale one. Buckets are
deleted once every part is made; ``STAGING/parts`` is kept for reruns (delete the staging
folder to reclaim the space).

Only Parquet inputs are planned from footers: a CSV or JSON-lines table is refused in one
line (``weaksup partition-videos --parts 1`` converts it, ``source_row`` included).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.hashtag_counts import (
    HashtagCountsConfig,
    HashtagCountsResult,
    count_hashtags,
    final_counts,
    merge_tag_counts,
    side_paths,
)
from weaksup.assembly.hashtag_counts import check_options as check_count_options
from weaksup.assembly.match import (
    LABELS_DIGEST_KEY,
    MatchConfig,
    MatchCountConfig,
    check_keep,
    check_options,
    count_matches,
    load_index,
    match_videos,
    merge_label_counts,
    merge_match_summaries,
    space_digest,
)
from weaksup.assembly.partition import (
    MAX_PARTS,
    PART_META_KEY,
    group_by_part,
    in_part_schema,
    part_fields,
    part_name,
    part_of,
)
from weaksup.assembly.videos import SOURCE_ROW, candidate_columns, open_table, require_columns, tag_column
from weaksup.bulk import make_stamp, stale_reason
from weaksup.errors import InputError, first_line
from weaksup.outputs import atomic_output, output_set, require_local_output, side_path
from weaksup.progress import job_progress
from weaksup.ray_engine import cluster_cpus, ray_session, ray_tasks
from weaksup.tables import conform, load_schema, not_parquet, read_table, write_json, write_table

BLOCK_ROWS = 1 << 20  # rows per partition task, about (whole row groups, never across files)
ROW_GROUP_ROWS = 1 << 17  # row groups of the made parts
PART_ROWS = 1 << 18  # the automatic part count aims at parts of at least this many rows
PLAN_VERSION = 1
PLAN_FILE = "plan.json"
MERGE_ROWS = 1 << 20  # rows held, over all parts, by the k-way merge of the rejects


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray match runs (``--ray-address``, ``--workers``, ``--parts``)."""

    address: str | None = None  # join this Ray cluster; None: start a local Ray
    workers: int = 0  # CPUs of the local Ray (0: every core); ignored with an address
    parts: int = 0  # video-id parts (0: from the cluster's CPUs and the rows, or an earlier plan's)
    block_rows: int = BLOCK_ROWS  # input rows per partition task (whole row groups)

    def check(self) -> None:
        """Refuse numbers that make no sense, in one line, before any work."""
        if not 0 <= self.parts <= MAX_PARTS:
            raise InputError(f"--parts {self.parts}: must be between 1 and {MAX_PARTS} (0: automatic)")
        if self.workers < 0:
            raise InputError(f"--workers {self.workers}: must be 0 (every core) or more")
        if self.block_rows < 1:
            raise InputError(f"block rows {self.block_rows}: must be at least 1")


@dataclass(frozen=True)
class Block:
    """Whole row groups of one input file: the unit of the partition step."""

    index: int  # position in the input's row order (bucket files sort by it)
    file: str  # the file inside the input's filesystem
    row_groups: tuple[int, ...]
    row0: int  # global row of the first row
    rows: int


@dataclass(frozen=True)
class Job:
    """What every task of one job needs (small: shared once through the object store)."""

    source: str  # the videos table as given (a path or uri): its filesystem
    staging: str  # the staging folder (local, seen by every node)
    schema: pa.Schema  # the buckets' and parts' columns: the input's that the job reads, then source_row
    keep_source_row: bool  # the input carries source_row already
    parts: int
    digest: str  # the input's digest: files, sizes, modification times, row groups, columns
    batch_size: int

    @property
    def root(self) -> Path:
        return Path(self.staging)

    def bucket_dir(self, part: int) -> Path:
        return self.root / "buckets" / Path(part_name(part)).stem

    def bucket(self, part: int, block: int) -> Path:
        return self.bucket_dir(part) / f"block-{block:08d}.parquet"

    def part(self, part: int) -> Path:
        return self.root / "parts" / part_name(part)

    def marker(self, name: str) -> Path:
        return self.root / "done" / f"{name}.json"


@dataclass(frozen=True)
class MatchJob:
    """A Ray match: the partition job, the match settings (labels copied into the staging
    folder, progress off) and, for phase 2, the digest of the summed support."""

    job: Job
    cfg: MatchConfig
    out: str
    space: str  # label-space digest (labels, --drop-tags, --text-column)
    support_digest: str = ""

    def support(self, part: int) -> Path:
        return self.job.root / "support" / part_name(part)

    def manifest(self, part: int) -> Path:
        return Path(self.out) / "manifest" / part_name(part)

    def side_files(self, part: int) -> list[Path]:
        stem = Path(part_name(part)).stem
        folder = Path(self.out) / "parts"
        return [
            folder / f"{stem}.rejects.parquet",
            folder / f"{stem}.label_counts.parquet",
            folder / f"{stem}.summary.json",
        ]


# ---- pieces: atomic files and stamped markers ----


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` (unique on every node: pid and a random tag), renamed
    over ``path`` when the block ends without error, removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_marker(path: Path, settings: dict, digest: str, **extra: Any) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(json.dumps({"stamp": make_stamp(settings, digest), **extra}, default=str), encoding="utf-8")


def _done(path: Path, settings: dict, digest: str, files: Iterable[Path] = ()) -> dict | None:
    """The marker of a piece that belongs to this job (same settings and input) and whose files
    are all there; None when it must be (re)made."""
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    stamp = marker.get("stamp") if isinstance(marker, dict) else None
    if not isinstance(stamp, dict) or stale_reason(stamp, settings, digest) is not None:
        return None
    return marker if all(Path(f).exists() for f in files) else None


def _block_settings(job: Job, block: Block) -> dict:
    return {"step": "partition", "parts": job.parts, "block": block.index, "file": block.file, "rows": block.rows}


def _part_settings(job: Job, part: int, rows: int) -> dict:
    return {"step": "part", "parts": job.parts, "part": part, "rows": rows}


# ---- step 0: the plan, from footers only ----


def _require_parquet(dataset: ds.Dataset, label: str) -> None:
    if not isinstance(dataset.format, ds.ParquetFileFormat):
        raise InputError(
            f"{label}: the ray engine reads Parquet videos tables (a file or a folder of files); convert this one "
            "first, e.g. weaksup partition-videos --parts 1"
        )


def _open_file(fs: Any, file: str, local: bool) -> pq.ParquetFile:
    return pq.ParquetFile(file if local else fs.open_input_file(file))


def _footer(fs: Any, file: str, local: bool) -> dict:
    """One input file's identity and row groups (its footer, not its rows)."""
    try:
        info = fs.get_file_info(file)
        meta = _open_file(fs, file, local).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for non-Parquet or truncated files
        raise not_parquet(file, exc) from None
    return {
        "file": file,
        "size": info.size,
        "mtime_ns": info.mtime_ns,
        "row_groups": [meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
    }


def plan_blocks(source: str | Path, dataset: ds.Dataset, block_rows: int) -> tuple[list[Block], list[dict], int]:
    """Blocks of whole row groups (about ``block_rows`` rows, never across files) in the row
    order of the input; the files' footers (identity and row groups); the input's rows."""
    fs, _ = uris.pyarrow_filesystem(source)
    local = uris.is_local(source)
    files = list(dataset.files)
    with ThreadPoolExecutor(min(16, max(1, len(files)))) as pool:  # footers of object-store files: round trips
        footers = list(pool.map(lambda f: _footer(fs, f, local), files))
    blocks: list[Block] = []
    row = 0
    for footer in footers:
        groups: list[int] = []
        start = row
        for i, n in enumerate(footer["row_groups"]):
            groups.append(i)
            row += n
            if row - start >= block_rows:
                blocks.append(Block(len(blocks), footer["file"], tuple(groups), start, row - start))
                groups, start = [], row
        if groups and row > start:
            blocks.append(Block(len(blocks), footer["file"], tuple(groups), start, row - start))
    return blocks, footers, row


def _source(videos: str | Path) -> str:
    """The videos table as every node reads it: an absolute local path, or the uri."""
    return str(uris.local_path(videos).absolute()) if uris.is_local(videos) else uris.as_uri(videos)


def _job_columns(dataset: ds.Dataset, wanted: Iterable[str | None]) -> pa.Schema:
    """The input's columns the job reads (in the input's order): the parts need no others."""
    names = {w for w in wanted if w} | {SOURCE_ROW}
    return pa.schema([f for f in dataset.schema if f.name in names], metadata=dataset.schema.metadata)


def _read_plan(path: Path) -> dict:
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return plan if isinstance(plan, dict) else {}


def _auto_parts(rows: int) -> int:
    """Twice the cluster's CPUs, fewer for a small table (parts of at least PART_ROWS rows)."""
    return int(min(MAX_PARTS, 2 * cluster_cpus(), max(1, -(-rows // PART_ROWS))))


def prepare_job(
    source: str | Path,
    dataset: ds.Dataset,
    in_schema: pa.Schema,
    staging: Path,
    opts: RayOptions,
    batch_size: int,
) -> tuple[Job, list[Block]]:
    """The job's plan; an earlier staging folder of another plan (input, columns, parts, block
    size) is removed. Inside a :func:`ray_session` (an automatic part count asks the cluster)."""
    blocks, footers, rows = plan_blocks(source, dataset, opts.block_rows)
    fields, base_meta, keep_source_row = part_fields(in_schema, source)
    schema = pa.schema(fields, metadata=base_meta)
    identity = {
        "source": str(source),
        "files": footers,
        "schema": schema.to_string(show_schema_metadata=False),
        "block_rows": opts.block_rows,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    plan_path = staging / PLAN_FILE
    old = _read_plan(plan_path)
    parts = opts.parts or (old.get("parts") if old.get("input") == digest else None) or _auto_parts(rows)
    plan = {"version": PLAN_VERSION, "input": digest, "parts": parts, "blocks": len(blocks), "rows": rows}
    if {k: old.get(k) for k in plan} != plan:
        if staging.exists():
            shutil.rmtree(staging)
        with _atomic(plan_path) as tmp:
            tmp.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
    job = Job(str(source), str(staging), schema, keep_source_row, int(parts), digest, batch_size)
    return job, blocks


# ---- step 1: partition (a task per block) ----


class _Buckets:
    """One block's rows, by part, into bucket files opened on a part's first rows; buffered so
    that row groups are not tiny, flushed when the buffers together hold a few batches."""

    def __init__(self, job: Job, block: int) -> None:
        self.job, self.block = job, block
        self.writers: dict[int, tuple[pq.ParquetWriter, Path, Path]] = {}
        self.buffers: dict[int, list[pa.Table]] = {}
        self.buffered: Counter = Counter()
        self.rows: Counter = Counter()
        self.limit = 4 * job.batch_size

    def add(self, table: pa.Table, part: np.ndarray) -> None:
        for i, rows in group_by_part(table, part, self.job.parts):
            self.buffers.setdefault(i, []).append(rows)
            self.buffered[i] += rows.num_rows
            self.rows[i] += rows.num_rows
            if self.buffered[i] >= ROW_GROUP_ROWS:
                self._flush(i)
        if sum(self.buffered.values()) >= self.limit:
            for i in list(self.buffered):
                self._flush(i)

    def _flush(self, i: int) -> None:
        if not self.buffered[i]:
            return
        if i not in self.writers:
            final = self.job.bucket(i, self.block)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            self.writers[i] = (pq.ParquetWriter(tmp, self.job.schema, compression="lz4"), tmp, final)
        table = pa.concat_tables(self.buffers[i]).combine_chunks()
        self.writers[i][0].write_table(table, row_group_size=table.num_rows)
        self.buffers[i], self.buffered[i] = [], 0

    def commit(self) -> dict[int, int]:
        """Every bucket complete under its final name; rows per part."""
        for i in list(self.buffered):
            self._flush(i)
        for writer, tmp, final in self.writers.values():
            writer.close()
            os.replace(tmp, final)
        self.writers.clear()
        return {i: int(n) for i, n in self.rows.items() if n}

    def abort(self) -> None:
        for writer, tmp, _ in self.writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)


def _aligned(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """A batch of one input file with the job's input columns: one a file lacks is all nulls
    (as a Parquet dataset reads a folder of files with differing columns)."""
    table = pa.Table.from_batches([batch])
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
    return table


def _block_batches(job: Job, block: Block, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The block's rows, batch by batch; a read error (a corrupt page, a lost connection) is
    InputError naming the file and row groups."""
    fs, _ = uris.pyarrow_filesystem(job.source)
    try:
        parquet = _open_file(fs, block.file, uris.is_local(job.source))
        present = [c for c in columns if c in parquet.schema_arrow.names]
        batches = parquet.iter_batches(
            batch_size=job.batch_size, row_groups=list(block.row_groups), columns=present, use_threads=False
        )
        while (batch := next(batches, None)) is not None:
            yield batch
    except (pa.ArrowException, OSError) as exc:
        groups = f"{block.row_groups[0]}-{block.row_groups[-1]}"
        raise InputError(f"{block.file}: cannot read row groups {groups} ({first_line(exc)})") from None


def bucket_block(job: Job, block: Block) -> dict:
    """Partition task: one block's rows into their parts' buckets (idempotent: a retry rewrites them)."""
    marker = job.marker(f"block-{block.index:08d}")
    marker.unlink(missing_ok=True)
    fields = list(job.schema)
    in_schema = pa.schema([f for f in fields if f.name != SOURCE_ROW or job.keep_source_row])
    buckets = _Buckets(job, block.index)
    row = block.row0
    try:
        for batch in _block_batches(job, block, in_schema.names):
            if not batch.num_rows:
                continue
            try:
                table = in_part_schema(_aligned(batch, in_schema), job.keep_source_row, row, fields)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                reason = first_line(exc)
                raise InputError(
                    f"{block.file}: rows {row} onwards do not fit the table's columns ({reason})"
                ) from None
            row += batch.num_rows
            buckets.add(table, part_of(table.column("video_id"), job.parts))
        rows = buckets.commit()
    except BaseException:
        buckets.abort()
        raise
    if row - block.row0 != block.rows:
        raise InputError(f"{block.file}: {row - block.row0} rows read where the footer says {block.rows}")
    _write_marker(marker, _block_settings(job, block), job.digest, rows=rows)
    return {"block": block.index, "rows": rows}


def partition_step(
    job: Job, blocks: list[Block], part_done: Callable[[int, int], bool], progress: bool, desc: str
) -> tuple[np.ndarray, int]:
    """Rows per part, running the blocks not already bucketed; skipped altogether when every
    non-empty part of the plan is done already (``part_done(part, rows)``). Returns also the
    blocks reused."""
    plan_path = job.root / PLAN_FILE
    plan = _read_plan(plan_path)
    known = plan.get("rows_per_part")
    if known is not None and len(known) == job.parts:
        rows = np.asarray(known, np.int64)
        if all(part_done(i, int(rows[i])) for i in np.flatnonzero(rows).tolist()):
            return rows, len(blocks)
    rows = np.zeros(job.parts, np.int64)
    todo: list[Block] = []
    for block in blocks:
        marker = _done(job.marker(f"block-{block.index:08d}"), _block_settings(job, block), job.digest)
        have = marker is not None and all(job.bucket(int(i), block.index).exists() for i in marker["rows"])
        if have:
            for i, n in marker["rows"].items():
                rows[int(i)] += n
        else:
            todo.append(block)
    for result in run_step(bucket_block, todo, job, progress, f"{desc}: partition", len(blocks)):
        for i, n in result["rows"].items():
            rows[int(i)] += n
    with _atomic(plan_path) as tmp:
        tmp.write_text(json.dumps({**plan, "rows_per_part": rows.tolist()}, indent=2) + "\n", encoding="utf-8")
    return rows, len(blocks) - len(todo)


def make_part(job: Job, part: int, rows: int) -> Path:
    """The part's buckets concatenated in block (= input row) order into one Parquet file
    labelled ``part/P``; reused when made before for the same plan."""
    final, marker = job.part(part), job.marker(f"part-{part:05d}")
    settings = _part_settings(job, part, rows)
    if _done(marker, settings, job.digest, [final]) is not None:
        return final
    marker.unlink(missing_ok=True)
    schema = job.schema.with_metadata({**(job.schema.metadata or {}), PART_META_KEY: f"{part}/{job.parts}".encode()})
    files = sorted(job.bucket_dir(part).glob("block-*.parquet"))
    n = 0
    with _atomic(final) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            pending: list[pa.RecordBatch] = []
            held = 0
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=ROW_GROUP_ROWS, use_threads=False):
                    pending.append(batch)
                    held += batch.num_rows
                    n += batch.num_rows
                    if held >= ROW_GROUP_ROWS:
                        writer.write_table(pa.Table.from_batches(pending), row_group_size=held)
                        pending, held = [], 0
            if held:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=held)
        if n != rows:
            raise RuntimeError(f"{job.bucket_dir(part)}: {n} rows in the buckets, the partition wrote {rows}")
    _write_marker(marker, settings, job.digest)
    return final


def run_tasks(fn: Callable[..., Any], items: list, shared: Any) -> Iterator[Any]:
    """:func:`ray_tasks`, with a task's bad input (InputError) or OS error raised again here as
    itself (one line for the CLI), not as Ray's wrapper with the remote traceback."""
    if not items:
        return
    try:
        yield from ray_tasks(fn, items, shared=shared)
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, InputError):
            raise InputError(str(cause)) from None
        if isinstance(cause, OSError):
            raise cause from None
        raise


def run_step(fn: Callable[..., Any], items: list, shared: Any, progress: bool, desc: str, total: int) -> Iterator[Any]:
    """:func:`run_tasks` under a bar of the step's ``total`` pieces (those not in ``items``,
    reused, count as done)."""
    with job_progress(enabled=progress, desc=desc, unit="tasks", rate=False) as bar:
        task = bar.add_task(desc, total=total, completed=total - len(items))
        for result in run_tasks(fn, items, shared):
            bar.advance(task)
            yield result


def merge_by_row(files: list[Path], write: Callable[[pa.Table], None]) -> Counter:
    """Rejects tables each sorted by ``row`` (rows disjoint) merged into one sorted stream,
    holding about MERGE_ROWS rows over all files; returns the reasons (as the summary counts
    them: the text before " (")."""
    batch_rows = max(1024, MERGE_ROWS // max(1, len(files)))
    readers = [pq.ParquetFile(f).iter_batches(batch_size=batch_rows) for f in files]
    held: list[pa.Table | None] = [None] * len(files)
    reasons: Counter = Counter()

    def refill(k: int) -> None:
        for batch in readers[k]:
            if batch.num_rows:
                held[k] = pa.Table.from_batches([batch])
                return
        held[k] = None

    for k in range(len(files)):
        refill(k)
    while True:
        live = [k for k, t in enumerate(held) if t is not None]
        if not live:
            return reasons
        cutoff = min(held[k].column("row")[-1].as_py() for k in live)  # type: ignore[union-attr]
        out: list[pa.Table] = []
        for k in live:
            table = held[k]
            assert table is not None
            n = int(np.searchsorted(table.column("row").to_numpy(), cutoff, side="right"))
            if n:
                out.append(table.slice(0, n))
            if n == table.num_rows:
                refill(k)
            else:
                held[k] = table.slice(n)
        chunk = pa.concat_tables(out).sort_by("row").select(["row", "video_id", "reason"])
        reasons.update(r.split(" (")[0] for r in chunk.column("reason").to_pylist())
        write(chunk)


def _write_rejects(files: list[Path], path: Path) -> Counter:
    """The parts' rejects merged by row into ``path`` (schema ``match_rejects``), streamed."""
    schema = load_schema("match_rejects")
    arrow = conform(schema.to_arrow().empty_table(), schema).schema
    with atomic_output(path) as tmp:
        with pq.ParquetWriter(tmp, arrow, compression="zstd") as writer:
            reasons = merge_by_row(files, lambda t: writer.write_table(conform(t, schema)))
    return reasons


# ---- match ----


def _copy_in(path: Path | None, target: Path) -> Path | None:
    """A copy of a small input (labels, drop-tags) in the staging folder, which every node sees."""
    if path is None:
        return None
    target = target.with_suffix(Path(path).suffix)
    with _atomic(target) as tmp:
        shutil.copyfile(path, tmp)
    return target


def _support_settings(mj: MatchJob, part: int) -> dict:
    return {"step": "support", "parts": mj.job.parts, "part": part, "labels": mj.space}


def _match_settings(mj: MatchJob, part: int) -> dict:
    cfg = mj.cfg
    return {
        "step": "match",
        "parts": mj.job.parts,
        "part": part,
        "labels": mj.space,
        "support": mj.support_digest,
        "min_videos": cfg.min_videos,
        "seed": cfg.seed,
        "keep_columns": list(cfg.keep_columns),
    }


def support_task(mj: MatchJob, item: tuple[int, int]) -> dict:
    """Phase 1 task: the part made from its buckets, then its label support (count_matches)."""
    part, rows = item
    path = make_part(mj.job, part, rows)
    marker = mj.job.marker(f"support-{part:05d}")
    marker.unlink(missing_ok=True)
    cfg = mj.cfg
    count_matches(
        MatchCountConfig(
            path,
            cfg.labels,
            mj.support(part),
            cfg.batch_size,
            progress=False,
            text_column=cfg.text_column,
            drop_tags=cfg.drop_tags,
        )
    )
    _write_marker(marker, _support_settings(mj, part), mj.job.digest)
    return {"part": part}


def match_task(mj: MatchJob, part: int) -> dict:
    """Phase 2 task: the part matched with the summed support (match_videos); its summary."""
    marker = mj.job.marker(f"match-{part:05d}")
    marker.unlink(missing_ok=True)
    cfg = replace(
        mj.cfg,
        videos=mj.job.part(part),
        out=mj.manifest(part),
        support=Path(mj.out) / "support.parquet",
        side_dir=Path(mj.out) / "parts",
    )
    summary = match_videos(cfg)
    _write_marker(marker, _match_settings(mj, part), mj.job.digest, summary=summary)
    return {"part": part, "summary": summary}


def _reduce_support(mj: MatchJob, parts: list[int], names: list[str]) -> np.ndarray:
    """The reduce: every part's label support summed (one small table at a time), written as
    ``OUT/support.parquet`` (stamped with the label space, as match-count's) for phase 2."""
    total = np.zeros(len(names), np.int64)
    for part in parts:
        path = mj.support(part)
        meta = pq.read_schema(path).metadata or {}
        if meta.get(LABELS_DIGEST_KEY, b"").decode() != mj.space:
            raise RuntimeError(f"{path}: support of another label space")
        table = read_table("label_support", path)
        total[table.column("label_id").to_numpy()] += table.column("matched_videos").to_numpy()
    write_table(
        "label_support",
        {
            "label_id": pa.array(np.arange(len(names)), pa.int32()),
            "label": pa.array(names, pa.string()),
            "matched_videos": pa.array(total, pa.int64()),
        },
        Path(mj.out) / "support.parquet",
        metadata={LABELS_DIGEST_KEY: mj.space.encode()},
    )
    return total


def _remove_stale_outputs(out: Path, parts: set[int]) -> None:
    """Manifest parts and part side files of an earlier run that this run has no part for."""
    names = {Path(part_name(i)).stem for i in parts}
    for folder in (out / "manifest", out / "parts"):
        for path in folder.glob("part-*") if folder.is_dir() else []:
            if path.name.split(".")[0] not in names:
                path.unlink()


def match_on_ray(cfg: MatchConfig, opts: RayOptions = RayOptions()) -> dict:
    """``weaksup match --engine ray``: the same manifest rows, rejects, label counts and
    accounting as :func:`~weaksup.assembly.match.match_videos` of the whole table, written as
    the folder ``cfg.out`` (``manifest/`` of parts, ``label_counts.parquet``,
    ``rejects.parquet``, ``support.parquet``, ``parts/``, ``summary.json``; staging in
    ``.ray/``). Runs inside a :func:`~weaksup.ray_engine.ray_session`."""
    start = time.perf_counter()
    check_options(min_videos=cfg.min_videos, batch_size=cfg.batch_size)
    opts.check()
    require_local_output(cfg.out)
    if cfg.support is not None:
        raise InputError("--support: not with --engine ray (the job counts the whole corpus' support itself)")
    out = Path(cfg.out).absolute()  # every node resolves the paths of the job alike
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; match --engine ray writes a folder")
    label = uris.display(cfg.videos)
    dataset = open_table(cfg.videos)  # a missing or unreadable table fails before anything is created
    require_columns(dataset, label, ("video_id", "uri"))
    tags_col, text_col = candidate_columns(dataset, label, cfg.text_column)
    check_keep(dataset, label, cfg.keep_columns)
    _require_parquet(dataset, label)
    index, drop_info = load_index(Path(cfg.labels), cfg.drop_tags)
    in_schema = _job_columns(dataset, ("video_id", "uri", tags_col, text_col, "duration_s", *cfg.keep_columns))
    staging = out / ".ray"

    with ray_session(address=opts.address, workers=opts.workers or os.cpu_count() or 1):
        job, blocks = prepare_job(_source(cfg.videos), dataset, in_schema, staging, opts, cfg.batch_size)
        inputs = replace(
            cfg,
            labels=_copy_in(Path(cfg.labels), staging / "inputs" / "labels"),
            drop_tags=_copy_in(cfg.drop_tags, staging / "inputs" / "drop_tags"),
            progress=False,
        )
        mj = MatchJob(job, inputs, str(out), space_digest(index, cfg.text_column))

        def made(i: int, n: int) -> bool:  # part i made from its buckets (which are then gone)
            return _done(job.marker(f"part-{i:05d}"), _part_settings(job, i, n), job.digest, [job.part(i)]) is not None

        def counted(i: int, n: int) -> bool:  # phase 1 of part i done: the part made, its support counted
            support = _done(job.marker(f"support-{i:05d}"), _support_settings(mj, i), job.digest, [mj.support(i)])
            return made(i, n) and support is not None

        rows, blocks_reused = partition_step(job, blocks, made, cfg.progress, "match (ray)")
        parts = np.flatnonzero(rows).tolist()

        todo = [(i, int(rows[i])) for i in parts if not counted(i, int(rows[i]))]
        for _ in run_step(support_task, todo, mj, cfg.progress, "match (ray): phase 1", len(parts)):
            pass
        shutil.rmtree(job.root / "buckets", ignore_errors=True)  # every part is made

        support = _reduce_support(mj, parts, index.names)  # O(labels)
        mj = replace(mj, support_digest=hashlib.sha256(support.tobytes()).hexdigest()[:32])

        summaries: dict[int, dict] = {}
        todo2 = []
        for i in parts:
            marker = _done(
                job.marker(f"match-{i:05d}"),
                _match_settings(mj, i),
                job.digest,
                [mj.manifest(i), *mj.side_files(i)],
            )
            if marker is not None:
                summaries[i] = marker["summary"]
            else:
                todo2.append(i)
        if todo2:  # manifest parts change: an earlier summary no longer describes the folder
            (out / "summary.json").unlink(missing_ok=True)
        for result in run_step(match_task, todo2, mj, cfg.progress, "match (ray): phase 2", len(parts)):
            summaries[result["part"]] = result["summary"]
    _remove_stale_outputs(out, set(parts))
    if not parts:
        _empty_manifest(out, dataset, cfg.keep_columns)

    ordered = [summaries[i] for i in parts]
    counts_path, rejects_path, summary_path = (
        out / "label_counts.parquet",
        out / "rejects.parquet",
        out / "summary.json",
    )
    with output_set():  # the job's label counts, rejects and summary: all or none (each part committed its own)
        if parts:
            label_counts = merge_label_counts(mj.side_files(i)[1] for i in parts)
        else:
            kept = support >= cfg.min_videos
            zeros = pa.array(np.zeros(len(index), np.int64))
            label_counts = {
                "label_id": pa.array(np.arange(len(index)), pa.int32()),
                "label": pa.array(index.names, pa.string()),
                "matched_videos": zeros,
                "assigned_videos": zeros,
                "kept": pa.array(kept),
            }
        write_table("label_counts", label_counts, counts_path)
        reasons = _write_rejects([mj.side_files(i)[0] for i in parts], rejects_path)
        summary = {
            **merge_match_summaries(ordered, label_counts, reasons, min_videos=cfg.min_videos, seed=cfg.seed),
            **({"text_column": cfg.text_column} if cfg.text_column is not None else {}),
            **({"keep_columns": list(cfg.keep_columns)} if cfg.keep_columns else {}),
            **drop_info,
            "engine": "ray",
            "parts": job.parts,
            "parts_with_rows": len(parts),
            "blocks": len(blocks),
            "reused": {
                "blocks": blocks_reused,
                "support": len(parts) - len(todo),
                "manifest": len(parts) - len(todo2),
            },
            "wall_s": round(time.perf_counter() - start, 3),
            "outputs": {
                "manifest": str(out / "manifest"),
                "rejects": str(rejects_path),
                "label_counts": str(counts_path),
                "support": str(out / "support.parquet"),
                "parts": str(out / "parts"),
                "staging": str(staging),
            },
        }
        write_json(summary, summary_path)
    return summary


def _empty_manifest(out: Path, dataset: ds.Dataset, keep_columns: tuple[str, ...]) -> None:
    """An input without rows still gets a (one-part, empty) manifest folder."""
    schema = load_schema("manifest").to_arrow()
    for name in keep_columns:
        schema = schema.append(dataset.schema.field(name))
    path = out / "manifest" / part_name(0)
    with _atomic(path) as tmp:
        pq.write_table(schema.empty_table(), tmp, compression="zstd")


# ---- hashtag-counts ----


@dataclass(frozen=True)
class CountJob:
    job: Job

    def counts(self, part: int) -> Path:
        return self.job.root / "counts" / part_name(part)

    def files(self, part: int) -> list[Path]:
        rejects, summary = side_paths(self.counts(part))
        return [self.counts(part), Path(rejects), Path(summary)]


def _count_settings(cj: CountJob, part: int, rows: int) -> dict:
    return {"step": "hashtag-counts", "parts": cj.job.parts, "part": part, "rows": rows}


def count_task(cj: CountJob, item: tuple[int, int]) -> dict:
    """A part's hashtag counts (count_hashtags on its buckets, every tag kept); its summary."""
    part, rows = item
    marker = cj.job.marker(f"counts-{part:05d}")
    marker.unlink(missing_ok=True)
    result = count_hashtags(HashtagCountsConfig(cj.job.bucket_dir(part), cj.counts(part), progress=False))
    if result.summary["videos_read"] != rows:
        raise RuntimeError(
            f"{cj.job.bucket_dir(part)}: {result.summary['videos_read']} rows, the partition wrote {rows}"
        )
    _write_marker(marker, _count_settings(cj, part, rows), cj.job.digest, summary=result.summary)
    return {"part": part, "summary": result.summary}


def count_hashtags_on_ray(cfg: HashtagCountsConfig, opts: RayOptions = RayOptions()) -> HashtagCountsResult:
    """``weaksup hashtag-counts --engine ray``: the same table, rejects and summary counts as
    :func:`~weaksup.assembly.hashtag_counts.count_hashtags`; staging in ``OUT.ray/`` beside the output."""
    start = time.perf_counter()
    check_count_options(cfg)
    opts.check()
    require_local_output(cfg.out)
    label = uris.display(cfg.videos)
    dataset = open_table(cfg.videos)
    require_columns(dataset, label, ("video_id", "uri"))
    tags = tag_column(dataset, label)
    _require_parquet(dataset, label)
    out = uris.local_path(cfg.out).absolute()
    rejects_path, summary_path = (Path(p) for p in side_paths(out))
    staging = Path(side_path(out, ".ray", whole_name=True))
    in_schema = _job_columns(dataset, ("video_id", "uri", tags))

    with ray_session(address=opts.address, workers=opts.workers or os.cpu_count() or 1):
        job, blocks = prepare_job(_source(cfg.videos), dataset, in_schema, staging, opts, cfg.batch_size)
        cj = CountJob(job)
        counted = lambda i, n: _done(  # noqa: E731
            job.marker(f"counts-{i:05d}"), _count_settings(cj, i, n), job.digest, cj.files(i)
        )
        rows, blocks_reused = partition_step(
            job, blocks, lambda i, n: counted(i, n) is not None, cfg.progress, "hashtag-counts (ray)"
        )
        parts = np.flatnonzero(rows).tolist()
        summaries: dict[int, dict] = {}
        todo = []
        for i in parts:
            marker = counted(i, int(rows[i]))
            if marker is not None:
                summaries[i] = marker["summary"]
            else:
                todo.append((i, int(rows[i])))
        for result in run_step(count_task, todo, cj, cfg.progress, "hashtag-counts (ray): count", len(parts)):
            summaries[result["part"]] = result["summary"]
    shutil.rmtree(job.root / "buckets", ignore_errors=True)  # every part is counted

    ordered = [summaries[i] for i in parts]
    merged = merge_tag_counts(read_table("hashtag_counts", cj.counts(i)) for i in parts)
    kept, n_distinct, pairs = final_counts(merged, cfg.min_count)
    total = lambda key: sum(s[key] for s in ordered)  # noqa: E731
    with output_set():  # counts, rejects and summary: all or none
        write_table("hashtag_counts", kept, out)
        reasons = _write_rejects([cj.files(i)[1] for i in parts], rejects_path)
        n_with, n_without, n_rejected = total("videos_with_tags"), total("videos_without_tags"), total("rejected")
        summary = {
            "videos_read": total("videos_read"),
            "videos_with_tags": n_with,
            "videos_without_tags": n_without,
            "rejected": n_rejected,
            "rejected_by_reason": dict(reasons),
            "accounted": n_with + n_without + n_rejected == total("videos_read"),
            "distinct_hashtags": n_distinct,
            "hashtags_written": kept.num_rows,
            "tag_video_pairs": pairs,
            "min_count": cfg.min_count,
            "engine": "ray",
            "parts": job.parts,
            "parts_with_rows": len(parts),
            "blocks": len(blocks),
            "reused": {"blocks": blocks_reused, "counts": len(parts) - len(todo)},
            "wall_s": round(time.perf_counter() - start, 3),
            "outputs": {"hashtag_counts": str(out), "rejects": str(rejects_path), "staging": str(staging)},
        }
        write_json(summary, summary_path)
    return HashtagCountsResult(out, rejects_path, summary_path, summary)
