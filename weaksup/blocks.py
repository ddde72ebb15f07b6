"""Where a bulk job's rows come from and where its parts go, in blocks.

A bulk job (probe, fingerprint, materialize, fetch) is cut into *blocks*: contiguous
ranges of input rows, planned from the input's Parquet footers only (row-group sizes),
so the process that plans holds O(blocks), never the rows. Whoever works on a block
reads its rows itself (:meth:`TableInput.read`), on whichever machine it runs, and
writes its results as parts into a :class:`PartStore` that every worker reaches (a
local folder, shared by all nodes of a cluster, or an object-store prefix).

Block sizes depend only on the row count and the chunk size (rows per part), never on
the number of workers, so a rerun with other workers or another engine finds its parts
where it left them.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from weaksup import uris

#: Blocks never hold more than this many chunks (parts): a block is one task's work.
MAX_CHUNKS_PER_BLOCK = 64
PART_NAME = re.compile(r"^part-(\d{12})-(\d{12})-(\d+)\.parquet$")
BLOCK_DIR = re.compile(r"^block-(\d{12})$")


@dataclass(frozen=True)
class TableInput:
    """A job's input table as Parquet files, read block by block where the work runs.

    ``root`` (a path or uri) decides the filesystem; ``files`` are its Parquet files in
    table order (paths inside that filesystem); ``to_items`` turns a block's ``columns``
    into the job's item dicts (a module-level function or a ``functools.partial`` of one,
    so it ships to worker processes and Ray nodes); it may raise ``InputError`` for a
    bad row, naming the row by the table's ``first_row`` argument.
    """

    root: str
    files: tuple[str, ...]
    columns: tuple[str, ...]
    to_items: Callable[[pa.Table, int], list[dict]] | None = None  # None: the job reads tables (read_table)

    def filesystem(self) -> Any:
        return uris.pyarrow_filesystem(self.root)[0]

    def row_groups(self) -> Iterator[tuple[int, int, int]]:
        """(file index, row group, rows) of every row group, from the footers."""
        fs = self.filesystem()
        for i, f in enumerate(self.files):
            meta = pq.ParquetFile(f, filesystem=fs).metadata
            for g in range(meta.num_row_groups):
                yield i, g, meta.row_group(g).num_rows

    def read_table(self, block: Block, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of ``block`` (``columns``, default the job's): its row group, sliced."""
        table = pq.ParquetFile(self.files[block.file], filesystem=self.filesystem()).read_row_group(
            block.group, columns=list(columns if columns is not None else self.columns)
        )
        return table.slice(block.offset, block.rows)

    def read(self, block: Block) -> list[dict]:
        """The items of ``block``: its rows with only the needed columns, through ``to_items``."""
        if self.to_items is None:
            raise TypeError("this TableInput has no to_items: read its blocks with read_table")
        return self.to_items(self.read_table(block), block.first)


@dataclass(frozen=True)
class Block:
    """Input rows ``first .. first + rows - 1`` (global row numbers) and where they are:
    row group ``group`` of file ``file`` from ``offset`` on, or ``items`` given inline (an
    input that is already in memory). Its parts live in their own folder of the part store
    (:func:`block_folder`), so whoever works on it, and the commit, list only its parts."""

    first: int
    rows: int
    file: int = -1
    group: int = -1
    offset: int = 0
    items: Sequence[dict] | None = None

    @property
    def end(self) -> int:
        return self.first + self.rows


