"""Dataset-assembly commands: sample (pre-training subsets), stats (label and duration distributions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from weaksup.cli.common import print_summary, run, run_locked


def sample(
    manifest: Annotated[Path, typer.Option(help="Manifest table (.parquet) from match.")],
    strategy: Annotated[
        str,
        typer.Option(
            help="random, tail-preserving (keep tail labels whole, cap head labels) or sqrt (label ∝ sqrt(count))."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="--size: output .parquet file; --sizes: output directory of {strategy}_{N}.parquet.")
    ],
    size: Annotated[Optional[str], typer.Option(help="Videos in the subset, e.g. 100000 or 1e5.")] = None,
    sizes: Annotated[
        Optional[str], typer.Option(help="Nested series of sizes, comma-separated, e.g. 1e5,1e6,1e7.")
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the draw order; same seed and manifest give the same subsets.")
    ] = 0,
    replacement: Annotated[
        bool,
        typer.Option(
            "--replacement", help="sqrt only: draw with replacement (repeats allowed, sizes may exceed the manifest)."
        ),
    ] = False,
    weights_only: Annotated[
        bool,
        typer.Option(
            "--weights-only", help="sqrt only: write the whole manifest with sample_weight for a weighted sampler."
        ),
    ] = False,
) -> None:
    """Draw nested pre-training subsets of a manifest (random, tail-preserving or sqrt sampling)."""
    from weaksup.assembly.sample import SampleConfig, sample_manifest, sizes_from_options, terminal_summary

    def job() -> dict[str, Any]:
        parsed, series = sizes_from_options(size, sizes, weights_only)
        cfg = SampleConfig(
            manifest=manifest,
            strategy=strategy,
            out=out,
            sizes=parsed,
            series=series,
            seed=seed,
            replacement=replacement,
            weights_only=weights_only,
        )
        return sample_manifest(cfg)

    summary = run_locked(out, job)
    print_summary(f"sample ({summary['strategy']}) -> {out}", terminal_summary(summary))


def stats(
    manifest: Annotated[Path, typer.Option(help="Manifest table (.parquet) from match.")],
    out: Annotated[Path, typer.Option(help="Output directory: label_counts.parquet, PNG plots, summary.json.")],
    probe: Annotated[
        Optional[Path], typer.Option(help="Probe table (.parquet): durations of videos with status ok.")
    ] = None,
) -> None:
    """Videos per label (Fig. 3-style cumulative plot, histogram, label_counts) and durations of a manifest."""
    from weaksup.assembly.stats import StatsConfig, manifest_stats

    summary = run(manifest_stats, StatsConfig(manifest=manifest, out=out, probe=probe))
    shown = {k: v for k, v in summary.items() if k not in ("files", "head_definition", "manifest")}
    shown["files"] = ", ".join(Path(p).name for p in summary["files"].values())
    print_summary(f"stats -> {out}", shown)


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
    app.command("stats")(stats)
