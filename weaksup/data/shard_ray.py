"""``weaksup shard --engine ray``: the same shards, written by Ray tasks; the driver only plans.

The local engine orders every row by ``(hash of (seed, video_id), row)`` on one machine,
with every file's size, and cuts the order into shards. Here that order is a distributed
sort by hash range: the hash is a uniform 64-bit key, so cutting its range into ``2**bits``
equal *buckets* spreads the rows evenly and keeps the order (bucket 0's rows, sorted, then
bucket 1's, ... is the whole order). Five steps, staged in ``OUT/.ray-parts/``:

1. **size**, a task per block of input rows (read from the Parquet file where the task
   runs): check the rows, stat every file, make each clip's JSON and key, and write the
   readable rows sorted by hash as one part (the rejected rows as another). It returns
   counts: rows per bucket, rejects by reason, the smallest and largest label id.
2. **sort**, a task per bucket: read the bucket's rows from every block's part (row-group
   statistics skip the rest), sort them, write one part.
3. **plan**, on the driver: a bucket starts where the buckets before it end; shards of N
   clips start at multiples of N; shards by bytes are cut by :func:`cut_by_bytes` over the
   sorted parts' byte column, one bucket at a time. The driver holds O(buckets + shards).
4. **write**, a task per bucket: the shards that start in it, reading the sorted parts
   that hold their clips; each shard is checked, kept or written exactly as the local
   engine does (same stamp, same bytes), with its index rows and the files that failed.
5. **commit**, on the driver: index.parquet from the index parts in shard order,
   rejects.parquet from the reject parts in row order (the few files that failed while
   being written merged in), summary.json from the summed counts.

The size and sort steps always run again (a stat per file is cheap next to copying its
bytes); the shards themselves resume exactly as with the local engine. The shard folder
must be one filesystem that every node mounts at the same path, as with the local engine.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.blocks import Block, PartStore, TableInput, part_name, plan_blocks
from weaksup.bulk import StaleParts
from weaksup.data.shard_format import (
    ShardClip,
    ShardConfig,
    ShardRows,
    check_shard,
    cut_by_bytes,
    empty_index,
    prepare_out,
    reason_counts,
    remove_past_plan,
    shard_settings,
    shard_summary,
    stat_file,
    tar_need,
    write_or_index,
)
from weaksup.data.shards import DEFAULT_SHARD_SIZE, INDEX_NAME, REJECTS_NAME, SHARD_NAME, SUMMARY_NAME
from weaksup.data.training_data import table_kind
from weaksup.errors import InputError
from weaksup.hashing import stable_hash64
from weaksup.outputs import atomic_output
from weaksup.tables import (
    RowGroupWriter,
    check_table,
    conform,
    fill_optional,
    load_schema,
    open_parquet,
    read_rows,
    write_json,
)

#: Rows a bucket holds on average: one sort task's memory (a few hundred bytes a row).
BUCKET_ROWS = 1 << 18
#: Rows per block of the size step (a task reads one block of one row group).
BLOCK_CHUNK = 4096
#: Row groups of the size step's parts: small, so a bucket's rows are read without the rest.
SIZED_GROUP_ROWS = 1024
#: Row groups of the index parts, and rows the commit holds at a time.
COMMIT_ROWS = 1 << 16
#: The columns a shard needs, of those a training table may have.
WANTED = ("video_id", "uri", "label_id", "label", "clip_start_s", "clip_end_s", "duration_s")

_CLIP_FIELDS = ("row", "key", "ext", "path", "size", "meta", "video_id", "label_id", "label", "uri")
_SIZED = pa.schema(
    [
        ("bucket", pa.int64()),
        ("hash", pa.uint64()),
        ("row", pa.int64()),
        ("key", pa.string()),
        ("ext", pa.string()),
        ("path", pa.string()),
        ("size", pa.int64()),
        ("meta", pa.binary()),
        ("video_id", pa.string()),
        ("label_id", pa.int64()),
        ("label", pa.string()),
        ("uri", pa.string()),
    ]
)
_REJECTS = load_schema("shard_rejects").to_arrow()


def bucket_bits(rows: int) -> int:
    """log2 of the bucket count: enough buckets that one holds about :data:`BUCKET_ROWS` rows."""
    return max(0, int(np.ceil(np.log2(max(rows, 1) / BUCKET_ROWS))))


@dataclass(frozen=True)
class RayShardJob:
    """What every task of one job needs (put into the object store once)."""

    source: TableInput
    kind: str  # manifest, clips or sample
    checked: tuple[str, ...]  # the columns of WANTED that the kind's schema declares (checked and filled as locally)
    name: str  # the input, as messages name it
    staging: str  # OUT/.ray-parts
    out: str
    seed: int
    bits: int
    threads: int
    settings: dict[str, Any]

    def store(self, step: str) -> PartStore:
        """One step's parts (written whole or not at all)."""
        return PartStore(self.staging).child(step)

    def path(self, step: str, name: str) -> Path:
        return Path(self.staging, step, name)


