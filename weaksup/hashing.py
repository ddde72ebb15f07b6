"""Stable, vectorised hashing of ids: the same (seed, id) gives the same number anywhere.

Label draws in ``match`` and subset priorities in ``sample`` depend only on
``(seed, video_id)``, never on row order, sharding or worker count, and must not change
between Python processes (``hash()`` is salted) or library versions. FNV-1a over the
UTF-8 bytes, finished with SplitMix64, computed column-wise with numpy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser, vectorised: a well-mixed 64-bit hash of each uint64."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stable_hash64(ids: pa.Array | pa.ChunkedArray | list, seed: int = 0, salt: str = "") -> np.ndarray:
    """uint64 hash of each id's string form, keyed by ``seed`` and ``salt``."""
    arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(ids)
    if isinstance(arr, pa.ChunkedArray):  # chunk by chunk: no 2 GiB limit on the whole column
        parts = [stable_hash64(c, seed, salt) for c in arr.chunks]
        return np.concatenate(parts) if parts else np.empty(0, np.uint64)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    arr = pc.fill_null(arr, "")
    n = len(arr)
    key = np.uint64(_FNV_OFFSET)
    with np.errstate(over="ignore"):
        for byte in f"{seed}\x1f{salt}\x1f".encode():
            key = (key ^ np.uint64(byte)) * _FNV_PRIME
        h = np.full(n, key, dtype=np.uint64)
        if n == 0:
            return h
        width = 8 if pa.types.is_large_string(arr.type) else 4
        offsets = np.frombuffer(
            arr.buffers()[1], dtype=np.int64 if width == 8 else np.int32, count=n + 1, offset=arr.offset * width
        )
        data = arr.buffers()[2]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(1, np.uint8)
        starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
        shortest = int(lengths.min(initial=0))
        for j in range(int(lengths.max(initial=0))):
            if j < shortest:  # every id still has a byte here: whole-array update
                h = (h ^ data[starts + j].astype(np.uint64)) * _FNV_PRIME
            else:
                idx = np.flatnonzero(lengths > j)
                h[idx] = (h[idx] ^ data[starts[idx] + j].astype(np.uint64)) * _FNV_PRIME
        return splitmix64(h ^ lengths.astype(np.uint64))


def stable_uniform(ids: pa.Array | pa.ChunkedArray | list, seed: int = 0, salt: str = "") -> np.ndarray:
    """A uniform [0, 1) float per id, from :func:`stable_hash64`."""
    return (stable_hash64(ids, seed, salt) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
