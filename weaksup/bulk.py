"""Resumable, parallel bulk jobs over a list of inputs (probe, materialize, fingerprint).

A job maps each input row to exactly one output row. Results are written in parts
(``OUT.parts/part-*.parquet``, each atomic); a rerun after a kill reads the parts, skips
the rows already done and continues, so the final table is the same as an
uninterrupted run's.

A part is only reused when it provably belongs to the job: each one carries a *stamp* in
its Parquet schema metadata (``weaksup.stamp``): the job's settings that change its rows
and a sha256 digest of its input rows (the ``key`` fields, e.g. video_id and uri, of its
rows in order). A part whose stamp differs from what this job would write (another
table, a reordered or edited one, other settings, or no stamp at all) is stale: it is
deleted and its rows are done again, with one warning per job saying how many parts and
why; with ``resume_strict`` the job stops instead (InputError naming the difference).
``resume=False`` deletes every old part first. The same stamps (:func:`make_stamp`,
:func:`stale_reason`, :class:`StaleParts`) guard extract's chunks and the tar shards. A
worker function never raises: a failure becomes ``status="rejected"`` with an ``error``
reason (img2dataset style), so one bad file never kills the job and every input row is
accounted for.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.errors import InputError, one_line
from weaksup.outputs import side_path
from weaksup.pools import make_pool
from weaksup.tables import load_schema, write_table

ROW = "_row"
STAMP_KEY = b"weaksup.stamp"  # Parquet schema metadata key (and tar PAX header) of a piece's stamp
STAMP_VERSION = 1
UNSTAMPED = "no stamp (written by an older weaksup or another tool)"
ROWS_CHANGED = "input rows changed"


@dataclass(frozen=True)
class BulkConfig:
    """How a bulk job runs: worker processes (0 = in-process), rows per part, a label."""

    workers: int = 2
    chunk_size: int = 64
    desc: str = "working"
    progress: bool = True
    engine: str = "local"  # "local" (a process pool) or "ray" (Ray Data; see weaksup.ray_engine)
    ray_address: str | None = None  # join this Ray cluster instead of starting a local one
    resume: bool = True  # False: delete an earlier run's parts first
    resume_strict: bool = False  # stop (InputError) on a stale part instead of recomputing it

    @classmethod
    def of(cls, stage: Any, desc: str) -> BulkConfig:
        """The bulk settings of a stage's config (probe, fingerprint, fetch): its workers, chunk
        size, progress, engine, Ray address and resume options, under the bar label ``desc``."""
        names = ("workers", "chunk_size", "progress", "engine", "ray_address", "resume", "resume_strict")
        return cls(desc=desc, **{name: getattr(stage, name) for name in names})

    def __post_init__(self) -> None:  # bad numbers are bad input, refused before any row is worked on
        if self.workers < 0:
            raise InputError(f"workers must be >= 0 (0 = in this process), got {self.workers}")
        if self.chunk_size < 1:
            raise InputError(f"chunk size must be >= 1, got {self.chunk_size}")


# ----------------------------------------------------------------------------- stamps


class StaleResumeWarning(UserWarning):
    """Pieces of an earlier run did not belong to this job and were recomputed."""


def _canonical(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as they read back from JSON (tuples as lists, keys as strings), for comparing."""
    return json.loads(json.dumps(dict(settings), sort_keys=True, default=str))


def row_digest(rows: Iterable[Any]) -> str:
    """sha256 over the rows' JSON, one line each, in order (a reordered or edited row changes it)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(row if isinstance(row, bytes) else json.dumps(row, default=str, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def make_stamp(settings: Mapping[str, Any], rows: str) -> dict[str, Any]:
    """What produced a piece: the settings that change its content and its input rows' digest."""
    return {"version": STAMP_VERSION, "settings": _canonical(settings), "rows": rows}


def read_stamp(raw: bytes | str | None) -> dict[str, Any] | None:
    """A stamp from metadata bytes; None when absent or unreadable."""
    if not raw:
        return None
    try:
        stamp = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if isinstance(value, (bool, int, str)) else json.dumps(value, sort_keys=True)