def _bucket_part(bucket: int) -> str:
    return f"bucket-{bucket:06d}.parquet"


# ----------------------------------------------------------------------------- 1. size


def size_block(job: RayShardJob, block: Block) -> dict[str, Any]:
    """Step 1 for one block of input rows, where the task runs; returns its counts."""
    try:
        table = job.source.read_table(block)
        schema = load_schema(job.kind).subset(list(job.checked))
        where = f"{job.name} (rows {block.first}..{block.end - 1})"
        table = fill_optional(check_table(table, schema, where), schema)
        rows = ShardRows(table, block.first)
    except InputError as exc:
        return {"error": str(exc)}
    labels = rows.videos.label
    hashes = stable_hash64(rows.videos.video_id, job.seed, "shard")
    with ThreadPoolExecutor(job.threads) as pool:
        stats = list(pool.map(stat_file, rows.videos.uri.to_pylist()))
    readable = [i for i, s in enumerate(stats) if not isinstance(s, str)]
    clips = [rows.clip(i, int(stats[i])) for i in readable]  # type: ignore[arg-type]
    keep = np.asarray(readable, np.int64)
    bucket = (hashes[keep] >> np.uint64(64 - job.bits)).astype(np.int64) if job.bits else np.zeros(len(keep), np.int64)
    sized = pa.table(
        {
            "bucket": bucket,
            "hash": hashes[keep],
            **{f: [getattr(c, f) for c in clips] for f in _CLIP_FIELDS},
        },
        schema=_SIZED,
    )
    order = np.lexsort((sized.column("row").to_numpy(), hashes[keep]))
    name = part_name(block.first, block.end - 1, block.rows)
    job.store("sized").write(name, sized.take(pa.array(order)), row_group_size=SIZED_GROUP_ROWS)
    bad = [i for i, s in enumerate(stats) if isinstance(s, str)]
    rejects = pa.table(
        {
            "row": [block.first + i for i in bad],
            "video_id": rows.videos.video_id.take(pa.array(bad, pa.int64())),
            "uri": rows.videos.uri.take(pa.array(bad, pa.int64())),
            "reason": [stats[i] for i in bad],
        },
        schema=_REJECTS,
    )
    job.store("rejects").write(name, rejects)
    return {
        "rows": block.rows,
        "buckets": np.bincount(bucket, minlength=1 << job.bits).tolist(),
        "reasons": dict(reason_counts(stats[i] for i in bad)),  # type: ignore[misc]
        "label_min": int(labels.min(initial=0)),
        "label_max": int(labels.max(initial=-1)),
    }


# ----------------------------------------------------------------------------- 2. sort


