"""``weaksup fetch``: a videos table with URLs in, verified video files and ``fetched.parquet`` out.

Every input row appears once in ``fetched.parquet``, with its input columns carried through
and the fetch columns added (schemas/fetched.json). The job runs in resumable, stamped parts
(:mod:`weaksup.bulk`); each part's rows are fetched concurrently on one event loop
(:mod:`weaksup.fetch.client`). A rerun of a finished job reuses its rows (made from the same
input rows and settings); ``retry_rejected`` fetches again only the rows that failed for a
reason that may pass (network, timeout, 429, 5xx), never a 404 or an opt-out.

Two ways in, one output:

* A Parquet input (a file or a folder of parts, local or any uri) runs in *block mode*: the
  driver holds nothing per row. It reads the footers and two streamed passes over
  ``video_id`` and the URL column (:func:`scan_input`): the first checks the columns (no
  empty id; ``uri`` as the URL column only when every value in it is an http(s) URL) and
  keeps one 64-bit hash per row, sorted in place to find the ids that occur more than once;
  only when some do, a second pass confirms them on the exact strings of those rows alone.
  Each worker (this process, a pool process or a Ray task on any node) reads its own block
  of the input (:class:`weaksup.blocks.TableInput`) and builds its items
  (:func:`block_items`): the duplicate rows come with the job, and an earlier finished
  run's rows are read from the earlier ``fetched.parquet`` for the same row numbers only
  (:func:`read_rows`: the row groups that overlap the block), after the driver checked its
  stamp in the footer. At commit the driver appends the input's other columns block by
  block (:class:`BlockFinish`) and counts there the rows taken over from the earlier table.
  What the driver holds, exactly: the dataset's file list and schema, the bulk engine's
  O(blocks) plan and counts, one block at commit (its parts, the input's other columns,
  and ``video_id``/``url``/``fetched_at`` of the earlier table's same rows), and the
  duplicates: two int64 arrays (16 bytes per duplicate row) kept for the job and shipped
  with it to every worker. During planning, with the local engine, transiently, the hash
  array (8 bytes per input row, sorted in place, plus a 1-byte-per-row mask while the
  repeats are picked out: the one O(rows) thing, freed before any row is fetched; 2M rows
  peaked at 9.6 bytes a row); with the Ray engine the hashes are sorted by Ray tasks
  (:mod:`weaksup.duplicate_ids`) and only the repeated values come back. In the second pass
  only, the ids whose hash repeats (one string each), in Arrow batches of 64K rows throughout.
* A CSV or JSON-lines input is read whole and planned in memory (:func:`read_input`,
  :func:`plan_items`), as before: text tables are size-limited inputs.

Duplicate ids, empty URLs and the reuse of an earlier run mean the same in both modes: a
row whose ``video_id`` an earlier row *with a URL* has is rejected naming that row; a row
without a URL is rejected; a row is taken from the earlier run's table (made under the
same settings) when its ``video_id`` and URL are the same and the row stands (an ok row's
file is still there, or a failure not retried with ``retry_rejected``). In block mode the
earlier row must be at the same row number (the earlier table is in input order, so an
unchanged or appended-to input reuses everything; rows moved within the input are fetched
again); in memory it is looked up by (video_id, URL) anywhere.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import time
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.videos import open_table
from weaksup.blocks import Block, TableInput
from weaksup.bulk import (
    BulkConfig,
    BulkResult,
    ChunkFunction,
    StaleResumeWarning,
    part_store,
    read_stamp,
    run_bulk,
    summary_path,
)
from weaksup.duplicate_ids import repeated_id_hashes, repeated_values
from weaksup.errors import InputError, first_line
from weaksup.fetch.client import Fetcher, Outcome, local_tmp_dir, make_session, reset_hosts
from weaksup.fetch.config import FetchConfig
from weaksup.fetch.optout import OptOutList
from weaksup.fetch.safety import file_stem
from weaksup.hashing import stable_hash64
from weaksup.ray_engine import check_engine
from weaksup.tables import load_schema, read_rows, write_json

#: Columns fetch writes; an input column of the same name is replaced (re-fetching a fetched table works).
FETCH_COLUMNS = tuple(load_schema("fetched").names)
TABLE_NAME = "fetched.parquet"
STAMP_META = b"weaksup.fetch_stamp"


def out_table(out: Path | str) -> Path | str:
    return uris.join(out, TABLE_NAME) if not uris.is_local(out) else uris.local_path(out) / TABLE_NAME


def video_uri(out: Path | str, shard: str, stem: str, extension: str) -> str:
    """Where a fetched video lives: ``OUT/videos/<shard>/<stem>.<ext>``."""
    if uris.is_local(out):
        return str(uris.local_path(out) / "videos" / shard / f"{stem}.{extension}")
    return uris.join(uris.join(uris.join(out, "videos"), shard), f"{stem}.{extension}")


# ---- the input ----------------------------------------------------------------------------

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_HTTP = r"(?i)^https?://"
_SCAN_ROWS = 1 << 16  # rows per batch of the driver's streamed passes
_ID_SALT = "video_id"


class Input(NamedTuple):
    """The input table opened (its schema read, no rows): the dataset, its label, the URL
    column, and whether that is ``uri``, still to be checked for holding only http(s) URLs."""

    dataset: ds.Dataset
    label: str
    url_column: str
    check_http: bool


def open_input(cfg: FetchConfig) -> Input:
    """The videos table opened, its columns checked from the schema alone."""
    dataset = open_table(cfg.videos)
    label = uris.display(cfg.videos)
    names = dataset.schema.names
    if "video_id" not in names:
        raise InputError(f"{label}: missing column 'video_id' (fetch needs video_id and a URL column)")
    if cfg.url_column in names:
        return Input(dataset, label, cfg.url_column, False)
    if "uri" in names and cfg.url_column == "url":
        return Input(dataset, label, "uri", True)
    raise _no_url_column(label, cfg.url_column)


def _no_url_column(label: str, column: str) -> InputError:
    return InputError(
        f"{label}: no URL column {column!r} (name it with --url-column; 'uri' is used when it holds http(s) URLs)"
    )


def _empty_ids(label: str, nulls: int) -> InputError:
    return InputError(f"{label}: column 'video_id' has {nulls} empty value(s); every video needs one")


def read_input(inp: Input) -> pa.Table:
    """The whole videos table, ``video_id`` and the URL column as text (the in-memory path,
    for CSV and JSON-lines inputs)."""
    dataset, label, column, check_http = inp
    try:
        table = dataset.to_table()
    except _ARROW_ERRORS as exc:
        raise InputError(f"{label}: cannot read the table ({first_line(exc)})") from None
    if check_http and not _all_http(table.column("uri")):
        raise _no_url_column(label, "url")
    ids = table.column("video_id")
    if ids.null_count:
        raise _empty_ids(label, ids.null_count)
    table = table.set_column(table.column_names.index("video_id"), "video_id", ids.cast(pa.string()))
    i = table.column_names.index(column)
    return table.set_column(i, column, table.column(column).cast(pa.string()))


def _all_http(col: pa.ChunkedArray) -> bool:
    values = pc.drop_null(col.cast(pa.string()))
    return len(values) > 0 and bool(pc.all(pc.match_substring_regex(values, _HTTP)).as_py())


def _text(column: pa.Array, label: str, name: str) -> pa.Array:
    try:
        return column.cast(pa.string())
    except _ARROW_ERRORS as exc:
        raise InputError(f"{label}: column {name!r} has type {column.type}, not text ({first_line(exc)})") from None


def _batches(dataset: ds.Dataset, label: str, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """Some columns of the table, streamed in table order (one batch read ahead at most)."""
    batches = dataset.to_batches(
        columns=list(dict.fromkeys(columns)), batch_size=_SCAN_ROWS, batch_readahead=1, fragment_readahead=1
    )
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except _ARROW_ERRORS as exc:
            raise InputError(f"{label}: cannot read the table ({first_line(exc)})") from None
        yield batch


def _id_hashes(
    dataset: ds.Dataset, label: str, column: str, check_http: bool, total: int, keep: bool = True
) -> np.ndarray:
    """The first pass: a 64-bit hash of every row's ``video_id`` (8 bytes a row; none when
    not ``keep``: the Ray engine hashes on its workers), with the columns checked on the way
    (no empty id; ``uri`` holds only http(s) URLs)."""
    hashes = np.empty(total if keep else 0, np.uint64)
    row = nulls = urls = 0
    all_http = True
    for batch in _batches(dataset, label, ("video_id", column)):
        n = batch.num_rows
        if row + n > total:
            raise InputError(f"{label}: the table changed while it was read (more rows than its footers say)")
        ids = batch.column("video_id")
        nulls += ids.null_count
        text = _text(ids, label, "video_id")
        if keep:
            hashes[row : row + n] = stable_hash64(text, 0, _ID_SALT)
        if check_http and all_http:
            values = pc.drop_null(_text(batch.column(column), label, column))
            urls += len(values)
            all_http = not len(values) or bool(pc.all(pc.match_substring_regex(values, _HTTP)).as_py())
        row += n
    if row != total:
        raise InputError(f"{label}: the table changed while it was read ({row} rows, its footers say {total})")
    if check_http and not (all_http and urls):
        raise _no_url_column(label, "url")
    if nulls:
        raise _empty_ids(label, nulls)
    return hashes


def _duplicates(dataset: ds.Dataset, label: str, column: str, repeated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second pass, only over rows whose id hash occurs more than once: (rows, first rows)
    of the duplicates, confirmed on the exact ids, by the rule of :func:`plan_items`."""
    rows: list[int] = []
    firsts: list[int] = []
    if len(repeated):
        first: dict[str, int] = {}
        row = 0
        for batch in _batches(dataset, label, ("video_id", column)):
            ids = _text(batch.column("video_id"), label, "video_id")
            candidates = np.flatnonzero(np.isin(stable_hash64(ids, 0, _ID_SALT), repeated))
            if len(candidates):
                take = pa.array(candidates)
                urls = _text(batch.column(column), label, column).take(take).to_pylist()
                for i, vid, url in zip(candidates.tolist(), ids.take(take).to_pylist(), urls):
                    if vid in first:
                        rows.append(row + i)
                        firsts.append(first[vid])
                    elif url:
                        first[vid] = row + i
            row += batch.num_rows
    return np.array(rows, np.int64), np.array(firsts, np.int64)


