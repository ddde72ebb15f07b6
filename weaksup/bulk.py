"""Resumable, parallel bulk jobs over a list of inputs (probe, materialize, fingerprint).

A job maps each input row to exactly one output row. Results are written in parts
(``OUT.parts/part-*.parquet``, each atomic); a rerun after a kill reads the parts, skips
the rows already done and continues, so the final table is the same as an
uninterrupted run's. A worker function never raises: a failure becomes
``status="rejected"`` with an ``error`` reason (img2dataset style), so one bad file
never kills the job and every input row is accounted for.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.tables import load_schema, write_table

ROW = "_row"


@dataclass(frozen=True)
class BulkConfig:
    """How a bulk job runs: worker processes (0 = in-process), rows per part, a label."""

    workers: int = 2
    chunk_size: int = 64
    desc: str = "working"
    progress: bool = True
    engine: str = "local"  # "local" (a process pool) or "ray" (Ray Data; see weaksup.ray_engine)
    ray_address: str | None = None  # join this Ray cluster instead of starting a local one


def safe_call(fn: Callable[[dict], dict], item: dict) -> dict:
    """Run ``fn`` on one item; any exception becomes a rejected row with a one-line reason."""
    try:
        out = fn(item)
        out.setdefault("status", "ok")
        out.setdefault("error", None)
    except Exception as exc:  # noqa: BLE001 - a bulk job never dies on one bad file
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".strip()
        out = {"status": "rejected", "error": reason[:500] or traceback.format_exc(limit=1)[-200:]}
    out[ROW] = item[ROW]
    return {**item, **out}  # input columns (video_id, uri, ...) carry through, also to rejected rows


def run_chunk(fn: Callable[[dict], dict], items: list[dict]) -> list[dict]:
    return [safe_call(fn, it) for it in items]


def part_table(rows: list[dict], part_schema: pa.Schema) -> pa.Table:
    """Result rows as a part: the schema's columns (plus the row number), nothing else."""
    return pa.Table.from_pylist([{k: r.get(k) for k in part_schema.names} for r in rows], schema=part_schema)


def parts_dir(out: str | os.PathLike[str]) -> Path:
    """Where a job's resumable parts live: beside a local ``out``; for an object-store ``out``
    in a local staging folder named after it (``$WEAKSUP_STAGING``, else the temp folder),
    so a rerun on the same machine resumes and only the final table is uploaded."""
    if uris.is_local(out):
        path = uris.local_path(out)
        return path.with_name(path.name + ".parts")
    uri = uris.as_uri(out)
    digest = hashlib.sha1(uri.encode()).hexdigest()[:16]
    staging = Path(os.environ.get("WEAKSUP_STAGING") or tempfile.gettempdir()) / "weaksup-parts"
    return staging / f"{digest}-{uris.basename(uri)}.parts"


def summary_path(out: str | os.PathLike[str]) -> Path | str:
    """``OUT-stem.summary.json`` beside ``out`` (a Path for a local ``out``, else a uri)."""
    if uris.is_local(out):
        path = uris.local_path(out)
        return path.with_name(f"{path.stem}.summary.json")
    name = uris.basename(out)
    return uris.sibling(out, f"{name.rsplit('.', 1)[0] if '.' in name else name}.summary.json")


def _done_rows(parts: Path) -> set[int]:
    done: set[int] = set()
    if parts.is_dir():
        for p in sorted(parts.glob("part-*.parquet")):
            try:
                done.update(pq.read_table(p, columns=[ROW]).column(ROW).to_pylist())
            except Exception:  # a part cut short by a kill: redo its rows
                p.unlink()
    return done


def _write_part(parts: Path, table: pa.Table) -> None:
    ids = table.column(ROW)
    name = parts / f"part-{pc.min(ids).as_py():012d}-{pc.max(ids).as_py():012d}-{len(ids)}.parquet"
    tmp = name.with_name("." + name.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, name)


def run_bulk(
    items: Sequence[dict],
    fn: Callable[[dict], dict],
    *,
    schema_name: str,
    out: str | os.PathLike[str],
    config: BulkConfig = BulkConfig(),
) -> pa.Table:
    """Apply ``fn`` to every item (in parallel, resumably) and write table ``schema_name``.

    Each item is a dict; ``fn`` returns the output row's columns (``status``/``error``
    are filled in). Output rows follow the input order, whichever engine ran them.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if config.chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {config.chunk_size}")
    out = Path(out) if uris.is_local(out) else uris.as_uri(out)
    parts = parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    schema = load_schema(schema_name)
    part_schema = pa.schema([pa.field(f.name, f.arrow_type) for f in schema.fields] + [pa.field(ROW, pa.int64())])

    numbered = [dict(it, **{ROW: i}) for i, it in enumerate(items)]
    done = _done_rows(parts)
    todo = [it for it in numbered if it[ROW] not in done]
    chunks = [todo[i : i + config.chunk_size] for i in range(0, len(todo), config.chunk_size)]

    with Progress(
        TextColumn(f"[bold]{config.desc}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not config.progress, transient=False,
    ) as progress:
        task = progress.add_task(config.desc, total=len(numbered), completed=len(numbered) - len(todo))
        if config.engine == "ray":
            from weaksup.ray_engine import ray_map_chunks

            for block in ray_map_chunks(chunks, fn, part_schema, workers=config.workers, address=config.ray_address):
                _write_part(parts, block)
                progress.advance(task, block.num_rows)
        elif config.workers <= 0 or len(chunks) <= 1:
            for chunk in chunks:
                _write_part(parts, part_table(run_chunk(fn, chunk), part_schema))
                progress.advance(task, len(chunk))
        else:
            with ProcessPoolExecutor(max_workers=config.workers) as pool:
                futures: list[tuple[Future, int]] = [(pool.submit(run_chunk, fn, c), len(c)) for c in chunks]
                for fut, n in futures:
                    _write_part(parts, part_table(fut.result(), part_schema))
                    progress.advance(task, n)

    tables = [pq.read_table(p) for p in sorted(parts.glob("part-*.parquet"))]
    table = pa.concat_tables(tables) if tables else part_schema.empty_table()
    table = table.sort_by(ROW)
    rows = table.column(ROW).to_pylist()
    if rows != list(range(len(numbered))):
        raise RuntimeError(f"{out}: bulk job accounting mismatch ({len(rows)} rows for {len(numbered)} inputs)")
    result = write_table(schema_name, table.drop_columns([ROW]), out)
    shutil.rmtree(parts, ignore_errors=True)
    return result
