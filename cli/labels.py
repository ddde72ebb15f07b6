"""Label-space commands: build-labels, label-overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import OLD_POSITIONALS, check_option, console, deprecated_option, print_summary, run


def build_labels(
    source: Annotated[
        list[str],
        typer.Option(
            "--source", "-s", help="kinetics400, imagenet, verbnet, kinetics-verbs, verb-noun or file; repeat to merge."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Output labels table (.parquet); index, collisions and summary go beside it.")
    ],
    verbs: Annotated[
        Optional[str], typer.Option(help="verb-noun: verb space, a source name or a labels .parquet.")
    ] = None,
    nouns: Annotated[
        Optional[str], typer.Option(help="verb-noun: noun space, a source name or a labels .parquet.")
    ] = None,
    hashtag_counts: Annotated[
        Optional[Path],
        typer.Option(
            "--hashtag-counts",
            "--pair-counts",
            help=(
                "hashtag,count table of your corpus (`weaksup hashtag-counts`, or CSV/Parquet): verb-noun pairs come "
                "from it, --min-tag-count prunes by it."
            ),
        ),
    ] = None,
    min_count: Annotated[int, typer.Option(help="verb-noun: keep pairs whose hashtags total at least this count.")] = 1,
    labels_file: Annotated[Optional[Path], typer.Option(help="file: one label per line, or a CSV.")] = None,
    column: Annotated[Optional[str], typer.Option(help="file: the CSV column holding labels.")] = None,
    nltk_data: Annotated[Optional[str], typer.Option(help="verbnet: NLTK data folder (else NLTK_DATA).")] = None,
    verbnet_version: Annotated[str, typer.Option(help="verbnet: 2.1 or 3.3.")] = "3.3",
    max_words: Annotated[
        int,
        typer.Option(
            help=(
                "Move the verb (practical) or permute every word (paper) only in labels of at most this many content "
                "words."
            )
        ),
    ] = 3,
    collisions: Annotated[str, typer.Option(help="keep-all, drop or first.")] = "keep-all",
    pos: Annotated[
        Optional[str], typer.Option(help="file: the labels are verbs or nouns (default: inferred per word).")
    ] = None,
    forms: Annotated[
        str,
        typer.Option(
            help=(
                "Word orders: practical (those people write: catchingfish, fishcatching) or paper (every order, the "
                "paper's rule)."
            )
        ),
    ] = "practical",
    max_tags: Annotated[
        int,
        typer.Option(
            help=(
                "At most this many tags a label, those closest to the label as written (0: no cap); dropped ones go "
                "to the pruned_tags table."
            )
        ),
    ] = 64,
    min_tag_count: Annotated[
        int, typer.Option(help="Drop tags seen in fewer videos than this in --hashtag-counts (0: keep all).")
    ] = 0,
    drop_tags: Annotated[
        Optional[Path],
        typer.Option(help="Text file, one hashtag a line, that no label may have (e.g. found bad by label-audit)."),
    ] = None,
    aliases: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "CSV of extra aliases / literal hashtags per label: columns label and alias and/or hashtag, any "
                "language."
            )
        ),
    ] = None,
    max_pairs: Annotated[
        int, typer.Option(help="verb-noun without --hashtag-counts: refuse products larger than this.")
    ] = 1_000_000,
) -> None:
    """Build a label space with its relevant hashtags (labels, hashtag_index, collisions)."""
    from weaksup.labels.build import BuildLabelsConfig
    from weaksup.labels.build import build_labels as build

    cfg = BuildLabelsConfig(
        sources=tuple(source),
        out=out,
        verbs=verbs,
        nouns=nouns,
        hashtag_counts=hashtag_counts,
        min_count=min_count,
        labels_file=labels_file,
        column=column,
        nltk_data=nltk_data,
        verbnet_version=verbnet_version,
        max_words=max_words,
        collisions=collisions,
        pos=pos,
        forms=forms,
        max_tags=max_tags,  # type: ignore[arg-type]
        min_tag_count=min_tag_count,
        drop_tags=drop_tags,
        aliases=aliases,
        max_pairs=max_pairs,
    )
    result = run(build, cfg)
    print_summary(f"build-labels -> {result.labels_path}", result.summary)


def label_overlap(
    labels: Annotated[Optional[Path], typer.Option(help="Pre-training labels table (A) (required).")] = None,
    target_labels: Annotated[Optional[Path], typer.Option(help="Target labels table (B) (required).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the per-label overlap table here.")] = None,
    show: Annotated[int, typer.Option(help="Print this many unreached target labels.")] = 10,
    ctx: typer.Context = None,  # type: ignore[assignment]
) -> None:
    """How many labels of B are reached by A's hashtags (exactly or via shared hashtags)."""
    from weaksup.labels.overlap import label_overlap as overlap

    old_positionals = [Path(a) for a in ctx.args] if ctx is not None else []
    if old_positionals:
        deprecated_option("label-overlap A B", "label-overlap --labels A --target-labels B")
        check_option(
            len(old_positionals) == 2 and labels is None and target_labels is None,
            "label-overlap takes --labels A --target-labels B",
        )
        labels, target_labels = old_positionals
    check_option(
        labels is not None and target_labels is not None, "--labels and --target-labels are required (labels tables)"
    )

    table, summary = run(overlap, labels, target_labels, out)
    print_summary("label-overlap", summary)
    missed = [r["target_label"] for r in table.to_pylist() if not r["reached"]][:show]
    if missed:
        console.print("not reached: " + ", ".join(missed), markup=False)


def register(app: typer.Typer) -> None:
    app.command("build-labels")(build_labels)
    app.command("label-overlap", context_settings=OLD_POSITIONALS)(label_overlap)