def scan_input(cfg: FetchConfig, inp: Input) -> TableInput:
    """A Parquet input in block mode, checked and planned in two streamed passes: its
    :class:`TableInput`, whose items come from :func:`block_items` with the duplicates found here."""
    dataset, label, column, check_http = inp
    local = uris.is_local(cfg.videos)
    root = str(uris.local_path(cfg.videos).absolute()) if local else uris.as_uri(cfg.videos)
    files = tuple(os.path.abspath(f) for f in dataset.files) if local else tuple(dataset.files)  # for Ray workers
    fs = uris.pyarrow_filesystem(root)[0]
    total = sum(pq.ParquetFile(f, filesystem=fs).metadata.num_rows for f in files)
    if cfg.engine == "ray":  # the hashes are sorted by Ray tasks: nothing per row here
        _id_hashes(dataset, label, column, check_http, total, keep=False)
        repeated = repeated_id_hashes(
            TableInput(root=root, files=files, columns=("video_id",)),
            "video_id",
            _ID_SALT,
            store=part_store(out_table(cfg.out), "ray").child("id-hashes"),
            rows=total,
            max_in_flight=None if cfg.ray_address else max(1, cfg.workers),
        )
    else:
        repeated = repeated_values(_id_hashes(dataset, label, column, check_http, total))  # the hashes are freed here
    duplicates = _duplicates(dataset, label, column, repeated)
    to_items = functools.partial(block_items, cfg=cfg, url_column=column, duplicates=duplicates, label=label)
    return TableInput(root=root, files=files, columns=("video_id", column), to_items=to_items)


