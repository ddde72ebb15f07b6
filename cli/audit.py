"""Audit commands: label-audit (which hashtags brought each label its videos, and contact sheets of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import print_summary, run


def label_audit(
    manifest: Annotated[
        Path, typer.Option(help="Manifest from match (.parquet, or a folder of parts) with matched_hashtags.")
    ],
    out: Annotated[
        Path,
        typer.Option(help="Output folder: tag_shares.parquet, contact_sheets/<label_id>_<name>.png, summary.json."),
    ],
    videos_per_label: Annotated[
        int, typer.Option(help="Videos per label on its contact sheet (a reproducible sample).")
    ] = 12,
    labels: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Labels table from build-labels: count only a video's tags that are hashtags of its label (default: "
                "all its matched_hashtags)."
            )
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the per-label sample; same seed and manifest give the same videos.")
    ] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Per label: the hashtags that brought its videos and their shares, and a contact sheet of its videos."""
    from weaksup.assembly.audit import LabelAuditConfig, audit_labels

    cfg = LabelAuditConfig(
        manifest=manifest, out=out, videos_per_label=videos_per_label, labels=labels, seed=seed, progress=progress
    )
    summary = run(audit_labels, cfg).summary
    shown = {k: v for k, v in summary.items() if k not in ("per_label", "unreadable", "outputs", "labels_table")}
    shown["outputs"] = ", ".join(Path(p).name for p in summary["outputs"].values())
    print_summary(f"label-audit -> {out}", shown)
    top = sorted(summary["per_label"], key=lambda r: -r["videos"])[:10]
    if top:
        print_summary(
            "top tags of the largest labels",
            {
                f"{r['label']} ({r['videos']})": ", ".join(f"#{t['hashtag']} {t['share']:.0%}" for t in r["top_tags"])
                or "-"
                for r in top
            },
        )


def register(app: typer.Typer) -> None:
    app.command("label-audit")(label_audit)
