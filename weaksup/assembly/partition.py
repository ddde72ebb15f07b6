"""`weaksup partition-videos`: split a videos table into N Parquet parts by video-id hash.

At internet scale ``match`` runs as many independent jobs, one per part. A part is a
function of the video id only (``stable_hash64(video_id, salt="partition") % N``), so
every copy of a video id lands in the same part and duplicate detection stays local to
it. Rows keep their input order inside a part (so "the first occurrence is kept" means
the same thing as over the whole table) and carry their 0-based row of the input table
in ``source_row``, which ``match`` reports in its rejects. Every input column is kept as
is (text hashtags stay text; ``match`` normalises them as it would the whole table).

Streamed: each input batch is grouped by part with one stable ``argsort`` and one gather,
and its slices appended to per-part buffers flushed as row groups; all buffers are
flushed once they hold a few batches' rows, so memory is bounded at any ``--parts``. The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.outputs import atomic_path, require_local_output
from weaksup.assembly.videos import SOURCE_ROW, require_columns, open_table, tag_column
from weaksup.errors import InputError
from weaksup.hashing import stable_hash64

PART_META_KEY = b"weaksup.partition"
PARTITION_SALT = "partition"
PARTITION_FILE = "_partition.json"  # "_" prefix: Parquet dataset readers skip it
MAX_PARTS = 4096  # one open Parquet writer per part


@dataclass(frozen=True)
class PartitionConfig:
    """Options of ``weaksup partition-videos``."""

    videos: Path
    out: Path
    parts: int = 16
    batch_size: int = 1 << 18
    row_group_rows: int = 1 << 17
    progress: bool = True


def part_name(i: int) -> str:
    """File name of part ``i``: ``part-00003.parquet``."""
    return f"part-{i:05d}.parquet"


def part_of(video_ids: pa.Array | pa.ChunkedArray | list, parts: int) -> np.ndarray:
    """The part (0..parts-1) of each video id; a function of the id's string form only.

    Null ids hash like the empty string: they go to one fixed part (match rejects them).
    """
    arr = video_ids if isinstance(video_ids, (pa.Array, pa.ChunkedArray)) else pa.array(video_ids)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())  # ints hash as their decimal string, as match reads them
    return (stable_hash64(arr, 0, PARTITION_SALT) % np.uint64(parts)).astype(np.int64)


def read_part_label(path: Path) -> tuple[int, int] | None:
    """``(i, n)`` from a part file's metadata (written by :func:`partition_videos`), else None."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:
        return None
    raw = meta.get(PART_META_KEY)
    if raw is None:
        return None
    i, n = raw.decode().split("/")
    return int(i), int(n)