def _earlier_table(cfg: FetchConfig, stamp: dict[str, Any]) -> str | None:
    """The earlier finished run's table when its footer says it was made under these settings
    (a path or uri every worker reaches); None (with a warning when it is there) otherwise."""
    path = out_table(cfg.out)
    if not cfg.resume or not uris.exists(path):
        return None
    try:
        with _parquet_file(path) as parquet:
            metadata = parquet.schema_arrow.metadata
    except Exception as exc:  # noqa: BLE001 - a broken earlier table is redone, never trusted
        warnings.warn(f"{uris.display(path)}: earlier table unreadable ({first_line(exc)}); fetching again")
        return None
    if read_stamp((metadata or {}).get(STAMP_META)) != json.loads(json.dumps(stamp)):
        warnings.warn(
            f"{uris.display(path)}: made with other settings or by another tool; its rows are fetched again",
            StaleResumeWarning,
        )
        return None
    return str(uris.local_path(path).absolute()) if uris.is_local(path) else uris.as_uri(path)


def _parquet_file(path: Path | str) -> pq.ParquetFile:
    """One Parquet file (a path or any uri) opened for its footer; ``with`` closes it."""
    filesystem, inner = uris.pyarrow_filesystem(path)
    return pq.ParquetFile(inner, filesystem=filesystem)


