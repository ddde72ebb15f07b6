"""Assembly commands: match, synth-metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import print_summary, run


def match(
    videos: Annotated[Path, typer.Option(help="Videos table: Parquet, CSV or JSONL with video_id, uri, hashtags.")],
    labels: Annotated[Path, typer.Option(help="Labels table from build-labels.")],
    out: Annotated[Path, typer.Option(help="Output manifest (.parquet); rejects, label counts and summary go beside it.")],
    min_videos: Annotated[int, typer.Option(help="Drop labels matched by fewer videos (paper: 50).")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the per-video label draw.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Rows per streamed batch.")] = 1 << 18,
) -> None:
    """Match video hashtags against a label space; one label per video."""
    from weaksup.assembly.match import MatchConfig, match_videos

    cfg = MatchConfig(videos=videos, labels=labels, out=out, min_videos=min_videos, seed=seed, batch_size=batch_size)
    print_summary(f"match -> {out}", run(match_videos, cfg))


def synth_metadata(
    videos: Annotated[int, typer.Option(help="Number of videos to generate.")],
    out: Annotated[Path, typer.Option(help="Output videos table (.parquet).")],
    labels: Annotated[Optional[Path], typer.Option(help="Labels table whose hashtags to use (default: Kinetics-400).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    zipf_exponent: Annotated[float, typer.Option(help="Zipf exponent of label frequencies.")] = 1.1,
) -> None:
    """Generate a synthetic videos table with Zipf-distributed hashtags."""
    from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata as synth

    cfg = SynthMetadataConfig(videos=videos, out=out, labels=labels, seed=seed, zipf_exponent=zipf_exponent)
    print_summary(f"synth-metadata -> {out}", run(synth, cfg))


def register(app: typer.Typer) -> None:
    app.command("match")(match)
    app.command("synth-metadata")(synth_metadata)
