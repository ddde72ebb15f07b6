"""Label-space commands: build-labels, label-overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import console, print_summary, run


def build_labels(
    source: Annotated[list[str], typer.Option("--source", "-s", help="kinetics400, imagenet, verbnet, kinetics-verbs, verb-noun or file; repeat to merge.")],
    out: Annotated[Path, typer.Option(help="Output labels table (.parquet); index, collisions and summary go beside it.")],
    verbs: Annotated[Optional[str], typer.Option(help="verb-noun: verb space, a source name or a labels .parquet.")] = None,
    nouns: Annotated[Optional[str], typer.Option(help="verb-noun: noun space, a source name or a labels .parquet.")] = None,
    pair_counts: Annotated[Optional[Path], typer.Option(help="verb-noun: hashtag,count table (CSV/Parquet) from your corpus.")] = None,
    min_count: Annotated[int, typer.Option(help="verb-noun: keep pairs whose hashtags total at least this count.")] = 1,
    labels_file: Annotated[Optional[Path], typer.Option(help="file: one label per line, or a CSV.")] = None,
    column: Annotated[Optional[str], typer.Option(help="file: the CSV column holding labels.")] = None,
    nltk_data: Annotated[Optional[str], typer.Option(help="verbnet: NLTK data folder (else NLTK_DATA).")] = None,
    verbnet_version: Annotated[str, typer.Option(help="verbnet: 2.1 or 3.3.")] = "3.3",
    max_words: Annotated[int, typer.Option(help="Permute the words of labels with at most this many content words.")] = 3,
    collisions: Annotated[str, typer.Option(help="keep-all, drop or first.")] = "keep-all",
    pos: Annotated[Optional[str], typer.Option(help="file: the labels are verbs or nouns (default: inferred per word).")] = None,
) -> None:
    """Build a label space with its relevant hashtags (labels, hashtag_index, collisions)."""
    from weaksup.labels.build import BuildLabelsConfig, build_labels as build

    cfg = BuildLabelsConfig(
        sources=tuple(source), out=out, verbs=verbs, nouns=nouns, pair_counts=pair_counts, min_count=min_count,
        labels_file=labels_file, column=column, nltk_data=nltk_data, verbnet_version=verbnet_version,
        max_words=max_words, collisions=collisions, pos=pos,  # type: ignore[arg-type]
    )
    result = run(build, cfg)
    print_summary(f"build-labels -> {result.labels_path}", result.summary)


def label_overlap(
    source: Annotated[Path, typer.Argument(help="Pre-training labels table (A).")],
    target: Annotated[Path, typer.Argument(help="Target labels table (B).")],
    out: Annotated[Optional[Path], typer.Option(help="Write the per-label overlap table here.")] = None,
    show: Annotated[int, typer.Option(help="Print this many unreached target labels.")] = 10,
) -> None:
    """How many labels of B are reached by A's hashtags (exactly or via shared hashtags)."""
    from weaksup.labels.overlap import label_overlap as overlap

    table, summary = run(overlap, source, target, out)
    print_summary("label-overlap", summary)
    missed = [r["target_label"] for r in table.to_pylist() if not r["reached"]][:show]
    if missed:
        console.print("not reached: " + ", ".join(missed), markup=False)


def register(app: typer.Typer) -> None:
    app.command("build-labels")(build_labels)
    app.command("label-overlap")(label_overlap)