def _previous_rows(cfg: FetchConfig, stamp: dict[str, Any]) -> dict[tuple[str, str], dict]:
    """An earlier finished run's rows by (video_id, url), when made under these settings (in memory)."""
    path = _earlier_table(cfg, stamp)
    if path is None:
        return {}
    try:
        with _parquet_file(path) as parquet:
            table = parquet.read()
    except Exception as exc:  # noqa: BLE001 - a broken earlier table is redone, never trusted
        warnings.warn(f"{uris.display(path)}: earlier table unreadable ({first_line(exc)}); fetching again")
        return {}
    rows: dict[tuple[str, str], dict] = {}
    for row in table.select([c for c in FETCH_COLUMNS if c in table.column_names]).to_pylist():
        rows.setdefault((row["video_id"], row.get("url") or ""), row)
    return rows


def _reusable(row: dict | None, cfg: FetchConfig) -> bool:
    if row is None:
        return False
    if row["status"] == "ok":
        return not uris.is_local(row["uri"]) or os.path.exists(row["uri"])
    return not (cfg.retry_rejected and row.get("retryable"))


NO_URL = "no url: the URL column is empty"


def _duplicate(first: int) -> str:
    return f"duplicate video_id: row {first} has the same id"


def _item(vid: str, url: str | None, n: int) -> dict[str, Any]:
    shard, stem = file_stem(vid)
    return {"video_id": vid, "url": url or "", "shard": shard, "stem": stem, "row": n}


def plan_items(table: pa.Table, url_column: str, cfg: FetchConfig, stamp: dict[str, Any]) -> list[dict]:
    """One item per input row (in memory): its id and URL, where its file goes, and an earlier
    run's row when that one stands; duplicate ids and empty URLs become rejected rows here."""
    previous = _previous_rows(cfg, stamp)
    first_row: dict[str, int] = {}
    items = []
    for n, (vid, url) in enumerate(zip(table.column("video_id").to_pylist(), table.column(url_column).to_pylist())):
        item = _item(vid, url, n)
        if vid in first_row:
            item["reject"] = _duplicate(first_row[vid])
        elif not url:
            item["reject"] = NO_URL
        else:
            first_row[vid] = n
            earlier = previous.get((vid, url))
            if _reusable(earlier, cfg):
                item["earlier"] = earlier
        items.append(item)
    return items


