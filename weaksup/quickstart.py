"""`weaksup quickstart`: the pipeline on embedded defaults, as README's first command.

Today it builds the paper's bundled label spaces (IG-Kinetics, IG-Noun, IG-Verb and a
pruned IG-Verb+Noun) and measures how IG-Verb covers Kinetics; later stages join in as
they land.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.labels.overlap import label_overlap


@dataclass(frozen=True)
class QuickstartConfig:
    out: Path = Path("quickstart-run")


def run_quickstart(cfg: QuickstartConfig) -> dict:
    """Run every available stage on embedded data into ``cfg.out``; return the report."""
    out = Path(cfg.out)
    spaces = {
        "IG-Kinetics": BuildLabelsConfig(sources=("kinetics400",), out=out / "labels" / "kinetics400.parquet"),
        "IG-Noun": BuildLabelsConfig(sources=("imagenet",), out=out / "labels" / "imagenet.parquet"),
        "IG-Verb": BuildLabelsConfig(sources=("kinetics-verbs",), out=out / "labels" / "kinetics_verbs.parquet"),
    }
    report: dict = {"label_spaces": {}}
    for name, cfg_space in spaces.items():
        res = build_labels(cfg_space)
        report["label_spaces"][name] = {
            "labels": res.summary["labels"],
            "hashtags": res.summary["hashtags"],
            "collisions": res.summary["collisions"],
            "path": str(res.labels_path),
        }
    _, overlap = label_overlap(
        spaces["IG-Verb"].out, spaces["IG-Kinetics"].out, out / "labels" / "overlap_verbs_vs_kinetics.parquet"
    )
    report["Kinetics-400 labels reached by IG-Verb (exact or shared hashtag / partially)"] = (
        f"{overlap['reached']}/{overlap['target_labels']} / {overlap['reached_or_partial']}/{overlap['target_labels']}"
    )
    return report
