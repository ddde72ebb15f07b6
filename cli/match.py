"""Assembly commands: match (whole or partitioned), match-count, partition-videos, synth-metadata."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from weaksup.cli.common import (
    OldVideosCountOption,
    ProgressOption,
    RayAddressOption,
    check_option,
    num_videos_of,
    print_summary,
    run,
)

if TYPE_CHECKING:
    from weaksup.assembly.match_ray import RayOptions

TEXT_COLUMN_HELP = (
    "A free-text column (e.g. caption): its #tags and its phrases are looked up in the hashtag index: every run of "
    "1-4 consecutive words, concatenated ('catching a fish' -> catchingafish), and of 2-3 consecutive words once stop "
    "words are removed (catchingfish); a hashtags column, if any, is used too. Without it, a text column is split "
    "into single-word tags when it has no #, so captions match only one-word hashtags."
)
KEEP_COLUMNS_HELP = (
    "Comma-separated videos-table columns carried, per video, into the manifest after its own columns (e.g. "
    "licence,uploader,url from fetch): provenance for the dataset card. A name the table lacks is an error."
)
#: --engine of match and hashtag-counts (the local engine is one process: no --workers).
RayEngineOption = Annotated[
    str,
    typer.Option(
        help=(
            "local (this process) or ray: partition, count and draw as Ray tasks over video-id parts, the same "
            'result as local (Parquet input; pip install "weaksup[ray]").'
        )
    ),
]
#: --workers of the commands whose local engine has no worker processes (match, hashtag-counts).
RayWorkersOption = Annotated[
    Optional[int],
    typer.Option(
        help=(
            "With --engine ray and no --ray-address: worker processes (CPUs) of the local Ray instance (default: every "
            "core)."
        ),
    ),
]
#: --parts of a Ray match or hashtag-counts.
RayPartsOption = Annotated[
    Optional[int],
    typer.Option(
        help=(
            "With --engine ray: video-id parts, one task each per phase (default: twice the cluster's CPUs, fewer "
            "for a small table; a rerun keeps the earlier run's count). The output does not depend on it."
        ),
    ),
]


def ray_options(engine: str, ray_address: str | None, workers: int | None, parts: int | None) -> RayOptions | None:
    """The Ray settings of --engine ray (None for the local engine); refuses Ray-only options without it."""
    from weaksup.assembly.match_ray import RayOptions
    from weaksup.ray_engine import check_engine

    run(check_engine, engine, ray_address)
    if engine != "ray":
        given = [name for name, value in (("--workers", workers), ("--parts", parts)) if value is not None]
        check_option(not given, f"{' and '.join(given)} {'need' if len(given) > 1 else 'needs'} --engine ray")
        return None
    opts = RayOptions(address=ray_address, workers=workers or 0, parts=parts or 0)
    run(opts.check)
    return opts


DROP_TAGS_HELP = (
    "A text file of hashtags (one a line, # optional, blank lines skipped) removed from the hashtag index before "
    "matching."
)


def match(
    videos: Annotated[
        Path,
        typer.Option(
            help=(
                "Videos table: Parquet, CSV or JSONL with video_id, uri, hashtags (with --partitioned: a folder of "
                "part-*.parquet)."
            )
        ),
    ],
    labels: Annotated[Path, typer.Option(help="Labels table from build-labels.")],
    out: Annotated[
        Path,
        typer.Option(
            help=(
                "Output manifest (.parquet); rejects, label counts and summary go beside it (with --partitioned or "
                "--engine ray: a folder, the manifest a folder of parts in OUT/manifest/)."
            )
        ),
    ],
    min_videos: Annotated[int, typer.Option(help="Drop labels matched by fewer videos (paper: 50).")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the per-video label draw.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Rows per streamed batch.")] = 1 << 18,
    support: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Label support of the whole corpus (match-count output: a file or a folder of parts, summed); decides "
                "which labels pass --min-videos."
            )
        ),
    ] = None,
    partitioned: Annotated[
        bool,
        typer.Option(
            "--partitioned",
            help=(
                "--videos is a folder of parts (partition-videos): run match-count and match on every part, merge "
                "counts and summary into the --out folder."
            ),
        ),
    ] = False,
    text_column: Annotated[Optional[str], typer.Option(help=TEXT_COLUMN_HELP)] = None,
    drop_tags: Annotated[Optional[Path], typer.Option(help=DROP_TAGS_HELP)] = None,
    keep_columns: Annotated[Optional[str], typer.Option(help=KEEP_COLUMNS_HELP)] = None,
    progress: ProgressOption = True,
    engine: RayEngineOption = "local",
    ray_address: RayAddressOption = None,
    workers: RayWorkersOption = None,
    parts: RayPartsOption = None,
) -> None:
    """Match video hashtags against a label space; one label per video."""
    from weaksup.assembly.match import MatchConfig, match_partitioned, match_videos, parse_keep_columns

    cfg = MatchConfig(
        videos=videos,
        labels=labels,
        out=out,
        min_videos=min_videos,
        seed=seed,
        batch_size=batch_size,
        support=support,
        text_column=text_column,
        drop_tags=drop_tags,
        keep_columns=parse_keep_columns(keep_columns),
        progress=progress,
    )
    opts = ray_options(engine, ray_address, workers, parts)
    if opts is not None:
        from weaksup.assembly.match_ray import match_on_ray

        check_option(not partitioned, "--partitioned: not with --engine ray (it partitions the table itself)")
        check_option(support is None, "--support: not with --engine ray (it counts the whole corpus' support itself)")
        print_summary(f"match -> {out}", run(match_on_ray, cfg, opts))
        return
    print_summary(f"match -> {out}", run(match_partitioned if partitioned else match_videos, cfg))


def match_count(
    videos: Annotated[Path, typer.Option(help="Videos table or one part of it (partition-videos).")],
    labels: Annotated[Path, typer.Option(help="Labels table from build-labels.")],
    out: Annotated[Path, typer.Option(help="Output label support table (.parquet), e.g. counts/part-00003.parquet.")],
    batch_size: Annotated[int, typer.Option(help="Rows per streamed batch.")] = 1 << 18,
    text_column: Annotated[
        Optional[str], typer.Option(help=TEXT_COLUMN_HELP + " Use the same as in match --support.")
    ] = None,
    drop_tags: Annotated[
        Optional[Path], typer.Option(help=DROP_TAGS_HELP + " Use the same as in match --support.")
    ] = None,
    progress: ProgressOption = True,
) -> None:
    """Phase 1 of a partitioned match: per-label matched-video support of one part (sum them with match --support)."""
    from weaksup.assembly.match import MatchCountConfig, count_matches

    cfg = MatchCountConfig(
        videos=videos,
        labels=labels,
        out=out,
        batch_size=batch_size,
        text_column=text_column,
        drop_tags=drop_tags,
        progress=progress,
    )
    print_summary(f"match-count -> {out}", run(count_matches, cfg))


def partition_videos(
    videos: Annotated[Path, typer.Option(help="Videos table: Parquet (file or folder), CSV or JSONL.")],
    out: Annotated[Path, typer.Option(help="Output folder of part-00000.parquet ... and _partition.json.")],
    parts: Annotated[int, typer.Option(help="Number of parts.")] = 16,
    batch_size: Annotated[int, typer.Option(help="Rows per streamed batch.")] = 1 << 18,
    progress: ProgressOption = True,
) -> None:
    """Split a videos table into parts by a stable hash of video_id (every copy of an id in one part)."""
    from weaksup.assembly.partition import PartitionConfig
    from weaksup.assembly.partition import partition_videos as split

    check_option(batch_size >= 1, f"--batch-size {batch_size}: must be at least 1")
    cfg = PartitionConfig(videos=videos, out=out, parts=parts, batch_size=batch_size, progress=progress)
    print_summary(f"partition-videos -> {out}", run(split, cfg))


def synth_metadata(
    out: Annotated[Path, typer.Option(help="Output videos table (.parquet).")],
    num_videos: Annotated[Optional[int], typer.Option(help="Number of videos to generate (required).")] = None,
    labels: Annotated[
        Optional[Path], typer.Option(help="Labels table whose hashtags to use (default: Kinetics-400).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of everything drawn.")] = 0,
    zipf_exponent: Annotated[float, typer.Option(help="Zipf exponent of label frequencies.")] = 1.1,
    videos: OldVideosCountOption = None,
) -> None:
    """Generate a synthetic videos table with Zipf-distributed hashtags."""
    from weaksup.synth.metadata import SynthMetadataConfig
    from weaksup.synth.metadata import synth_metadata as synth

    num_videos = num_videos_of(num_videos, videos)
    check_option(num_videos is not None, "--num-videos is required (the number of videos to generate)")
    cfg = SynthMetadataConfig(videos=num_videos, out=out, labels=labels, seed=seed, zipf_exponent=zipf_exponent)
    print_summary(f"synth-metadata -> {out}", run(synth, cfg))


def register(app: typer.Typer) -> None:
    app.command("match")(match)
    app.command("match-count")(match_count)
    app.command("partition-videos")(partition_videos)
    app.command("synth-metadata")(synth_metadata)
