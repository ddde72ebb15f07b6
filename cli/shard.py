"""The shard command: a training table's video files into tar shards (WebDataset layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import (
    AllowEmptyOption,
    EngineOption,
    ProgressOption,
    RayAddressOption,
    deprecated_option,
    nothing_done,
    one_line_warnings,
    print_summary,
    run_locked,
)


def shard(
    manifest: Annotated[
        Path, typer.Option(help="Manifest, clips (virtual or materialised) or sample table, as pretrain reads it.")
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder: shard-NNNNNN.tar, index.parquet, rejects.parquet, summary.json.")
    ],
    shard_size: Annotated[
        Optional[int], typer.Option(help="Clips per shard (default 1000 unless --shard-bytes is given).")
    ] = None,
    shard_bytes: Annotated[
        Optional[str], typer.Option(help="Target bytes per shard instead of a count: 1GB, 500MiB, 2e9.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the shuffled row order (each shard mixes classes).")] = 0,
    threads: Annotated[
        int, typer.Option(help="Threads reading files and writing shards (I/O; at least 1; --engine ray: per task).")
    ] = 2,
    progress: ProgressOption = True,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help=(
                "Continue from what an earlier run of the same input and settings left in OUT (--no-resume: delete "
                "the shards of an earlier run and start over)."
            ),
        ),
    ] = True,
    resume_strict: Annotated[
        bool,
        typer.Option(
            "--resume-strict",
            help="Stop (exit 2) when shards of an earlier run do not match this job's rows or "
            "settings, instead of rewriting them with a warning.",
        ),
    ] = False,
    allow_empty: AllowEmptyOption = False,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: Annotated[Optional[int], typer.Option("--workers", hidden=True, help="Deprecated: --threads.")] = None,
) -> None:
    """Write the video files (unchanged) and their labels into tar shards for sequential reading.

    Each clip is <key>.<ext> + <key>.json; a rerun skips the shards already complete (same rows, same settings);
    missing or unreadable files go to rejects.parquet.
    """
    from weaksup.data.shard_writer import ShardConfig, parse_size, write_shards

    if workers is not None:  # --workers means processes in every other command
        deprecated_option("shard --workers N (threads)", "shard --threads N")
        threads = workers

    def job() -> dict:
        cfg = ShardConfig(
            manifest=manifest,
            out=out,
            shard_size=shard_size,
            shard_bytes=None if shard_bytes is None else parse_size(shard_bytes),
            seed=seed,
            workers=threads,
            progress=progress,
            resume=resume,
            resume_strict=resume_strict,
            engine=engine,
            ray_address=ray_address,
        )
        return write_shards(cfg)

    with one_line_warnings():
        summary = run_locked(out, job)
    print_summary(f"shard -> {out}", summary)
    from weaksup.bulk import nothing_done_message

    nothing_done(
        nothing_done_message(summary["rows"], summary["rows"] - summary["clips"], "row", summary["rejected_by_reason"]),
        allow_empty,
    )


def register(app: typer.Typer) -> None:
    app.command("shard")(shard)