def block_items(
    table: pa.Table,
    first_row: int,
    *,
    cfg: FetchConfig,
    url_column: str,
    duplicates: tuple[np.ndarray, np.ndarray],
    label: str,
    earlier: str | None = None,
) -> list[dict]:
    """A block of a Parquet input as items, where the worker runs (see :func:`plan_items`):
    its duplicate rows from ``duplicates`` (sorted rows, their first rows), and the earlier
    run's rows at the same row numbers from the table ``earlier`` (already checked by its
    stamp); an earlier table that cannot be read here is fetched again."""
    ids, urls = table.column("video_id"), table.column(url_column)
    if ids.null_count:
        row = first_row + int(pc.index(pc.is_null(ids), True).as_py())
        raise InputError(f"{label}: row {row}: column 'video_id' is empty; every video needs one")
    ids, urls = ids.cast(pa.string()).to_pylist(), urls.cast(pa.string()).to_pylist()
    rows, firsts = duplicates
    lo, hi = np.searchsorted(rows, [first_row, first_row + len(ids)])
    dup = dict(zip(rows[lo:hi].tolist(), firsts[lo:hi].tolist()))
    previous: list[dict] = []
    if earlier is not None:
        try:
            previous = read_rows(earlier, first_row, len(ids), FETCH_COLUMNS).to_pylist()
        except Exception:  # noqa: BLE001 - a broken earlier table is redone, never trusted
            previous = []
    items = []
    for i, (vid, url) in enumerate(zip(ids, urls)):
        n = first_row + i
        item = _item(vid, url, n)
        if n in dup:
            item["reject"] = _duplicate(dup[n])
        elif not url:
            item["reject"] = NO_URL
        elif i < len(previous):
            old = previous[i]
            if old.get("video_id") == vid and (old.get("url") or "") == url and _reusable(old, cfg):
                item["earlier"] = old
        items.append(item)
    return items


# ---- one chunk ----------------------------------------------------------------------------


def _row(item: dict, outcome: Outcome, uri: str | None) -> dict:
    return {
        "video_id": item["video_id"],
        "uri": uri or "",  # empty when rejected: match rejects the row, nothing requests the URL again
        "url": item["url"],
        "status": outcome.status,
        "error": outcome.error,
        "retryable": outcome.retryable,
        "http_status": outcome.http_status,
        "bytes": outcome.bytes,
        "sha256": outcome.sha256,
        "content_type": outcome.content_type,
        "attempts": outcome.attempts,
        "fetched_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "final_url": outcome.final_url,
        "method": outcome.method,
    }


def _place(cfg: FetchConfig, item: dict, outcome: Outcome) -> str:
    """Move a verified file to its final name (atomic rename, or a whole upload) and return its uri."""
    assert outcome.file is not None and outcome.extension is not None
    target = video_uri(cfg.out, item["shard"], item["stem"], outcome.extension)
    try:
        if uris.is_local(target):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(outcome.file, target)
        else:
            uris.upload_atomic(outcome.file, target)
    finally:
        outcome.file.unlink(missing_ok=True)
    return target


async def _fetch_all(items: list[dict], cfg: FetchConfig, opt_outs: OptOutList) -> list[dict]:
    tmp = local_tmp_dir(cfg.out)
    async with make_session(cfg) as session:
        fetcher = Fetcher(cfg, session, opt_outs, tmp)

        async def one(item: dict) -> dict:
            if "reject" in item:
                return _row(item, Outcome(error=item["reject"]), None)
            if "earlier" in item:
                return item["earlier"]
            outcome = await fetcher.fetch(item["url"], item["stem"])
            if outcome.status != "ok":
                return _row(item, outcome, None)
            try:
                uri = await asyncio.to_thread(_place, cfg, item, outcome)
            except Exception as exc:  # noqa: BLE001 - a failed upload/rename is this row's failure
                outcome.status, outcome.error, outcome.retryable = "rejected", f"cannot store: {first_line(exc)}", True
                return _row(item, outcome, None)
            return _row(item, outcome, uri)

        return list(await asyncio.gather(*(one(it) for it in items)))


