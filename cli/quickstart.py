"""`weaksup quickstart`: README's main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from weaksup.cli.common import console, run


def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for every table and report.")] = Path("quickstart-run"),
    videos: Annotated[int, typer.Option(help="Synthetic web videos to generate and match.")] = 200_000,
) -> None:
    """Run the pipeline on embedded defaults and print a report."""
    from rich.table import Table

    from weaksup.quickstart import QuickstartConfig, run_quickstart

    report = run(run_quickstart, QuickstartConfig(out=out, videos=videos))
    table = Table(title=f"weaksup quickstart -> {out}", title_justify="left")
    for col in ("label space", "labels", "hashtags", "collisions"):
        table.add_column(col)
    for name, row in report["label_spaces"].items():
        table.add_row(name, str(row["labels"]), str(row["hashtags"]), str(row["collisions"]))
    console.print(table)
    stages = Table(title="pipeline", title_justify="left", show_header=False)
    stages.add_column("stage", style="bold")
    stages.add_column("result")
    for stage, result in report["stages"].items():
        stages.add_row(stage, str(result))
    console.print(stages)
    for key, value in report.items():
        if key not in ("label_spaces", "stages"):
            console.print(f"{key}: {value}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
