"""The fingerprint command: per-frame Census-Transform codes of every video, for de-duplication."""

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
    run_bulk_command,
)


def fingerprint(
    videos: Annotated[Path, typer.Option(help="Videos table (Parquet, CSV or JSONL) with video_id and uri columns.")],
    out: Annotated[Path, typer.Option(help="Output codes table (.parquet); the summary goes beside it.")],
    fps: Annotated[
        float, typer.Option(help="Sampling rate of the codes; tables are only comparable at the same fps.")
    ] = 16.0,
    workers: Annotated[int, typer.Option(help="Worker processes (0 = in this process).")] = 2,
    chunk_size: Annotated[int, typer.Option(help="Videos per resumable part.")] = 16,
    progress: ProgressOption = True,
    resume: PartsResumeOption = True,
    resume_strict: ResumeStrictOption = False,
    decode_threads: Annotated[
        bool,
        typer.Option(
            help=(
                "Let FFmpeg decode each video with several threads; --no-decode-threads when every core runs a worker "
                "(cluster jobs)."
            )
        ),
    ] = True,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    allow_empty: AllowEmptyOption = False,
) -> None:
    """Decode each video at FPS and store a 64-bit census code per frame (full, 10% and 20% crops).

    Undecodable videos become status=rejected rows, flat or too short ones status=unfingerprintable,
    each with a reason; a rerun after a kill resumes (only the parts made from the same rows and settings).
    When every video is rejected the table is still written, with a warning and exit code 3 (unless --allow-empty).
    """
    from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos

    cfg = FingerprintConfig(
        videos=videos,
        out=out,
        fps=fps,
        workers=workers,
        chunk_size=chunk_size,
        progress=progress,
        engine=engine,
        ray_address=ray_address,
        decode_threads=decode_threads,
        resume=resume,
        resume_strict=resume_strict,
    )
    run_bulk_command(fingerprint_videos, cfg, f"fingerprint -> {out}", allow_empty)


def register(app: typer.Typer) -> None:
    app.command("fingerprint")(fingerprint)
