"""synth-corpus: an embedded synthetic web-video corpus with its truth and a target benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import OldVideosCountOption, ProgressOption, num_videos_of, print_summary, run


def synth_corpus(
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder: videos/, videos.parquet, truth.parquet, labels.txt, target/, planted.parquet."
        ),
    ],
    num_videos: Annotated[
        Optional[int],
        typer.Option(help="Number of web videos, planted copies on top (default 600).", show_default=False),
    ] = None,
    classes: Annotated[int, typer.Option(help="Use the first N motion classes (2 to 12).")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of everything drawn.")] = 0,
    zipf_exponent: Annotated[float, typer.Option(help="Zipf exponent of class frequencies (0 = uniform).")] = 1.0,
    min_duration: Annotated[float, typer.Option(help="Shortest web video, seconds (durations are log-uniform).")] = 1.0,
    max_duration: Annotated[float, typer.Option(help="Longest web video, seconds.")] = 60.0,
    fps: Annotated[float, typer.Option(help="Frame rate of every video.")] = 12.0,
    target_train: Annotated[int, typer.Option(help="Target benchmark training videos per class.")] = 12,
    target_test: Annotated[int, typer.Option(help="Target benchmark test videos per class.")] = 6,
    planted: Annotated[int, typer.Option(help="Target test videos planted, transformed, in the web corpus.")] = 12,
    target_class: Annotated[
        Optional[list[str]],
        typer.Option(
            help="A class of the target benchmark (repeat it; default: the web classes). Besides the web classes: "
            "moving up left, moving up right, moving down left, moving down right (diagonals; the quickstart's "
            "target)."
        ),
    ] = None,
    missing_tag_rate: Annotated[float, typer.Option(help="Share of web videos without their class tag.")] = 0.15,
    wrong_tag_rate: Annotated[float, typer.Option(help="Share tagged with another class instead of theirs.")] = 0.10,
    second_label_rate: Annotated[float, typer.Option(help="Share tagged with their class and another.")] = 0.10,
    noise_tags_mean: Annotated[float, typer.Option(help="Mean number of unrelated tags per video (Poisson).")] = 1.5,
    workers: Annotated[int, typer.Option(help="Encoding processes (0 = in this process).")] = 2,
    progress: ProgressOption = True,
    videos: OldVideosCountOption = None,
) -> None:
    """Generate a synthetic web-video corpus (motion classes, noisy hashtags) with truth and a target benchmark."""
    from weaksup.synth.corpus import SynthCorpusConfig
    from weaksup.synth.corpus import synth_corpus as synth

    n_videos = num_videos_of(num_videos, videos)
    n_videos = SynthCorpusConfig.n_videos if n_videos is None else n_videos
    cfg = SynthCorpusConfig(
        out=out,
        seed=seed,
        n_videos=n_videos,
        n_classes=classes,
        zipf_exponent=zipf_exponent,
        min_duration_s=min_duration,
        max_duration_s=max_duration,
        fps=fps,
        n_target_train_per_class=target_train,
        n_target_test_per_class=target_test,
        n_planted=planted,
        target_classes=tuple(target_class or ()),
        missing_tag_rate=missing_tag_rate,
        wrong_tag_rate=wrong_tag_rate,
        second_label_rate=second_label_rate,
        noise_tags_mean=noise_tags_mean,
        workers=workers,
    )
    print_summary(f"synth-corpus -> {out}", run(synth, cfg, progress=progress))


def register(app: typer.Typer) -> None:
    app.command("synth-corpus")(synth_corpus)