def block_rows(total: int, chunk_size: int) -> int:
    """Rows per block: whole chunks, enough blocks to spread a small job (one per chunk up
    to 64 chunks), at most :data:`MAX_CHUNKS_PER_BLOCK` chunks for a big one."""
    chunks = -(-total // chunk_size) if total else 1
    return chunk_size * max(1, min(MAX_CHUNKS_PER_BLOCK, -(-chunks // 64)))


def plan_blocks(
    source: TableInput | Sequence[dict],
    chunk_size: int,
    total: int | None = None,
    groups: Sequence[tuple[int, int, int]] | None = None,
) -> Iterator[Block]:
    """The job's blocks in row order. A block never spans two row groups (a worker reads one).
    ``groups`` are the input's row groups when already read (:meth:`TableInput.row_groups`)."""
    if not isinstance(source, TableInput):
        size = block_rows(len(source), chunk_size)
        for first in range(0, len(source), size):
            yield Block(first, min(size, len(source) - first), items=list(source[first : first + size]))
        return
    if groups is None:
        groups = list(source.row_groups())
    if total is None:
        total = sum(n for _, _, n in groups)
    size = block_rows(total, chunk_size)
    first = 0
    for f, g, n in groups:
        for offset in range(0, n, size):
            rows = min(size, n - offset)
            yield Block(first, rows, file=f, group=g, offset=offset)
            first += rows


def part_name(first: int, last: int, rows: int) -> str:
    return f"part-{first:012d}-{last:012d}-{rows}.parquet"


def block_folder(first: int) -> str:
    """The folder of a block's parts inside the part store, named by its first row."""
    return f"block-{first:012d}"


def folder_first(name: str) -> int | None:
    """The first row of a block folder's name; None for anything else."""
    m = BLOCK_DIR.match(name)
    return int(m.group(1)) if m else None


class PartStore:
    """A folder of parts that every worker reaches: a local path (one filesystem that every
    node mounts at the same path) or an object-store prefix. Writes are whole or nothing."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.local = uris.is_local(root)
        # absolute: Ray workers do not share the driver's working folder
        self.root: Path | str = uris.local_path(root).absolute() if self.local else uris.as_uri(root).rstrip("/")

    def __reduce__(self) -> tuple:  # ships as its root (fsspec handles are rebuilt per process)
        return (PartStore, (str(self.root),))

    def make(self) -> None:
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def remove_all(self) -> None:
        if self.local:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)
            return
        fs, path = uris.url_to_fs(self.root)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def block(self, first: int) -> PartStore:
        """The store of one block's parts (a subfolder)."""
        return self.child(block_folder(first))

    def child(self, name: str) -> PartStore:
        """A subfolder (a block's parts, or a step's scratch parts that the block listing ignores)."""
        return PartStore(Path(self.root) / name if self.local else f"{self.root}/{name}")

    def folders(self) -> list[int]:
        """First rows of the block folders there (an earlier run's blocks), sorted."""
        if self.local:
            root = Path(self.root)
            found = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        else:
            fs, path = uris.url_to_fs(self.root)
            found = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
        return sorted(f for n in found if (f := folder_first(n)) is not None)

    def names(self) -> list[str]:
        """Names of the finished parts (temporaries and other files left out), sorted."""
        if self.local:
            root = Path(self.root)
            found = [p.name for p in root.iterdir()] if root.is_dir() else []
        else:
            fs, path = uris.url_to_fs(self.root)
            found = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
        return sorted(n for n in found if PART_NAME.match(n))

    def remove_temporaries(self) -> None:
        """Temporaries of killed writers (a local folder; object stores publish only whole uploads)."""
        if self.local and Path(self.root).is_dir():
            for p in Path(self.root).glob("**/.part-*.tmp-*"):
                p.unlink(missing_ok=True)

    def read(self, name: str, columns: Sequence[str] | None = None, filters: list | None = None) -> pa.Table:
        """A part (``columns`` of it; ``filters`` as pyarrow's, which skip row groups by their statistics)."""
        cols = list(columns) if columns else None
        if self.local:
            return pq.read_table(Path(self.root) / name, columns=cols, filters=filters)
        with uris.open_input(f"{self.root}/{name}") as f:
            return pq.read_table(f, columns=cols, filters=filters)

    def write(self, name: str, table: pa.Table, row_group_size: int | None = None) -> None:
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            final = Path(self.root) / name
            tmp = final.with_name(f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")  # unique per writer
            try:
                pq.write_table(table, tmp, row_group_size=row_group_size)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            return
        with tempfile.TemporaryDirectory() as tmpdir:
            local = Path(tmpdir) / name
            pq.write_table(table, local, row_group_size=row_group_size)
            uris.upload_atomic(local, f"{self.root}/{name}")

    def remove(self, name: str) -> None:
        if self.local:
            (Path(self.root) / name).unlink(missing_ok=True)
            return
        fs, path = uris.url_to_fs(f"{self.root}/{name}")
        if fs.exists(path):
            fs.rm(path)