def fetch_chunk(items: list[dict], *, cfg: FetchConfig, opt_outs: OptOutList) -> list[dict]:
    """A bulk job's chunk: its rows fetched concurrently on one event loop."""
    return asyncio.run(_fetch_all(items, cfg, opt_outs))


# ---- the job ------------------------------------------------------------------------------


def _with_input_columns(inputs: pa.Table) -> Any:
    """The input's other columns after the fetch columns (an input ``uri`` holding the URLs is
    replaced by where the file is now; the URL stays in ``url``): the in-memory path."""

    def finish(fetched: pa.Table, block: Block) -> pa.Table:
        rows = inputs.slice(block.first, fetched.num_rows)
        for name in [c for c in inputs.column_names if c not in FETCH_COLUMNS]:
            fetched = fetched.append_column(inputs.schema.field(name), rows.column(name))
        return fetched

    return finish


class BlockFinish:
    """``finish`` of a block-mode job, run by the driver at commit one block at a time.

    Appends the input's other columns (as :func:`_with_input_columns` does), read for the
    block alone (:meth:`TableInput.read_table`); and counts in :attr:`reused` the rows taken
    over from the earlier table ``earlier``: those equal to its row at the same row number
    in ``video_id``, ``url`` and ``fetched_at`` (a copy of it; a row fetched or rejected by
    this job never has an earlier row's time to the microsecond). Counting here, from the
    committed rows, also counts the rows of parts a killed run left, as planning did.
    """

    SAME = ("video_id", "url", "fetched_at")

    def __init__(self, source: TableInput, schema: pa.Schema, url_column: str, earlier: str | None) -> None:
        self.source, self.earlier = source, earlier
        self.fields = [
            pa.field(f.name, pa.string()) if f.name == url_column else f for f in schema if f.name not in FETCH_COLUMNS
        ]
        self.reused = 0

    def __call__(self, fetched: pa.Table, block: Block) -> pa.Table:
        n = fetched.num_rows
        if self.fields:
            rows = self.source.read_table(block, [f.name for f in self.fields]) if n else None
            for f in self.fields:
                column = rows.column(f.name) if rows is not None else pa.nulls(0, f.type)
                fetched = fetched.append_column(f, column.cast(f.type))
        if self.earlier is not None and n:
            self.reused += self._copied(fetched, block.first)
        return fetched

    def _copied(self, fetched: pa.Table, first: int) -> int:
        try:
            old = read_rows(self.earlier, first, fetched.num_rows, self.SAME)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - unreadable now: its rows were not reused either
            return 0
        new = fetched.slice(0, old.num_rows)
        same = pa.array(np.ones(old.num_rows, bool))
        for name in self.SAME:
            equal = pc.equal(new.column(name), old.column(name).cast(new.schema.field(name).type))
            same = pc.and_(same, pc.fill_null(equal, False))
        return int(pc.sum(same).as_py() or 0)


def _tally(part: pa.Table) -> dict[str, float]:
    """What the progress bar and the summary count of a finished part: ok and failed rows,
    failures worth retrying, megabytes saved."""
    ok = pc.equal(part.column("status"), "ok")
    saved = pc.sum(pc.if_else(ok, part.column("bytes"), 0)).as_py() or 0
    n_ok = pc.sum(ok).as_py() or 0
    retryable = pc.sum(pc.and_(pc.invert(ok), pc.fill_null(part.column("retryable"), False))).as_py() or 0
    return {
        "ok": n_ok,
        "failed": part.num_rows - n_ok,
        "megabytes": saved / 1e6,
        "bytes": saved,
        "retryable": retryable,
    }