def stale_reason(stamp: Mapping[str, Any] | None, settings: Mapping[str, Any], rows: str | None) -> str | None:
    """Why a piece with ``stamp`` does not belong to a job with ``settings`` and input digest
    ``rows`` (None: its rows are not in this job's input at all); None when it does."""
    if not stamp or stamp.get("version") != STAMP_VERSION:
        return UNSTAMPED
    old, new = stamp.get("settings") or {}, _canonical(settings)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        return "settings changed: " + ", ".join(f"{k} {_show(old.get(k))} -> {_show(new.get(k))}" for k in changed)
    if rows is None or stamp.get("rows") != rows:
        return ROWS_CHANGED
    return None


class StaleParts:
    """The stale pieces one job found; :meth:`report` warns once (or stops, when strict)."""

    def __init__(self, where: object, what: str = "part", redo: str = "recomputed") -> None:
        self.where, self.what, self.redo = where, what, redo
        self.reasons: list[str] = []
        self.total = 0

    def check(self, reason: str | None) -> bool:
        """Count one existing piece; True when it belongs to the job."""
        self.total += 1
        if reason is not None:
            self.reasons.append(reason)
        return reason is None

    def why(self) -> str:
        counts = Counter(self.reasons)
        if len(counts) == 1:
            return self.reasons[0]
        return "; ".join(f"{reason} ({n})" for reason, n in counts.most_common())

    def report(self, strict: bool) -> None:
        """Nothing when every piece belongs; else one warning line, or InputError with ``strict``."""
        if not self.reasons:
            return
        n, what = len(self.reasons), self.what + ("s" if self.total != 1 else "")
        if strict:
            raise InputError(
                f"{self.where}: {n} of {self.total} {what} of an earlier run {'does' if n == 1 else 'do'} not "
                f"belong to "
                f"this job ({self.why()}); "
                "rerun without --resume-strict to recompute them, or with --no-resume to start over"
            )
        were = "was" if n == 1 else "were"
        warnings.warn(
            f"{self.where}: {n} of {self.total} {what} of an earlier run {were} stale and "
            f"{'is' if n == 1 else 'are'} {self.redo} ({self.why()})",
            StaleResumeWarning,
            stacklevel=3,
        )


def safe_call(fn: Callable[[dict], dict], item: dict) -> dict:
    """Run ``fn`` on one item; any exception becomes a rejected row with a one-line reason."""
    try:
        out = fn(item)
        out.setdefault("status", "ok")
        out.setdefault("error", None)
    except Exception as exc:  # noqa: BLE001 - a bulk job never dies on one bad file
        out = {"status": "rejected", "error": one_line(exc)}
    out[ROW] = item[ROW]
    return {**item, **out}  # input columns (video_id, uri, ...) carry through, also to rejected rows


class ChunkFunction:
    """A job function of a whole chunk (items in, one row per item out, in order), for jobs
    whose rows run concurrently inside one process (fetch's async requests). Wraps a
    module-level function, so process pools and Ray can ship it."""

    def __init__(self, fn: Callable[[list[dict]], list[dict]]) -> None:
        self.fn = fn


def run_chunk(fn: Callable[[dict], dict] | ChunkFunction, items: list[dict]) -> list[dict]:
    if not isinstance(fn, ChunkFunction):
        return [safe_call(fn, it) for it in items]
    try:
        rows = fn.fn(items)
        if len(rows) != len(items):
            raise RuntimeError(f"chunk function returned {len(rows)} rows for {len(items)} items")
    except Exception as exc:  # noqa: BLE001 - the chunk's rows are rejected, the job goes on
        rows = [{"status": "rejected", "error": one_line(exc)} for _ in items]
    out = []
    for item, row in zip(items, rows):
        row = {"status": "ok", "error": None, **row, ROW: item[ROW]}
        out.append({**item, **row})
    return out


def part_table(rows: list[dict], part_schema: pa.Schema) -> pa.Table:
    """Result rows as a part: the schema's columns (plus the row number), nothing else."""
    return pa.Table.from_pylist([{k: r.get(k) for k in part_schema.names} for r in rows], schema=part_schema)


def parts_dir(out: str | os.PathLike[str]) -> Path:
    """Where a job's resumable parts live: beside a local ``out``; for an object-store ``out``
    in a local staging folder named after it (``$WEAKSUP_STAGING``, else the temp folder),
    so a rerun on the same machine resumes and only the final table is uploaded."""
    if uris.is_local(out):
        return Path(side_path(out, ".parts", whole_name=True))
    uri = uris.as_uri(out)
    digest = hashlib.sha1(uri.encode()).hexdigest()[:16]
    staging = Path(os.environ.get("WEAKSUP_STAGING") or tempfile.gettempdir()) / "weaksup-parts"
    return staging / f"{digest}-{uris.basename(uri)}.parts"


