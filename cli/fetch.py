"""The fetch command: a videos table with URLs in, verified video files and fetched.parquet out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from weaksup.cli.common import (
    AllowEmptyOption,
    EngineOption,
    PartsResumeOption,
    ProgressOption,
    RayAddressOption,
    ResumeStrictOption,
    run,
    run_bulk_command,
)
from weaksup.fetch.config import FIELD_HELP as H


def fetch(
    videos: Annotated[str, typer.Option(help=H["videos"])],
    out: Annotated[str, typer.Option(help=H["out"])],
    url_column: Annotated[str, typer.Option(help=H["url_column"])] = "url",
    concurrency: Annotated[int, typer.Option(help=H["concurrency"])] = 16,
    host_concurrency: Annotated[int, typer.Option(help=H["host_concurrency"])] = 4,
    host_rate: Annotated[float, typer.Option(help=H["host_rate"])] = 4.0,
    max_attempts: Annotated[int, typer.Option(help=H["max_attempts"])] = 4,
    backoff_s: Annotated[float, typer.Option(help=H["backoff_s"])] = 1.0,
    max_wait_s: Annotated[float, typer.Option(help=H["max_wait_s"])] = 120.0,
    connect_timeout_s: Annotated[float, typer.Option(help=H["connect_timeout_s"])] = 10.0,
    read_timeout_s: Annotated[float, typer.Option(help=H["read_timeout_s"])] = 30.0,
    min_bytes_per_s: Annotated[float, typer.Option(help=H["min_bytes_per_s"])] = 4096.0,
    max_redirects: Annotated[int, typer.Option(help=H["max_redirects"])] = 5,
    max_bytes: Annotated[int, typer.Option(help=H["max_bytes"])] = 2 << 30,
    breaker_failures: Annotated[int, typer.Option(help=H["breaker_failures"])] = 8,
    opt_out_list: Annotated[str | None, typer.Option(help=H["opt_out_list"])] = None,
    ignore_opt_outs: Annotated[bool, typer.Option("--ignore-opt-outs", help=H["ignore_opt_outs"])] = False,
    allow_private_hosts: Annotated[bool, typer.Option("--allow-private-hosts", help=H["allow_private_hosts"])] = False,
    verify_tls: Annotated[bool, typer.Option("--verify-tls/--no-verify-tls", help=H["verify_tls"])] = True,
    user_agent: Annotated[str | None, typer.Option(help=H["user_agent"] + " [default: weaksup/VERSION (+URL)]")] = None,
    contact: Annotated[str | None, typer.Option(help=H["contact"])] = None,
    retry_rejected: Annotated[bool, typer.Option("--retry-rejected", help=H["retry_rejected"])] = False,
    max_height: Annotated[int, typer.Option(help=H["max_height"])] = 720,
    cookies: Annotated[Path | None, typer.Option(help=H["cookies"])] = None,
    proxy: Annotated[str | None, typer.Option(help=H["proxy"])] = None,
    workers: Annotated[int, typer.Option(help=H["workers"])] = 0,
    chunk_size: Annotated[int, typer.Option(help=H["chunk_size"])] = 256,
    progress: ProgressOption = True,
    resume: PartsResumeOption = True,
    resume_strict: ResumeStrictOption = False,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    allow_empty: AllowEmptyOption = False,
) -> None:
    """Download every row's URL into OUT/videos/<shard>/<id>.<ext> and write OUT/fetched.parquet.

    Every input row appears once in fetched.parquet, its input columns carried through, with
    status ok (a verified video file at uri) or rejected (error says why; retryable says whether
    --retry-rejected will try it again). robots.txt, X-Robots-Tag (noai, noindex, ...) and
    --opt-out-list are honoured unless --ignore-opt-outs; loopback and private addresses are
    refused unless --allow-private-hosts. A rerun continues a killed job and keeps a finished
    one's rows. Platform pages (YouTube, Vimeo, ...) need: pip install 'weaksup[ytdlp]'.
    """
    from weaksup.fetch.config import FetchConfig
    from weaksup.fetch.fetch import fetch_videos, out_table

    extra = {"user_agent": user_agent} if user_agent else {}
    cfg = run(
        FetchConfig,
        videos=videos,
        out=out,
        url_column=url_column,
        concurrency=concurrency,
        host_concurrency=host_concurrency,
        host_rate=host_rate,
        max_attempts=max_attempts,
        backoff_s=backoff_s,
        max_wait_s=max_wait_s,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        min_bytes_per_s=min_bytes_per_s,
        max_redirects=max_redirects,
        max_bytes=max_bytes,
        breaker_failures=breaker_failures,
        opt_out_list=opt_out_list,
        ignore_opt_outs=ignore_opt_outs,
        allow_private_hosts=allow_private_hosts,
        verify_tls=verify_tls,
        contact=contact,
        retry_rejected=retry_rejected,
        max_height=max_height,
        cookies=cookies,
        proxy=proxy,
        workers=workers,
        chunk_size=chunk_size,
        progress=progress,
        resume=resume,
        resume_strict=resume_strict,
        engine=engine,
        ray_address=ray_address,
        **extra,
    )
    run_bulk_command(fetch_videos, cfg, f"fetch -> {out_table(out)}", allow_empty)


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)
