"""The dedupe command: drop training videos that overlap benchmark videos (paper supp. A.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import ProgressOption, RayAddressOption, print_summary, run

# the library's defaults (weaksup.dedupe.dedupe; a test keeps them equal), written out so
# that `weaksup --help` does not import numpy, pyarrow and OpenCV
DEFAULT_THRESHOLD = 1.0
DEFAULT_RADIUS = 7
DEFAULT_MIN_FRAMES = 8

EngineOption = Annotated[
    str,
    typer.Option(
        help="Where fingerprinting and the source search run: local (processes here) or ray (fingerprinting "
        "through Ray Data; the search as one Ray task per block of source codes row groups, the target index "
        "shared through the object store, each block's pairs kept in OUT.parts so a rerun searches only "
        "unfinished blocks; on a multi-machine cluster OUT must be on storage every node mounts). "
        'pip install "weaksup[ray]".'
    ),
]


def dedupe(
    manifest: Annotated[Path, typer.Option(help="Manifest to clean (Parquet, from match/sample).")],
    out: Annotated[Path, typer.Option(help="Cleaned manifest (.parquet); removed rows and the summary go beside it.")],
    report: Annotated[
        Path, typer.Option(help="Overlap report (.parquet): one row per (source, target) pair that aligned.")
    ],
    targets: Annotated[
        Optional[Path],
        typer.Option(
            help="Benchmark videos: a codes table (from fingerprint) or a videos table (fingerprinted first)."
        ),
    ] = None,
    source_codes: Annotated[
        Optional[Path], typer.Option(help="Codes of the manifest's videos; fingerprinted beside OUT when absent.")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Remove a source when a target covers at least this percent of its length.")
    ] = DEFAULT_THRESHOLD,
    radius: Annotated[int, typer.Option(help="Hamming bits within which two frame codes match.")] = DEFAULT_RADIUS,
    min_frames: Annotated[
        int, typer.Option(help="Aligned source frames (at 16 fps) for a pair to be reported.")
    ] = DEFAULT_MIN_FRAMES,
    self_dedupe: Annotated[
        bool,
        typer.Option("--self", help="De-duplicate the manifest against itself (keeps one video per group of copies)."),
    ] = False,
    chunk_size: Annotated[int, typer.Option(help="Source videos queried together (bounds memory).")] = 256,
    workers: Annotated[int, typer.Option(help="Worker processes when fingerprinting (0 = in this process).")] = 2,
    progress: ProgressOption = True,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Match every source video's frame codes (and their mirror images) against the target codes
    (full frame and 10%/20% crops), align the matches in time, report overlapping pairs, and
    remove sources whose overlap reaches the threshold.
    """
    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest

    cfg = DedupeConfig(
        manifest=manifest,
        out=out,
        report=report,
        targets=targets,
        source_codes=source_codes,
        threshold=threshold,
        radius=radius,
        min_frames=min_frames,
        self_dedupe=self_dedupe,
        chunk_size=chunk_size,
        workers=workers,
        progress=progress,
        engine=engine,
        ray_address=ray_address,
    )
    summary = run(dedupe_manifest, cfg)
    print_summary(f"dedupe -> {out}", summary)


def register(app: typer.Typer) -> None:
    app.command("dedupe")(dedupe)
