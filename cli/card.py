"""`weaksup card`: a dataset card (Markdown with hub front matter) and its label plot for a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import print_summary, run


def card(
    manifest: Annotated[
        Path, typer.Option(help="Manifest table (.parquet, or a folder of parts from match --partitioned).")
    ],
    out: Annotated[
        Path, typer.Option(help="Output card (Markdown), e.g. DATASET_CARD.md; the label plot goes beside it.")
    ],
    fetched: Annotated[
        Optional[Path],
        typer.Option(help="Fetch table (fetched.parquet): its status/error columns give the fetch rejects by reason."),
    ] = None,
    dedupe_report: Annotated[
        Optional[Path], typer.Option(help="Dedupe's overlaps report (dedupe --report): the videos it removed.")
    ] = None,
    title: Annotated[
        Optional[str], typer.Option(help="The card's title (default: the manifest's folder or file name).")
    ] = None,
    top: Annotated[int, typer.Option(help="Labels in the plot and in the top labels table.")] = 25,
    bottom: Annotated[int, typer.Option(help="Labels in the bottom labels table.")] = 10,
) -> None:
    """Write a dataset card: counts, label distribution plot, sources, licences, rejects, settings, versions."""
    from weaksup.assembly.card import CardConfig, write_card

    cfg = CardConfig(
        manifest=manifest, out=out, fetched=fetched, dedupe_report=dedupe_report, title=title, top=top, bottom=bottom
    )
    summary = run(write_card, cfg)
    shown = {k: v for k, v in summary.items() if k != "licences"}
    shown["summaries"] = ", ".join(summary["summaries"]) or "none found"
    print_summary(f"card -> {out}", shown)


def register(app: typer.Typer) -> None:
    app.command("card")(card)