def sort_bucket(job: RayShardJob, bucket: int) -> int:
    """Step 2 for one bucket: its rows from every block's part, in shard order; returns the count."""
    sized = job.store("sized")
    pieces = [sized.read(name, filters=[("bucket", "=", bucket)]) for name in sized.names()]
    table = pa.concat_tables(pieces) if pieces else _SIZED.empty_table()
    order = np.lexsort((table.column("row").to_numpy(), table.column("hash").to_numpy()))
    table = table.take(pa.array(order)).drop_columns(["bucket", "hash"])
    need = tar_need(table.column("size").to_numpy())
    table = table.append_column("need", pa.array(need, pa.int64()))
    job.store("sorted").write(_bucket_part(bucket), table, row_group_size=COMMIT_ROWS)
    return table.num_rows


# ----------------------------------------------------------------------------- 3. plan


@dataclass(frozen=True)
class WriteTask:
    """The shards that start in one bucket: shard ``first_shard`` on, starting at the global
    positions ``starts`` (the last one is where the task's last shard ends), and the
    buckets that hold those positions as (bucket, its first position)."""

    bucket: int
    first_shard: int
    starts: tuple[int, ...]
    buckets: tuple[tuple[int, int], ...]


def plan_shard_starts(job: RayShardJob, cfg: ShardConfig, counts: np.ndarray) -> list[int]:
    """Where each shard starts in the whole order, then where the last one ends: O(shards)."""
    total = int(counts.sum())
    if cfg.shard_bytes is None:
        size = cfg.shard_size or DEFAULT_SHARD_SIZE
        return [*range(0, total, size), total]

    def needs() -> Iterator[np.ndarray]:  # one bucket at a time
        for b in np.flatnonzero(counts).tolist():
            yield job.store("sorted").read(_bucket_part(b), columns=["need"]).column("need").to_numpy()

    return [0, *cut_by_bytes(needs(), cfg.shard_bytes), total] if total else [0]


def plan_writes(starts: list[int], counts: np.ndarray) -> list[WriteTask]:
    """One write task per bucket in which shards start."""
    bucket_first = np.concatenate([[0], np.cumsum(counts)])  # the first position of every bucket
    owner = np.searchsorted(bucket_first, np.asarray(starts[:-1], np.int64), side="right") - 1
    tasks = []
    for b in np.unique(owner).tolist():
        ks = np.flatnonzero(owner == b)
        lo, hi = int(ks[0]), int(ks[-1]) + 1
        end = starts[hi]
        last = int(np.searchsorted(bucket_first, end, side="left")) - 1  # the bucket that holds position end - 1
        spanned = [(c, int(bucket_first[c])) for c in range(b, last + 1) if counts[c]]
        tasks.append(WriteTask(b, lo, tuple(starts[lo : hi + 1]), tuple(spanned)))
    return tasks


# ----------------------------------------------------------------------------- 4. write


def _clips(table: pa.Table) -> list[ShardClip]:
    cols = {f: table.column(f).to_pylist() for f in _CLIP_FIELDS}
    return [ShardClip(*values) for values in zip(*(cols[f] for f in _CLIP_FIELDS))]


