"""A log of the videos a clip dataset could not decode, written safely from many workers.

Data-loader workers are separate processes that cannot share a Parquet writer, so each
rejection is one JSON line appended with a single ``write()`` on a descriptor opened with
``O_APPEND``: the kernel places every line at the end of the file atomically, so lines
from several workers never interleave and nothing needs a lock. :func:`read_rejects`
turns the log into an Arrow table (and :func:`write_rejects_parquet` into Parquet) once
the epoch is over.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.outputs import atomic_path

REJECT_FIELDS: tuple[str, ...] = ("video_id", "uri", "reason", "epoch", "index", "pid", "time")


def append_reject(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one rejection (``video_id``, ``uri``, ``reason``, ``epoch``, ...) as a JSON line."""
    row = {"pid": os.getpid(), "time": time.time(), **record}
    line = (json.dumps(row, default=str, ensure_ascii=False) + "\n").encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_rejects(path: str | os.PathLike[str]) -> pa.Table:
    """All rejections logged at ``path`` (empty table if there is no log yet); a torn last line is skipped."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a process killed mid-write
    schema = pa.schema(
        [
            ("video_id", pa.string()),
            ("uri", pa.string()),
            ("reason", pa.string()),
            ("epoch", pa.int64()),
            ("index", pa.int64()),
            ("pid", pa.int64()),
            ("time", pa.float64()),
        ]
    )
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    extra = sorted({k for r in rows for k in r} - set(REJECT_FIELDS))
    table = pa.table(columns, schema=schema)
    for name in extra:
        table = table.append_column(name, pa.array([r.get(name) for r in rows]))
    return table


def write_rejects_parquet(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Convert the JSONL log at ``path`` to Parquet at ``out``; returns the number of rejections."""
    table = read_rejects(path)
    out = Path(out)
    tmp = atomic_path(out)
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return table.num_rows