def summary_path(out: str | os.PathLike[str]) -> Path | str:
    """``OUT-stem.summary.json`` beside ``out`` (a Path for a local ``out``, else a uri)."""
    return side_path(out, ".summary.json", any_extension=True)


def _rows_digest(keys: list[bytes], rows: list[int]) -> str | None:
    """The digest of this job's input rows ``rows``; None when one is past the input's end."""
    if any(r < 0 or r >= len(keys) for r in rows):
        return None
    return row_digest(keys[r] for r in rows)


def _done_rows(parts: Path, keys: list[bytes], settings: Mapping[str, Any], strict: bool) -> set[int]:
    """Rows of the parts that belong to this job; stale parts are deleted (after one warning)."""
    done: set[int] = set()
    if not parts.is_dir():
        return done
    stale = StaleParts(parts)
    remove: list[Path] = []
    for p in sorted(parts.glob("part-*.parquet")):
        try:
            t = pq.read_table(p, columns=[ROW])
            stamp = read_stamp((t.schema.metadata or {}).get(STAMP_KEY))
            rows = t.column(ROW).to_pylist()
        except Exception:  # a part cut short by a kill: redo its rows
            p.unlink()
            continue
        if stale.check(stale_reason(stamp, settings, _rows_digest(keys, rows))):
            done.update(rows)
        else:
            remove.append(p)
    stale.report(strict)  # before anything is deleted: a strict job leaves the folder as it was
    for p in remove:
        p.unlink()
    return done


def _write_part(parts: Path, table: pa.Table, keys: list[bytes], settings: Mapping[str, Any]) -> None:
    ids = table.column(ROW)
    stamp = make_stamp(settings, row_digest(keys[r] for r in ids.to_pylist()))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), STAMP_KEY: json.dumps(stamp).encode()})
    name = parts / f"part-{pc.min(ids).as_py():012d}-{pc.max(ids).as_py():012d}-{len(ids)}.parquet"
    tmp = name.with_name(f".{name.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")  # unique per writer
    pq.write_table(table, tmp)
    os.replace(tmp, name)


def run_bulk(
    items: Sequence[dict],
    fn: Callable[[dict], dict],
    *,
    schema_name: str,
    out: str | os.PathLike[str],
    config: BulkConfig = BulkConfig(),
    settings: Mapping[str, Any] | None = None,
    key: Sequence[str] = ("video_id", "uri"),
    finish: Callable[[pa.Table], pa.Table] | None = None,
    metadata: Mapping[bytes, bytes] | None = None,
    tally: Callable[[pa.Table], Mapping[str, float]] | None = None,
    tally_fields: Sequence[str] = (),
) -> pa.Table:
    """Apply ``fn`` to every item (in parallel, resumably) and write table ``schema_name``.

    Each item is a dict; ``fn`` returns the output row's columns (``status``/``error``
    are filled in). Output rows follow the input order, whichever engine ran them.
    ``settings`` are the job's options that change its rows (not workers, chunk size,
    progress or engine) and ``key`` the item fields that identify an input row: both go
    into every part's stamp, so a rerun reuses only the parts this very job would write.
    ``fn`` may be a :class:`ChunkFunction` (a whole chunk at once). ``finish`` turns the
    ordered result table into the one written (fetch adds the input's other columns);
    ``metadata`` goes into the written file's schema metadata. ``tally`` counts what each
    finished part holds (e.g. ok, failed, megabytes); the bar shows the running sums and, as
    ``NAME_per_s``, their rates, through the rich templates ``tally_fields``.
    """
    from weaksup.progress import job_progress

    if config.chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {config.chunk_size}")
    out = Path(out) if uris.is_local(out) else uris.as_uri(out)
    parts = parts_dir(out)
    if not config.resume:
        shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)
    schema = load_schema(schema_name)
    part_schema = pa.schema([pa.field(f.name, f.arrow_type) for f in schema.fields] + [pa.field(ROW, pa.int64())])
    settings = {"table": schema_name, **(settings or {})}
    keys = [json.dumps([it.get(k) for k in key], default=str, ensure_ascii=False).encode() for it in items]

    numbered = [dict(it, **{ROW: i}) for i, it in enumerate(items)]
    done = _done_rows(parts, keys, settings, config.resume_strict)
    todo = [it for it in numbered if it[ROW] not in done]
    chunks = [todo[i : i + config.chunk_size] for i in range(0, len(todo), config.chunk_size)]

    sums: Counter[str] = Counter()
    started = time.perf_counter()

    def finished(part: pa.Table) -> None:
        _write_part(parts, part, keys, settings)
        if tally is not None:
            sums.update(tally(part))
        elapsed = max(time.perf_counter() - started, 1e-9)
        rates = {f"{k}_per_s": v / elapsed for k, v in sums.items()}
        progress.update(task, advance=part.num_rows, **sums, **rates)

    with job_progress(enabled=config.progress, desc=config.desc, unit="rows", fields=tally_fields) as progress:
        zero = {k: 0.0 for k in (tally(part_schema.empty_table()) if tally else {})}
        task = progress.add_task(
            config.desc,
            total=len(numbered),
            completed=len(numbered) - len(todo),
            **zero,
            **{f"{k}_per_s": 0.0 for k in zero},
        )
        if config.engine == "ray":
            for block in ray_map_chunks(chunks, fn, part_schema, workers=config.workers, address=config.ray_address):
                finished(block)
        elif config.workers <= 0 or len(chunks) <= 1:
            for chunk in chunks:
                finished(part_table(run_chunk(fn, chunk), part_schema))
        else:
            with make_pool(config.workers) as pool:
                futures: list[Future] = [pool.submit(run_chunk, fn, c) for c in chunks]
                for fut in futures:
                    finished(part_table(fut.result(), part_schema))

    tables = [pq.read_table(p).replace_schema_metadata(None) for p in sorted(parts.glob("part-*.parquet"))]
    table = pa.concat_tables(tables) if tables else part_schema.empty_table()
    table = table.sort_by(ROW)
    rows = table.column(ROW).to_pylist()
    if rows != list(range(len(numbered))):
        raise RuntimeError(f"{out}: bulk job accounting mismatch ({len(rows)} rows for {len(numbered)} inputs)")
    table = table.drop_columns([ROW])
    result = write_table(schema_name, finish(table) if finish else table, out, metadata=metadata)
    shutil.rmtree(parts, ignore_errors=True)
    return result


def nothing_done_message(
    total: int, rejected: int, what: str = "row", reasons: Mapping[str, int] | None = None
) -> str | None:
    """The warning for a job that did nothing (all ``total`` inputs rejected, or none at all), else None."""
    if rejected < total:
        return None
    if total == 0:
        return f"nothing done: the input has no {what}s"
    top = ", ".join(f"{reason} ({count})" for reason, count in Counter(reasons or {}).most_common(3))
    return f"nothing done: all {total} {what}s were rejected" + (f" ({top})" if top else "")


def nothing_done(table: pa.Table, what: str = "row") -> str | None:
    """Why a bulk job's output ``table`` is "nothing done" (every row rejected; an empty input
    counts too), or None. The table itself stays whole: every row is there with its reason.
    Statuses other than ``rejected`` (``ok``, fingerprint's ``unfingerprintable``) are results."""
    n = table.num_rows
    status = table.column("status").to_pylist() if n else []
    rejected = [i for i, s in enumerate(status) if s == "rejected"]
    errors = table.column("error").to_pylist() if n and "error" in table.column_names else [None] * n
    reasons = Counter((errors[i] or "unknown").split(":", 1)[0].strip() or "unknown" for i in rejected)
    return nothing_done_message(n, len(rejected), what, reasons)


# ---- the Ray engine's view of a bulk job ----------------------------------------------------


class _ChunkMapper:
    """map_batches function: one Arrow batch of items in, the same rows as the part schema out."""

    def __init__(self, fn: Callable[[dict], dict], part_schema: pa.Schema) -> None:
        self.fn, self.part_schema = fn, part_schema

    def __call__(self, batch: pa.Table) -> pa.Table:
        return part_table(run_chunk(self.fn, batch.to_pylist()), self.part_schema)


def ray_map_chunks(
    chunks: list[list[dict]], fn: Callable[[dict], dict], part_schema: pa.Schema, *, workers: int, address: str | None
) -> Iterator[pa.Table]:
    """Finished chunks of a bulk job (Arrow tables in the part schema), in completion order."""
    if not chunks:
        return
    from weaksup.ray_engine import ray_map

    yield from ray_map(
        [it for chunk in chunks for it in chunk],
        _ChunkMapper(fn, part_schema),
        batch_size=len(chunks[0]),
        workers=workers,
        address=address,
    )
