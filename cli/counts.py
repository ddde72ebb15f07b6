"""Corpus counts: hashtag-counts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from weaksup.cli.common import ProgressOption, RayAddressOption, print_summary, run
from weaksup.cli.match import RayEngineOption, RayPartsOption, RayWorkersOption, ray_options


def hashtag_counts(
    videos: Annotated[
        Path,
        typer.Option(
            help=(
                "Videos table: Parquet (file or folder of parts), CSV or JSONL with video_id, uri, hashtags (a list, "
                "or text with #tags); a path or uri."
            )
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output table (.parquet): hashtag, count (videos carrying it); rejects and summary go beside it."
        ),
    ],
    min_count: Annotated[int, typer.Option(help="Keep hashtags carried by at least this many videos.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Rows per streamed batch.")] = 1 << 18,
    progress: ProgressOption = True,
    engine: RayEngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: RayWorkersOption = None,
    parts: RayPartsOption = None,
) -> None:
    """Count the videos carrying each hashtag (normalised as match does); the --pair-counts input of build-labels."""
    from weaksup.assembly.hashtag_counts import HashtagCountsConfig, count_hashtags

    cfg = HashtagCountsConfig(videos=videos, out=out, min_count=min_count, batch_size=batch_size, progress=progress)
    opts = ray_options(engine, ray_address, workers, parts)
    if opts is not None:
        from weaksup.assembly.match_ray import count_hashtags_on_ray

        result = run(count_hashtags_on_ray, cfg, opts)
    else:
        result = run(count_hashtags, cfg)
    print_summary(f"hashtag-counts -> {result.out}", result.summary)


def register(app: typer.Typer) -> None:
    app.command("hashtag-counts")(hashtag_counts)