def write_bucket(job: RayShardJob, task: WriteTask, check_only: bool = False) -> dict[str, Any]:
    """Step 4 for one task: check, keep or write its shards; returns (written, stale
    reasons, clips indexed, failures by reason). ``check_only``: judge the shards there, change nothing."""
    first, end = task.starts[0], task.starts[-1]
    pieces = []
    for bucket, at in task.buckets:  # only the row groups that hold the task's clips
        lo = max(first - at, 0)
        pieces.append(read_rows(job.path("sorted", _bucket_part(bucket)), lo, end - at - lo, _CLIP_FIELDS))
    rows = pa.concat_tables(pieces)
    if rows.num_rows != end - first:
        raise RuntimeError(f"shard write task of bucket {task.bucket}: {rows.num_rows} clips, planned {end - first}")
    out = Path(job.out)

    shards = len(task.starts) - 1

    def one(k: int) -> tuple[str | None, bool, bool, list[tuple[ShardClip, str]], pa.Table | None]:
        lo, hi = task.starts[k] - first, task.starts[k + 1] - first
        clips = _clips(rows.slice(lo, hi - lo))
        path = out / SHARD_NAME.format(task.first_shard + k)
        reason, members = check_shard(path, clips, job.settings)
        existed = reason is not None or members is not None
        if check_only:
            return reason, existed, False, [], None
        written, failed, index = write_or_index(path, clips, job.settings, members)
        return reason, existed, written, [(c, failed[c.row]) for c in clips if c.row in failed], index

    with ThreadPoolExecutor(job.threads) as pool:
        results = list(pool.map(one, range(shards)))
    stale = [reason for reason, existed, *_ in results if existed]
    if check_only:
        return {"stale": stale}
    index = pa.concat_tables([r[4] for r in results])
    job.store("index").write(_bucket_part(task.bucket), index, row_group_size=COMMIT_ROWS)
    failed = sorted((pair for r in results for pair in r[3]), key=lambda pair: pair[0].row)
    fails = {
        "row": [c.row for c, _ in failed],
        "video_id": [c.video_id for c, _ in failed],
        "uri": [c.uri for c, _ in failed],
        "reason": [why for _, why in failed],
    }
    job.store("failed").write(_bucket_part(task.bucket), pa.table(fails, schema=_REJECTS))
    return {
        "shards": shards,
        "stale": stale,
        "written": sum(r[2] for r in results),
        "clips": index.num_rows,
        "reasons": dict(reason_counts(fails["reason"])),
    }


# ----------------------------------------------------------------------------- 5. commit


def _commit_index(job: RayShardJob, tasks: list[WriteTask], path: Path) -> None:
    schema = load_schema("shard_index")
    with atomic_output(path) as tmp:
        writer = RowGroupWriter(tmp)
        try:
            for t in tasks:  # in shard order, a row group at a time: the driver never holds a bucket's index
                index = pq.ParquetFile(job.path("index", _bucket_part(t.bucket)))
                for batch in index.iter_batches(batch_size=COMMIT_ROWS):
                    writer.add(conform(pa.Table.from_batches([batch]), schema))
            if writer.empty:
                writer.add(conform(empty_index(), schema), force=True)
        finally:
            writer.close()


def _commit_rejects(job: RayShardJob, blocks: list[Block], tasks: list[WriteTask], path: Path) -> None:
    """Rejects in row order: each block's, with the (rare) files that failed while being written."""
    schema = load_schema("shard_rejects")
    failed = [job.store("failed").read(_bucket_part(t.bucket)) for t in tasks]
    late = pa.concat_tables(failed).sort_by("row") if failed else _REJECTS.empty_table()
    late_rows = late.column("row").to_numpy()
    with atomic_output(path) as tmp:
        writer = RowGroupWriter(tmp)
        try:
            for b in blocks:
                lo, hi = np.searchsorted(late_rows, [b.first, b.end])
                table = pa.concat_tables(
                    [job.store("rejects").read(part_name(b.first, b.end - 1, b.rows)), late.slice(lo, hi - lo)]
                )
                writer.add(conform(table.sort_by("row"), schema))
            if writer.empty:
                writer.add(conform(_REJECTS.empty_table(), schema), force=True)
        finally:
            writer.close()


# ----------------------------------------------------------------------------- the job


def _source(cfg: ShardConfig) -> tuple[TableInput, str, tuple[str, ...], int]:
    """The training table as a block input (only the columns a shard needs), its kind, the
    columns checked against its schema, and its rows; InputError for a missing or
    unreadable file, a missing column or a wrong type (found from the footer alone)."""
    path = Path(cfg.manifest).absolute()  # Ray workers do not share the driver's working folder
    kind = table_kind(path)  # missing, not Parquet, truncated: one line
    parquet = open_parquet(path, "training table")
    schema = load_schema(kind)
    checked = tuple(c for c in WANTED if c in schema.names)
    check_table(parquet.schema_arrow.empty_table(), schema, str(cfg.manifest))  # every column there, of a fit type
    rows = parquet.metadata.num_rows
    if rows == 0:
        raise InputError(f"{cfg.manifest}: the {kind} table has no rows")
    present = tuple(c for c in WANTED if c in parquet.schema_arrow.names)
    return TableInput(root=str(path), files=(str(path),), columns=present), kind, checked, rows