def summarize(result: BulkResult, seconds: float, cfg: FetchConfig, reused: int) -> dict[str, Any]:
    ok = result.status("ok")
    total = int(result.counts.get("bytes", 0))
    return {
        "rows": result.rows,
        "ok": ok,
        "rejected": result.rows - ok,
        "retryable": int(result.counts.get("retryable", 0)),
        "reasons": result.reasons(),
        "reused_from_earlier_run": reused,
        "bytes": total,
        "seconds": round(seconds, 2),
        "megabytes_per_second": round(total / 1e6 / seconds, 2) if seconds > 0 else None,
        "opt_outs_honoured": not cfg.ignore_opt_outs,
        "private_hosts_allowed": cfg.allow_private_hosts,
        "user_agent": cfg.agent(),
    }


def fetch_videos(cfg: FetchConfig) -> tuple[BulkResult, dict[str, Any]]:
    """Fetch every row of ``cfg.videos`` into ``cfg.out``; (the fetched table, the summary).

    A Parquet input runs in block mode (nothing per row held here; see the module
    docstring), a CSV or JSON-lines one in memory."""
    check_engine(cfg.engine, cfg.ray_address)
    if cfg.engine == "ray":  # one Ray for the id check and the fetch
        from weaksup.ray_engine import ray_session

        with ray_session(address=cfg.ray_address, workers=cfg.workers):
            return _fetch_videos(cfg)
    return _fetch_videos(cfg)


def _fetch_videos(cfg: FetchConfig) -> tuple[BulkResult, dict[str, Any]]:
    t0 = time.perf_counter()
    inp = open_input(cfg)
    blocks = isinstance(inp.dataset.format, ds.ParquetFileFormat)
    source = scan_input(cfg, inp) if blocks else None
    inputs = None if blocks else read_input(inp)
    opt_outs = OptOutList.read(cfg.opt_out_list)
    stamp = {**cfg.stamp(), "opt_out_list": list(opt_outs.patterns) and [p for _, p in opt_outs.patterns]}
    if uris.is_local(cfg.out):
        uris.local_path(cfg.out).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(uris.local_path(cfg.out) / "videos" / ".incoming", ignore_errors=True)  # a killed run's bodies
    finish: Any
    if source is not None:
        earlier = _earlier_table(cfg, stamp)
        source = replace(source, to_items=functools.partial(source.to_items, earlier=earlier))
        items: Sequence[dict] | TableInput = source
        finish = BlockFinish(source, inp.dataset.schema, inp.url_column, earlier)
    else:
        items = plan_items(inputs, inp.url_column, cfg, stamp)  # type: ignore[arg-type]
        reused = sum("earlier" in it for it in items)
        finish = _with_input_columns(inputs)  # type: ignore[arg-type]
    reset_hosts()
    result = run_bulk(
        items,
        ChunkFunction(functools.partial(fetch_chunk, cfg=cfg, opt_outs=opt_outs)),
        schema_name="fetched",
        out=out_table(cfg.out),
        config=BulkConfig.of(cfg, "fetch"),
        settings=stamp,
        key=("video_id", "url"),
        finish=finish,
        metadata={STAMP_META: json.dumps(stamp, sort_keys=True).encode()},
        tally=_tally,
        tally_fields=(
            "ok {task.fields[ok]:.0f}",
            "failed {task.fields[failed]:.0f}",
            "{task.fields[megabytes_per_s]:.1f} MB/s",
        ),
    )
    if isinstance(finish, BlockFinish):
        reused = finish.reused
    if uris.is_local(cfg.out):
        shutil.rmtree(uris.local_path(cfg.out) / "videos" / ".incoming", ignore_errors=True)
    summary = summarize(result, time.perf_counter() - t0, cfg, reused)
    write_json(summary, summary_path(out_table(cfg.out)))
    return result, summary
