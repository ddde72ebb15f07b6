"""The probe command: container metadata of every video in a videos table."""

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


def probe(
    videos: Annotated[Path, typer.Option(help="Videos table (Parquet, CSV or JSONL) with video_id and uri columns.")],
    out: Annotated[Path, typer.Option(help="Output probe table (.parquet); the summary goes beside it.")],
    workers: Annotated[int, typer.Option(help="Worker processes (0 = in this process).")] = 2,
    chunk_size: Annotated[int, typer.Option(help="Videos per resumable part.")] = 64,
    count_frames: Annotated[
        bool,
        typer.Option(
            help="Where the container states no frame count (WebM/MKV), count packets: exact, reads whole files."
        ),
    ] = False,
    progress: ProgressOption = True,
    resume: PartsResumeOption = True,
    resume_strict: ResumeStrictOption = False,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    allow_empty: AllowEmptyOption = False,
) -> None:
    """Read duration, fps, frame count, size, rotation, codec and audio of each video, without decoding.

    Unreadable videos become status=rejected rows with a reason; a rerun after a kill resumes
    (only the parts made from the same rows and settings). When every video is rejected the table
    is still written, with a warning and exit code 3 (unless --allow-empty).
    """
    from weaksup.assembly.probe import ProbeConfig, probe_videos

    cfg = ProbeConfig(
        videos=videos,
        out=out,
        workers=workers,
        chunk_size=chunk_size,
        progress=progress,
        count_frames=count_frames,
        engine=engine,
        ray_address=ray_address,
        resume=resume,
        resume_strict=resume_strict,
    )
    run_bulk_command(probe_videos, cfg, f"probe -> {out}", allow_empty)


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