def list_parts(folder: Path) -> list[Path]:
    """The ``part-*.parquet`` files of a folder, sorted; InputError if there are none."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a folder of part-*.parquet files")
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise InputError(f"{folder}: no part-*.parquet files")
    return parts


def _replace_folder(tmp: Path, out: Path) -> None:
    """Put the finished ``tmp`` folder at ``out``; an earlier partition there is replaced."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _ensure_open_files(parts: int) -> None:
    """Every part's writer stays open: raise the soft open-files limit if it is too low."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = parts + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise InputError(f"--parts {parts}: needs {need} open files, the limit is {hard}; use fewer parts")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def partition_videos(cfg: PartitionConfig) -> dict:
    """Split ``cfg.videos`` into ``cfg.parts`` Parquet parts under ``cfg.out``; return a summary."""
    require_local_output(cfg.out)
    videos, out = cfg.videos, Path(cfg.out)  # videos: a path, or a uri open_table understands
    if not 1 <= cfg.parts <= MAX_PARTS:
        raise InputError(f"--parts {cfg.parts}: must be between 1 and {MAX_PARTS}")
    dataset = open_table(videos)
    require_columns(dataset, str(videos), ("video_id", "uri"))
    tag_column(dataset, str(videos))
    _ensure_open_files(cfg.parts)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / PARTITION_FILE).is_file())):
        raise InputError(f"{out}: exists and is not an earlier partition-videos folder; choose a new --out")

    in_schema = dataset.schema
    keep_source_row = SOURCE_ROW in in_schema.names  # re-partitioning a part keeps the original rows
    if keep_source_row and not pa.types.is_integer(in_schema.field(SOURCE_ROW).type):
        raise InputError(f"{videos}: column {SOURCE_ROW!r} has type {in_schema.field(SOURCE_ROW).type}, expected int64")
    fields = [f for f in in_schema if f.name != SOURCE_ROW] + [pa.field(SOURCE_ROW, pa.int64(), nullable=False)]
    base_meta = dict(in_schema.metadata or {})
    base_meta.pop(PART_META_KEY, None)

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create output folder ({exc.strerror or exc})") from None
    tmp = atomic_path(out)  # a folder of parts; stale ones of killed runs are removed
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    rows_per_part = np.zeros(cfg.parts, np.int64)
    n_read = 0
    writers: list[pq.ParquetWriter] = []
    try:
        for i in range(cfg.parts):
            schema = pa.schema(fields, metadata={**base_meta, PART_META_KEY: f"{i}/{cfg.parts}".encode()})
            writers.append(pq.ParquetWriter(tmp / part_name(i), schema, compression="zstd"))
        buffers: list[list[pa.Table]] = [[] for _ in range(cfg.parts)]
        buffered = np.zeros(cfg.parts, np.int64)
        limit = max(cfg.row_group_rows, 1)
        # Flush everything once the buffers together hold this many rows: bounded memory at any --parts.
        total_limit = max(4 * cfg.batch_size, limit)

        def flush(i: int) -> None:
            if buffered[i]:
                writers[i].write_table(pa.concat_tables(buffers[i]).combine_chunks(), row_group_size=int(buffered[i]))
                buffers[i].clear()
                buffered[i] = 0

        from weaksup.progress import count_progress

        total = dataset.count_rows() if dataset.format.default_extname == "parquet" else None
        with count_progress(cfg.progress, "partition") as bar:
            task = bar.add_task("partition", total=total)
            try:
                batches = dataset.to_batches(batch_size=cfg.batch_size, batch_readahead=1, fragment_readahead=1)
                for batch in batches:
                    n = batch.num_rows
                    if n == 0:
                        continue
                    table = pa.Table.from_batches([batch])
                    if not keep_source_row:
                        table = table.append_column(pa.field(SOURCE_ROW, pa.int64(), nullable=False),
                                                    pa.array(np.arange(n_read, n_read + n), pa.int64()))
                    else:
                        table = table.set_column(table.schema.get_field_index(SOURCE_ROW), SOURCE_ROW,
                                                 table.column(SOURCE_ROW).cast(pa.int64()))
                    table = table.select([f.name for f in fields]).cast(pa.schema(fields))
                    n_read += n
                    part = part_of(batch.column("video_id"), cfg.parts)
                    order = np.argsort(part, kind="stable")  # stable: input order kept inside each part
                    bounds = np.searchsorted(part[order], np.arange(cfg.parts + 1))
                    grouped = table.take(pa.array(order))  # one gather per batch; parts are zero-copy slices
                    for i in np.flatnonzero(np.diff(bounds)).tolist():
                        buffers[i].append(grouped.slice(bounds[i], bounds[i + 1] - bounds[i]))
                        buffered[i] += bounds[i + 1] - bounds[i]
                        rows_per_part[i] += bounds[i + 1] - bounds[i]
                        if buffered[i] >= limit:
                            flush(i)
                    if buffered.sum() >= total_limit:
                        for i in range(cfg.parts):
                            flush(i)
                    bar.advance(task, n)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InputError(f"{videos}: cannot read row {n_read} onwards ({str(exc).splitlines()[0][:200]})") from None
        for i in range(cfg.parts):
            flush(i)
            writers[i].close()
        writers.clear()
        summary = {
            "videos": str(videos),
            "parts": cfg.parts,
            "rows": n_read,
            "accounted": int(rows_per_part.sum()) == n_read,
            "rows_per_part_min": int(rows_per_part.min()),
            "rows_per_part_max": int(rows_per_part.max()),
            "key": f"stable_hash64(video_id, seed=0, salt={PARTITION_SALT!r}) % parts",
            "out": str(out),
        }
        (tmp / PARTITION_FILE).write_text(
            json.dumps({**summary, "rows_per_part": rows_per_part.tolist(), "columns": [f.name for f in fields]}, indent=2) + "\n",
            encoding="utf-8",
        )
        _replace_folder(tmp, out)
    finally:
        for w in writers:  # only left here after an error
            w.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary
