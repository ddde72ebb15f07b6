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
flushed once they hold a few batches' rows, so memory is bounded at any ``--parts``. The
folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from weaksup.assembly.videos import SOURCE_ROW, open_table, require_columns, tag_column
from weaksup.errors import InputError, first_line, one_line
from weaksup.hashing import stable_hash64
from weaksup.outputs import atomic_path, require_local_output

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


def _check_partition_inputs(cfg: PartitionConfig) -> tuple[ds.Dataset, Path]:
    """Refuse bad options, inputs and a foreign --out before anything is written; the videos dataset and out folder."""
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
    return dataset, out


def _part_fields(in_schema: pa.Schema, videos: Path) -> tuple[list[pa.Field], dict, bool]:
    """The parts' columns (the input's, then an int64 source_row), their base metadata, and whether the input
    already carries source_row (re-partitioning a part keeps the original rows)."""
    keep_source_row = SOURCE_ROW in in_schema.names
    if keep_source_row and not pa.types.is_integer(in_schema.field(SOURCE_ROW).type):
        raise InputError(f"{videos}: column {SOURCE_ROW!r} has type {in_schema.field(SOURCE_ROW).type}, expected int64")
    fields = [f for f in in_schema if f.name != SOURCE_ROW] + [pa.field(SOURCE_ROW, pa.int64(), nullable=False)]
    base_meta = dict(in_schema.metadata or {})
    base_meta.pop(PART_META_KEY, None)
    return fields, base_meta, keep_source_row


def _fresh_temp_folder(out: Path) -> Path:
    """An empty temporary folder beside ``out`` (the parts are renamed into place only when complete)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create output folder ({one_line(exc, with_type=False)})") from None
    tmp = atomic_path(out)  # a folder of parts; stale ones of killed runs are removed
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


class _PartBuffers:
    """One open Parquet writer and row buffer per part, so row groups are large and memory stays bounded."""

    def __init__(self, parts: int, row_group_rows: int, batch_size: int) -> None:
        self.parts = parts
        self.writers: list[pq.ParquetWriter] = []
        self.buffers: list[list[pa.Table]] = [[] for _ in range(parts)]
        self.buffered = np.zeros(parts, np.int64)
        self.rows_per_part = np.zeros(parts, np.int64)
        self.limit = max(row_group_rows, 1)
        # Flush everything once the buffers together hold this many rows: bounded memory at any --parts.
        self.total_limit = max(4 * batch_size, self.limit)

    def open(self, tmp: Path, fields: list[pa.Field], base_meta: dict) -> None:
        """Open every part's writer under ``tmp``, each schema stamped with its ``i/n`` label."""
        for i in range(self.parts):
            schema = pa.schema(fields, metadata={**base_meta, PART_META_KEY: f"{i}/{self.parts}".encode()})
            self.writers.append(pq.ParquetWriter(tmp / part_name(i), schema, compression="zstd"))

    def flush(self, i: int) -> None:
        """Write part ``i``'s buffered rows as one row group."""
        if self.buffered[i]:
            self.writers[i].write_table(
                pa.concat_tables(self.buffers[i]).combine_chunks(), row_group_size=int(self.buffered[i])
            )
            self.buffers[i].clear()
            self.buffered[i] = 0

    def add(self, table: pa.Table, part: np.ndarray) -> None:
        """Append each row of ``table`` to its part's buffer (input order kept), flushing full buffers."""
        order = np.argsort(part, kind="stable")  # stable: input order kept inside each part
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        grouped = table.take(pa.array(order))  # one gather per batch; parts are zero-copy slices
        for i in np.flatnonzero(np.diff(bounds)).tolist():
            self.buffers[i].append(grouped.slice(bounds[i], bounds[i + 1] - bounds[i]))
            self.buffered[i] += bounds[i + 1] - bounds[i]
            self.rows_per_part[i] += bounds[i + 1] - bounds[i]
            if self.buffered[i] >= self.limit:
                self.flush(i)
        if self.buffered.sum() >= self.total_limit:
            for i in range(self.parts):
                self.flush(i)

    def close(self) -> None:
        """Flush and close every writer (the parts are complete)."""
        for i in range(self.parts):
            self.flush(i)
            self.writers[i].close()
        self.writers.clear()

    def abort(self) -> None:
        """Close the writers still open (only left after an error)."""
        for w in self.writers:
            w.close()


