"""`weaksup quickstart`: README's main job, the whole pipeline on an embedded synthetic corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import OldVideosCountOption, ProgressOption, console, err_console, num_videos_of, run


def quickstart(
    out: Annotated[
        Path, typer.Option(help="Folder for the corpus and every table, checkpoint, plot and report.")
    ] = Path("quickstart-run"),
    small: Annotated[
        bool, typer.Option("--small", help="A one-minute version (4 classes, 120 videos; CI runs it).")
    ] = False,
    num_videos: Annotated[
        Optional[int], typer.Option(help="Synthetic web videos (default 600; 120 with --small).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the corpus and of every stage.")] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes for encoding, probing, fingerprinting, loading.")] = 2,
    from_urls: Annotated[
        bool,
        typer.Option(
            "--from-urls",
            help="Start from URLs: serve the corpus on 127.0.0.1 and download it with weaksup fetch first.",
        ),
    ] = False,
    progress: ProgressOption = True,
    resume: Annotated[
        bool,
        typer.Option(
            help="Reuse the stages an earlier run of the same settings into OUT finished "
            "(--no-resume runs every stage again)."
        ),
    ] = True,
    videos: OldVideosCountOption = None,
) -> None:
    """Run every stage (corpus, [fetch,] labels, match, sample, probe, splits, stats, dedupe, pretrain, extract,
    eval) on an embedded synthetic web-video corpus and print a one-screen report."""
    from weaksup.quickstart import QuickstartConfig, report_tables, run_quickstart

    extra = {"seed": seed, "workers": workers, "progress": progress, "resume": resume, "from_urls": from_urls}
    cfg = QuickstartConfig.small(out, **extra) if small else QuickstartConfig(out=out, **extra)
    num_videos = num_videos_of(num_videos, videos)
    if num_videos:
        from dataclasses import replace

        cfg = replace(cfg, videos=num_videos)
    from weaksup.train.loop import TrainingStopped

    try:
        report = run(run_quickstart, cfg)
    except TrainingStopped as exc:  # diverged, or too many clips failed to decode: one line, exit 1
        err_console.print(f"weaksup: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for table in report_tables(report):
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
