"""``weaksup fetch``: a videos table with URLs in, verified video files and ``fetched.parquet`` out.

Every input row appears once in ``fetched.parquet``, with its input columns carried through
and the fetch columns added (schemas/fetched.json). The job runs in resumable, stamped parts
(:mod:`weaksup.bulk`); each part's rows are fetched concurrently on one event loop
(:mod:`weaksup.fetch.client`). A rerun of a finished job reuses its rows (made from the same
input rows and settings); ``retry_rejected`` fetches again only the rows that failed for a
reason that may pass (network, timeout, 429, 5xx), never a 404 or an opt-out.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.videos import open_table
from weaksup.blocks import Block
from weaksup.bulk import BulkConfig, BulkResult, ChunkFunction, StaleResumeWarning, read_stamp, run_bulk, summary_path
from weaksup.errors import InputError, first_line
from weaksup.fetch.client import Fetcher, Outcome, local_tmp_dir, make_session, reset_hosts
from weaksup.fetch.config import FetchConfig
from weaksup.fetch.optout import OptOutList
from weaksup.fetch.safety import file_stem
from weaksup.ray_engine import check_engine
from weaksup.tables import load_schema, write_json

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


def read_input(cfg: FetchConfig) -> tuple[pa.Table, str]:
    """The whole videos table (``video_id`` as text) and the name of its URL column."""
    dataset = open_table(cfg.videos)
    label = uris.display(cfg.videos)
    names = dataset.schema.names
    if "video_id" not in names:
        raise InputError(f"{label}: missing column 'video_id' (fetch needs video_id and a URL column)")
    try:
        table = dataset.to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{label}: cannot read the table ({first_line(exc)})") from None
    column = cfg.url_column
    if column not in names:
        uri_is_url = "uri" in names and cfg.url_column == "url" and _all_http(table.column("uri"))
        if not uri_is_url:
            raise InputError(
                f"{label}: no URL column {column!r} "
                "(name it with --url-column; 'uri' is used when it holds http(s) URLs)"
            )
        column = "uri"
    ids = table.column("video_id")
    if ids.null_count:
        raise InputError(f"{label}: column 'video_id' has {ids.null_count} empty value(s); every video needs one")
    table = table.set_column(names.index("video_id"), "video_id", ids.cast(pa.string()))
    i = table.column_names.index(column)
    table = table.set_column(i, column, table.column(column).cast(pa.string()))
    return table, column


def _all_http(col: pa.ChunkedArray) -> bool:
    values = pc.drop_null(col.cast(pa.string()))
    return len(values) > 0 and bool(pc.all(pc.match_substring_regex(values, r"(?i)^https?://")).as_py())


def _previous_rows(cfg: FetchConfig, stamp: dict[str, Any]) -> dict[tuple[str, str], dict]:
    """An earlier finished run's rows by (video_id, url), when made under these settings."""
    path = out_table(cfg.out)
    if not cfg.resume or not uris.exists(path):
        return {}
    try:
        with uris.open_input(path) as f:
            table = pq.read_table(f)
    except Exception as exc:  # noqa: BLE001 - a broken earlier table is redone, never trusted
        warnings.warn(f"{uris.display(path)}: earlier table unreadable ({first_line(exc)}); fetching again")
        return {}
    earlier = read_stamp((table.schema.metadata or {}).get(STAMP_META))
    if earlier != json.loads(json.dumps(stamp)):
        warnings.warn(
            f"{uris.display(path)}: made with other settings or by another tool; its rows are fetched again",
            StaleResumeWarning,
        )
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


def plan_items(table: pa.Table, url_column: str, cfg: FetchConfig, stamp: dict[str, Any]) -> list[dict]:
    """One item per input row: its id and URL, where its file goes, and an earlier run's row
    when that one stands; duplicate ids and empty URLs become rejected rows here."""
    previous = _previous_rows(cfg, stamp)
    first_row: dict[str, int] = {}
    items = []
    for n, (vid, url) in enumerate(zip(table.column("video_id").to_pylist(), table.column(url_column).to_pylist())):
        shard, stem = file_stem(vid)
        item: dict[str, Any] = {"video_id": vid, "url": url or "", "shard": shard, "stem": stem, "row": n}
        if vid in first_row:
            item["reject"] = f"duplicate video_id: row {first_row[vid]} has the same id"
        elif not url:
            item["reject"] = "no url: the URL column is empty"
        else:
            first_row[vid] = n
            earlier = previous.get((vid, url))
            if _reusable(earlier, cfg):
                item["earlier"] = earlier
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
    replaced by where the file is now; the URL stays in ``url``)."""

    def finish(fetched: pa.Table, block: Block) -> pa.Table:
        rows = inputs.slice(block.first, fetched.num_rows)
        for name in [c for c in inputs.column_names if c not in FETCH_COLUMNS]:
            fetched = fetched.append_column(inputs.schema.field(name), rows.column(name))
        return fetched

    return finish


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
    """Fetch every row of ``cfg.videos`` into ``cfg.out``; (the fetched table, the summary)."""
    check_engine(cfg.engine, cfg.ray_address)
    t0 = time.perf_counter()
    inputs, url_column = read_input(cfg)
    opt_outs = OptOutList.read(cfg.opt_out_list)
    stamp = {**cfg.stamp(), "opt_out_list": list(opt_outs.patterns) and [p for _, p in opt_outs.patterns]}
    if uris.is_local(cfg.out):
        uris.local_path(cfg.out).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(uris.local_path(cfg.out) / "videos" / ".incoming", ignore_errors=True)  # a killed run's bodies
    items = plan_items(inputs, url_column, cfg, stamp)
    reused = sum("earlier" in it for it in items)
    reset_hosts()
    result = run_bulk(
        items,
        ChunkFunction(functools.partial(fetch_chunk, cfg=cfg, opt_outs=opt_outs)),
        schema_name="fetched",
        out=out_table(cfg.out),
        config=BulkConfig.of(cfg, "fetch"),
        settings=stamp,
        key=("video_id", "url"),
        finish=_with_input_columns(inputs),
        metadata={STAMP_META: json.dumps(stamp, sort_keys=True).encode()},
        tally=_tally,
        tally_fields=(
            "ok {task.fields[ok]:.0f}",
            "failed {task.fields[failed]:.0f}",
            "{task.fields[megabytes_per_s]:.1f} MB/s",
        ),
    )
    if uris.is_local(cfg.out):
        shutil.rmtree(uris.local_path(cfg.out) / "videos" / ".incoming", ignore_errors=True)
    summary = summarize(result, time.perf_counter() - t0, cfg, reused)
    write_json(summary, summary_path(out_table(cfg.out)))
    return result, summary