def _with_source_row(table: pa.Table, keep_source_row: bool, n_read: int, fields: list[pa.Field]) -> pa.Table:
    """A batch in the parts' schema, its source_row the input's row number (or the input's own source_row)."""
    n = table.num_rows
    if not keep_source_row:
        table = table.append_column(
            pa.field(SOURCE_ROW, pa.int64(), nullable=False), pa.array(np.arange(n_read, n_read + n), pa.int64())
        )
    else:
        table = table.set_column(
            table.schema.get_field_index(SOURCE_ROW), SOURCE_ROW, table.column(SOURCE_ROW).cast(pa.int64())
        )
    return table.select([f.name for f in fields]).cast(pa.schema(fields))


def _stream_into_parts(
    cfg: PartitionConfig, dataset: ds.Dataset, fields: list[pa.Field], keep_source_row: bool, parts: _PartBuffers
) -> int:
    """Stream the videos table batch by batch into the part buffers (with a progress bar); the rows read."""
    from weaksup.progress import count_progress

    videos = cfg.videos
    n_read = 0
    total = dataset.count_rows() if dataset.format.default_extname == "parquet" else None
    with count_progress(cfg.progress, "partition") as bar:
        task = bar.add_task("partition", total=total)
        try:
            batches = dataset.to_batches(batch_size=cfg.batch_size, batch_readahead=1, fragment_readahead=1)
            for batch in batches:
                n = batch.num_rows
                if n == 0:
                    continue
                table = _with_source_row(pa.Table.from_batches([batch]), keep_source_row, n_read, fields)
                n_read += n
                parts.add(table, part_of(batch.column("video_id"), cfg.parts))
                bar.advance(task, n)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"{videos}: cannot read row {n_read} onwards ({first_line(exc)})") from None
    return n_read


def part_fields(in_schema: pa.Schema, videos: object) -> tuple[list[pa.Field], dict, bool]:
    """The columns of parts split from a table of schema ``in_schema`` (its columns, then an int64
    ``source_row``), their base metadata (an input's own part label dropped), and whether the
    input carries ``source_row`` already (kept: re-partitioning a part keeps the original rows)."""
    return _part_fields(in_schema, Path(str(videos)))


def in_part_schema(table: pa.Table, keep_source_row: bool, row0: int, fields: list[pa.Field]) -> pa.Table:
    """Input rows starting at row ``row0`` of the whole table, in the parts' schema ``fields``
    (see :func:`part_fields`): ``source_row`` is their row number, or the input's own."""
    return _with_source_row(table, keep_source_row, row0, fields)


def group_by_part(table: pa.Table, part: np.ndarray, parts: int) -> list[tuple[int, pa.Table]]:
    """The rows of ``table`` grouped by their part ``part`` (0..parts-1; input order kept inside
    each group): (part, rows) for every part that has rows, in part order. One stable sort and
    one gather; the groups are zero-copy slices of that gather."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    grouped = table.take(pa.array(order))
    return [(i, grouped.slice(bounds[i], bounds[i + 1] - bounds[i])) for i in np.flatnonzero(np.diff(bounds)).tolist()]


def partition_videos(cfg: PartitionConfig) -> dict:
    """Split ``cfg.videos`` into ``cfg.parts`` Parquet parts under ``cfg.out``; return a summary."""
    dataset, out = _check_partition_inputs(cfg)
    videos = cfg.videos
    fields, base_meta, keep_source_row = _part_fields(dataset.schema, videos)
    tmp = _fresh_temp_folder(out)
    parts = _PartBuffers(cfg.parts, cfg.row_group_rows, cfg.batch_size)
    try:
        parts.open(tmp, fields, base_meta)
        n_read = _stream_into_parts(cfg, dataset, fields, keep_source_row, parts)
        parts.close()
        rows_per_part = parts.rows_per_part
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
            json.dumps(
                {**summary, "rows_per_part": rows_per_part.tolist(), "columns": [f.name for f in fields]}, indent=2
            )
            + "\n",
            encoding="utf-8",
        )
        _replace_folder(tmp, out)
    finally:
        parts.abort()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary
