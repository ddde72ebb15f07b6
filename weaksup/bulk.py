"""Resumable, parallel bulk jobs (probe, fingerprint, materialize, fetch): one output row per input row.

A job is cut into blocks of input rows (:mod:`weaksup.blocks`). Whoever works on a block
(this process, a worker process or a Ray task on any node) reads its rows itself when the
input is a Parquet table (:class:`~weaksup.blocks.TableInput`), computes them chunk by chunk
and writes each chunk as an atomic part (``part-FIRST-LAST-ROWS.parquet``) into a
:class:`~weaksup.blocks.PartStore` every worker reaches. The driver only plans the blocks
from the Parquet footers, sums the small counts each block returns (:class:`BulkResult`)
and, at the end, writes the final table block by block in row order, checking that every
input row is there exactly once. Its memory does not grow with the rows.

A rerun after a kill finds the parts and skips the rows already done, so the final table
is the same as an uninterrupted run's. A part is only reused when it provably belongs to
the job: each one carries a *stamp* in its Parquet schema metadata (``weaksup.stamp``): the
job's settings that change its rows and a sha256 digest of its input rows (the ``key``
fields, e.g. video_id and uri, of its rows in order). A part whose stamp differs from what
this job would write (another table, a reordered or edited one, other settings, or no
stamp at all) is stale: it is deleted and its rows are done again, with one warning per
job saying how many parts and why; with ``resume_strict`` the job stops before anything
changes (InputError naming the difference). ``resume=False`` deletes every old part
first. The same stamps (:func:`make_stamp`, :func:`stale_reason`, :class:`StaleParts`)
guard extract's chunks, dedupe's search parts and the tar shards. A worker function never
raises: a failure becomes ``status="rejected"`` with an ``error`` reason (img2dataset
style), so one bad file never kills the job and every input row is accounted for.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.blocks import Block, PartStore, TableInput, part_name, plan_blocks
from weaksup.errors import InputError, one_line
from weaksup.outputs import atomic_output, side_path
from weaksup.pools import make_pool
from weaksup.tables import RowGroupWriter, conform, load_schema

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


@dataclass(frozen=True)
class BulkJob:
    """What every block of a job needs: shipped with each local task, put once into Ray's object store."""

    fn: Callable[[dict], dict] | ChunkFunction
    part_schema: pa.Schema
    settings: Mapping[str, Any]
    key: tuple[str, ...]
    store: PartStore
    chunk_size: int
    source: TableInput | None = None
    tally: Callable[[pa.Table], Mapping[str, float]] | None = None


@dataclass
class BlockResult:
    """What a worker says of one block: small, whatever the block's size."""

    first: int
    rows: int
    parts_seen: int = 0
    stale: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # "status:ok", "reason:<kind>" and the job's tally
    error: str | None = None  # bad input: the job stops with this one line


@dataclass(frozen=True)
class BulkResult:
    """A finished bulk job: where its table is, how many rows, and what they hold (summed
    per part by the workers, so nobody had to hold the rows)."""

    path: Path | str
    rows: int
    counts: Mapping[str, float]

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The table (or some columns): for tests and small jobs; a big one is read in batches."""
        cols = list(columns) if columns else None
        if uris.is_local(self.path):
            return pq.read_table(self.path, columns=cols)
        with uris.open_input(self.path) as f:
            return pq.read_table(f, columns=cols)

    def status(self, name: str) -> int:
        return int(self.counts.get(f"status:{name}", 0))

    def reasons(self) -> dict[str, int]:
        """Rejected rows by reason (the error's text before the first colon), most frequent first."""
        found = {k.split(":", 1)[1]: int(v) for k, v in self.counts.items() if k.startswith("reason:") and v}
        return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


LAYOUT_CHANGED = "rows beyond its block (written with another chunk size)"


def part_counts(part: pa.Table, tally: Callable[[pa.Table], Mapping[str, float]] | None) -> Counter:
    """A part's rows by status, its other-than-ok rows by reason, and the job's own tally."""
    counts: Counter = Counter()
    errors = part.column("error").to_pylist() if "error" in part.column_names else [None] * part.num_rows
    for status, error in zip(part.column("status").to_pylist(), errors):
        counts[f"status:{status}"] += 1
        if status != "ok":
            counts["reason:" + ((error or "unknown").split(":", 1)[0].strip() or "unknown")] += 1
    if tally is not None:
        counts.update(tally(part))
    return counts


def _key_bytes(item: dict, key: Sequence[str]) -> bytes:
    return json.dumps([item.get(k) for k in key], default=str, ensure_ascii=False).encode()


def run_block(job: BulkJob, block: Block, check_only: bool = False) -> BlockResult:
    """Work one block where it runs: read its rows, keep the existing parts stamped for them
    (a stale one is deleted), compute the rest chunk by chunk and write each as a stamped part.
    Safe to run twice (a retried task finds its own parts). ``check_only``: judge the
    existing parts, change nothing (a strict job's check before any work)."""

    result = BlockResult(block.first, block.rows)
    try:
        items = list(block.items) if block.items is not None else job.source.read(block)  # type: ignore[union-attr]
    except InputError as exc:
        result.error = str(exc)
        return result
    if len(items) != block.rows:
        raise RuntimeError(f"block at row {block.first}: read {len(items)} rows, planned {block.rows}")
    keys = [_key_bytes(it, job.key) for it in items]
    store = job.store.block(block.first)
    done: set[int] = set()
    for name in store.names():
        try:
            part = store.read(name)
            stamp = read_stamp((part.schema.metadata or {}).get(STAMP_KEY))
            rows = part.column(ROW).to_pylist()
        except Exception:  # noqa: BLE001 - a part cut short by a kill: its rows are done again
            if not check_only:
                store.remove(name)
            continue
        result.parts_seen += 1
        if all(block.first <= r < block.end for r in rows):
            reason = stale_reason(stamp, job.settings, row_digest(keys[r - block.first] for r in rows))
        else:
            reason = LAYOUT_CHANGED
        if reason is None:
            done.update(rows)
            result.counts.update(part_counts(part.replace_schema_metadata(None), job.tally))
            continue
        result.stale.append(reason)
        if not check_only:
            store.remove(name)
    if check_only:
        return result
    todo = [dict(it, **{ROW: block.first + i}) for i, it in enumerate(items) if block.first + i not in done]
    for start in range(0, len(todo), job.chunk_size):
        chunk = todo[start : start + job.chunk_size]
        part = part_table(run_chunk(job.fn, chunk), job.part_schema)
        rows = [it[ROW] for it in chunk]
        stamp = make_stamp(job.settings, row_digest(keys[r - block.first] for r in rows))
        store.write(
            part_name(min(rows), max(rows), len(rows)),
            part.replace_schema_metadata({STAMP_KEY: json.dumps(stamp).encode()}),
        )
        result.counts.update(part_counts(part, job.tally))
    return result


def check_block(job: BulkJob, block: Block) -> BlockResult:
    return run_block(job, block, check_only=True)


def _run_blocks(
    worker: Callable[[BulkJob, Block], BlockResult], job: BulkJob, blocks: Iterable[Block], config: BulkConfig
) -> Iterator[BlockResult]:
    """Block results in completion order: in this process, on a process pool (a bounded window
    of blocks in flight) or as Ray tasks (the job put once into the object store)."""
    if config.engine == "ray":
        from weaksup.ray_engine import ray_session, ray_tasks

        with ray_session(address=config.ray_address, workers=config.workers):
            # on a cluster its CPUs decide the width; without one, --workers does (also in a Ray already running)
            width = None if config.ray_address else max(1, config.workers)
            yield from ray_tasks(worker, blocks, shared=job, max_in_flight=width)
        return
    blocks = iter(blocks)
    if config.workers <= 0:
        for b in blocks:
            yield worker(job, b)
        return
    first = list(itertools.islice(blocks, 2))
    if len(first) < 2:  # one block: no pool to start
        for b in first:
            yield worker(job, b)
        return
    with make_pool(config.workers) as pool:
        pending = {pool.submit(worker, job, b) for b in first}
        window = 2 * config.workers
        for b in blocks:
            while len(pending) >= window:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
            pending.add(pool.submit(worker, job, b))
        for fut in as_completed(pending):
            yield fut.result()


def commit_parts(
    job: BulkJob,
    blocks: Iterable[Block],
    out: Path | str,
    schema_name: str,
    finish: Callable[[pa.Table, Block], pa.Table] | None,
    metadata: Mapping[bytes, bytes] | None,
) -> None:
    """The final table, block by block in row order (memory: one block): each block's parts
    must hold its rows exactly once, else the job stops (nothing is written)."""
    schema = load_schema(schema_name)
    with atomic_output(out) as tmp:
        writer = RowGroupWriter(tmp, ROW_GROUP_ROWS)
        try:
            for b in blocks:
                store = job.store.block(b.first)
                parts = [store.read(n).replace_schema_metadata(None) for n in store.names()]
                # a part of an older weaksup may lack a column added since (null there): promote
                table = pa.concat_tables(parts, promote_options="default") if parts else job.part_schema.empty_table()
                table = table.sort_by(ROW)
                rows = table.column(ROW).to_numpy()
                if len(rows) != b.rows or not np.array_equal(rows, np.arange(b.first, b.end)):
                    raise RuntimeError(
                        f"{out}: bulk job accounting mismatch ({len(rows)} rows for input rows {b.first}..{b.end - 1})"
                    )
                writer.add(_finished(table.drop_columns([ROW]), b, schema, finish, metadata))
            if writer.empty:
                empty = job.part_schema.empty_table().drop_columns([ROW])
                writer.add(_finished(empty, Block(0, 0), schema, finish, metadata), force=True)
        finally:
            writer.close()


#: Rows per row group of a bulk job's final table: blocks are gathered up to this, so the
#: writer's footer (one entry per row group, held until the file is closed) stays small.
ROW_GROUP_ROWS = 1 << 16


def _finished(
    table: pa.Table,
    block: Block,
    schema: Any,
    finish: Callable[[pa.Table, Block], pa.Table] | None,
    metadata: Mapping[bytes, bytes] | None,
) -> pa.Table:
    table = conform(finish(table, block) if finish else table, schema)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    return table


def part_store(out: Path | str, engine: str) -> PartStore:
    """Where a job's parts go: beside a local ``out``; for an object-store ``out``, a local
    staging folder with the local engine (see :func:`parts_dir`) and ``OUT.parts/`` in the
    store itself with Ray (every node writes there)."""
    if engine == "ray" and not uris.is_local(out):
        return PartStore(uris.sibling(out, uris.basename(out) + ".parts"))
    return PartStore(parts_dir(out))


def run_bulk(
    items: Sequence[dict] | TableInput,
    fn: Callable[[dict], dict] | ChunkFunction,
    *,
    schema_name: str,
    out: str | os.PathLike[str],
    config: BulkConfig = BulkConfig(),
    settings: Mapping[str, Any] | None = None,
    key: Sequence[str] = ("video_id", "uri"),
    finish: Callable[[pa.Table, Block], pa.Table] | None = None,
    metadata: Mapping[bytes, bytes] | None = None,
    tally: Callable[[pa.Table], Mapping[str, float]] | None = None,
    tally_fields: Sequence[str] = (),
) -> BulkResult:
    """Apply ``fn`` to every input row (in parallel, resumably) and write table ``schema_name``.

    ``items`` are the input rows as dicts, or a :class:`~weaksup.blocks.TableInput` that each
    worker reads block by block (nothing per row on this process: the driver plans blocks
    from the Parquet footers, collects each block's counts and writes the final table one
    block at a time). ``fn`` returns the output row's columns (``status``/``error`` are
    filled in); it may be a :class:`ChunkFunction` (a whole chunk at once). Output rows
    follow the input order, whichever engine ran them. ``settings`` are the job's options
    that change its rows (not workers, chunk size, progress or engine) and ``key`` the item
    fields that identify an input row: both go into every part's stamp, so a rerun reuses
    only the parts this very job would write. ``finish(table, block)`` turns each
    block of the ordered result into what is written (fetch adds the input's other
    columns); ``metadata`` goes into the written file's schema metadata. ``tally`` counts
    what each part holds (summed into the result's ``counts``; the bar shows the running
    sums and, as ``NAME_per_s``, their rates, through the rich templates ``tally_fields``).
    """

    from weaksup.progress import job_progress

    if config.chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {config.chunk_size}")
    out = Path(out) if uris.is_local(out) else uris.as_uri(out)
    store = part_store(out, config.engine)
    if not config.resume:
        store.remove_all()
    store.make()
    store.remove_temporaries()
    part_schema = pa.schema(
        [pa.field(f.name, f.arrow_type) for f in load_schema(schema_name).fields] + [pa.field(ROW, pa.int64())]
    )
    job = BulkJob(
        fn=fn,
        part_schema=part_schema,
        settings={"table": schema_name, **(settings or {})},
        key=tuple(key),
        store=store,
        chunk_size=config.chunk_size,
        source=items if isinstance(items, TableInput) else None,
        tally=tally,
    )
    groups = list(items.row_groups()) if isinstance(items, TableInput) else None  # O(row groups), read once
    total = sum(n for _, _, n in groups) if groups is not None else len(items)

    def blocks() -> Iterator[Block]:
        return plan_blocks(items, config.chunk_size, total, groups)

    earlier = store.folders()  # an earlier run's blocks: O(blocks)
    planned = {b.first for b in blocks()}
    foreign = [f for f in earlier if f not in planned]  # rows this input lacks, or another chunk size
    if config.resume_strict and earlier:  # judge every earlier part before anything changes
        strict = StaleParts(store.root)
        for f in foreign:
            for _ in store.block(f).names():
                strict.check(ROWS_CHANGED if f >= total else LAYOUT_CHANGED)
        have = set(earlier)
        for r in _run_blocks(check_block, job, (b for b in blocks() if b.first in have), config):
            if r.error:
                raise InputError(r.error)
            _count_parts(strict, r)
        strict.report(True)

    sums: Counter = Counter()
    stale = StaleParts(store.root)
    for f in foreign:
        for _ in store.block(f).names():
            stale.check(ROWS_CHANGED if f >= total else LAYOUT_CHANGED)
        store.block(f).remove_all()
    del planned, earlier, foreign
    started = time.perf_counter()
    with job_progress(enabled=config.progress, desc=config.desc, unit="rows", fields=tally_fields) as progress:
        zero = {k: 0.0 for k in (tally(part_schema.empty_table()) if tally else {})}
        task = progress.add_task(config.desc, total=total, **zero, **{f"{k}_per_s": 0.0 for k in zero})
        for r in _run_blocks(run_block, job, blocks(), config):
            if r.error:
                raise InputError(r.error)
            _count_parts(stale, r)
            sums.update(r.counts)
            shown = {k: sums[k] for k in zero}
            elapsed = max(time.perf_counter() - started, 1e-9)
            rates = {f"{k}_per_s": v / elapsed for k, v in shown.items()}
            progress.update(task, advance=r.rows, **shown, **rates)
    stale.report(False)
    commit_parts(job, blocks(), out, schema_name, finish, metadata)
    store.remove_all()
    return BulkResult(out, total, dict(sums))


def _count_parts(stale: StaleParts, r: BlockResult) -> None:
    for reason in [None] * (r.parts_seen - len(r.stale)) + r.stale:
        stale.check(reason)


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


def nothing_done(table: pa.Table | BulkResult, what: str = "row") -> str | None:
    """Why a bulk job's output is "nothing done" (every row rejected; an empty input counts
    too), or None. The table itself stays whole: every row is there with its reason.
    Statuses other than ``rejected`` (``ok``, fingerprint's ``unfingerprintable``) are results."""
    result = table if isinstance(table, BulkResult) else BulkResult("", table.num_rows, part_counts(table, None))
    rejected = result.status("rejected")
    return nothing_done_message(result.rows, rejected, what, result.reasons() if rejected else {})