def write_shards_on_ray(cfg: ShardConfig) -> dict[str, Any]:
    """:func:`~weaksup.data.shard_writer.write_shards` with Ray tasks doing the work (see the module docstring)."""
    from weaksup.progress import job_progress
    from weaksup.ray_engine import ray_session, ray_tasks

    source, kind, checked, total = _source(cfg)
    out = prepare_out(cfg).absolute()  # Ray workers do not share the driver's working folder
    staging = out / ".ray-parts"
    shutil.rmtree(staging, ignore_errors=True)  # the size and sort steps are always done again
    job = RayShardJob(
        source=source,
        kind=kind,
        checked=checked,
        name=str(cfg.manifest),
        staging=str(staging),
        out=str(out),
        seed=cfg.seed,
        bits=bucket_bits(total),
        threads=cfg.workers,
        settings=shard_settings(cfg),
    )
    blocks = list(plan_blocks(source, BLOCK_CHUNK, total))  # O(blocks)
    counts = np.zeros(1 << job.bits, np.int64)
    rejected: Counter = Counter()
    labels = [0, -1]
    width = None if cfg.ray_address else (os.cpu_count() or 1)
    try:
        with (
            ray_session(address=cfg.ray_address, workers=width or 1),
            job_progress(enabled=cfg.progress, desc="shard", unit="rows") as bar,
        ):
            sizing = bar.add_task("shard: size", total=total)
            for r in ray_tasks(size_block, blocks, shared=job, max_in_flight=width):
                if "error" in r:
                    raise InputError(r["error"])
                counts += np.asarray(r["buckets"], np.int64)
                rejected.update(r["reasons"])
                labels = [min(labels[0], r["label_min"]), max(labels[1], r["label_max"])]
                bar.advance(sizing, r["rows"])
            if labels[0] < 0:
                raise InputError(f"{cfg.manifest}: column 'label_id' has negative values")
            sorting = bar.add_task("shard: sort", total=len(counts))
            sorted_rows = 0
            for n in ray_tasks(sort_bucket, range(len(counts)), shared=job, max_in_flight=width):
                sorted_rows += n
                bar.advance(sorting)
            if sorted_rows != int(counts.sum()):
                raise RuntimeError(f"{out}: the sorted buckets hold {sorted_rows} rows, {counts.sum()} were sized")
            starts = plan_shard_starts(job, cfg, counts)
            tasks = plan_writes(starts, counts)
            shards = len(starts) - 1
            stale = StaleParts(out, "shard", "rewritten")
            if cfg.resume_strict:  # judge every shard there before any is rewritten or removed
                for r in ray_tasks(_check_bucket, tasks, shared=job, max_in_flight=width):
                    for reason in r["stale"]:
                        stale.check(reason)
                stale.report(True)
            remove_past_plan(out, shards)
            writing = bar.add_task("shard: write", total=shards)
            written, clips = 0, 0
            for r in ray_tasks(write_bucket, tasks, shared=job, max_in_flight=width):  # in completion order
                for reason in r["stale"]:
                    stale.check(reason)
                written += r["written"]
                clips += r["clips"]
                rejected.update(r["reasons"])
                bar.advance(writing, r["shards"])
        stale.report(False)
        _commit_index(job, tasks, out / INDEX_NAME)
        _commit_rejects(job, blocks, tasks, out / REJECTS_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = shard_summary(
        cfg,
        kind=kind,
        rows=total,
        clips=clips,
        rejected_by_reason=rejected,
        num_classes=labels[1] + 1,
        shards=shards,
        written=written,
    )
    write_json(summary, out / SUMMARY_NAME)
    return summary


def _check_bucket(job: RayShardJob, task: WriteTask) -> dict[str, Any]:
    return write_bucket(job, task, check_only=True)
