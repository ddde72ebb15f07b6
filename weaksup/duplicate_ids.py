"""Which ids repeat in a table, found by Ray tasks: the driver holds the repeats only.

fetch and ``splits --materialize`` refuse or reject repeated ids. The local engines keep one
64-bit hash per row (8 bytes a row) and sort it; at cluster scale that array is the one
thing that grows with the rows on the driver. Here the work is a distributed sort by hash
range, as in a shuffle:

1. a task per block of the table (read from its Parquet file where the task runs) hashes
   its ids and writes ``(bucket, hash)`` sorted by hash as one part, the bucket being the
   hash's top bits, so buckets split the hashes evenly;
2. a task per bucket reads its hashes from every part (row-group statistics skip the rest),
   sorts them and returns the values that occur more than once.

The driver gets the repeated hash values (as many as there are repeated ids, plus a rare
collision) and confirms them on the exact strings in a streamed pass of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from weaksup.blocks import Block, PartStore, TableInput, part_name, plan_blocks
from weaksup.hashing import stable_hash64

#: Hashes per bucket on average: one sort task holds about 16 bytes a hash.
BUCKET_ROWS = 1 << 22
#: Rows per block of the hashing step.
BLOCK_CHUNK = 1 << 16
#: Row groups of the hashed parts: small, so a bucket task reads its hashes without the rest.
GROUP_ROWS = 1 << 13
_HASHED = pa.schema([("bucket", pa.int64()), ("hash", pa.uint64())])


def bucket_bits(rows: int) -> int:
    """log2 of the bucket count: enough buckets that one holds about :data:`BUCKET_ROWS` hashes."""
    return max(0, int(np.ceil(np.log2(max(rows, 1) / BUCKET_ROWS))))


@dataclass(frozen=True)
class IdHashJob:
    """What every task needs (put into the object store once)."""

    source: TableInput
    column: str
    salt: str  # the caller's: its own pass confirms the repeats with the same hash
    store: PartStore
    bits: int


def id_hashes(ids: pa.Array | pa.ChunkedArray, salt: str) -> np.ndarray:
    """The hash every engine gives an id (its text; a null hashes as the empty string)."""
    return stable_hash64(ids, 0, salt)


def repeated_values(hashes: np.ndarray) -> np.ndarray:
    """The values that occur more than once, sorted (``hashes`` is sorted in place: no copy)."""
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def hash_block(job: IdHashJob, block: Block) -> int:
    """Step 1 for one block: its ids' hashes by bucket, one part; returns the rows hashed."""
    hashes = np.sort(id_hashes(job.source.read_table(block, [job.column]).column(job.column), job.salt))
    bucket = (hashes >> np.uint64(64 - job.bits)).astype(np.int64) if job.bits else np.zeros(len(hashes), np.int64)
    table = pa.table({"bucket": bucket, "hash": hashes}, schema=_HASHED)
    job.store.write(part_name(block.first, block.end - 1, block.rows), table, row_group_size=GROUP_ROWS)
    return block.rows


def bucket_repeats(job: IdHashJob, bucket: int) -> tuple[int, list[int]]:
    """Step 2 for one bucket: (hashes read, the hash values that occur more than once)."""
    pieces = [job.store.read(name, filters=[("bucket", "=", bucket)]) for name in job.store.names()]
    hashes = np.concatenate([p.column("hash").to_numpy() for p in pieces]) if pieces else np.empty(0, np.uint64)
    return len(hashes), repeated_values(hashes).tolist()


def repeated_id_hashes(
    source: TableInput, column: str, salt: str, *, store: PartStore, rows: int, max_in_flight: int | None = None
) -> np.ndarray:
    """The sorted hash values (:func:`id_hashes`) that occur more than once in ``column``,
    from Ray tasks (inside a :func:`~weaksup.ray_engine.ray_session`); ``store`` is a
    folder every node reaches, emptied first and removed after."""
    from weaksup.ray_engine import ray_tasks

    store.remove_all()
    store.make()
    try:
        job = IdHashJob(source, column, salt, store, bucket_bits(rows))
        blocks = plan_blocks(source, BLOCK_CHUNK, rows)
        hashed = sum(ray_tasks(hash_block, blocks, shared=job, max_in_flight=max_in_flight))
        seen, repeated = 0, []
        for n, values in ray_tasks(bucket_repeats, range(1 << job.bits), shared=job, max_in_flight=max_in_flight):
            seen += n
            repeated += values
        if hashed != rows or seen != rows:
            raise RuntimeError(f"{store.root}: {rows} rows planned, {hashed} hashed, {seen} in the buckets")
        return np.sort(np.array(repeated, np.uint64))
    finally:
        store.remove_all()
