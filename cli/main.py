"""The `weaksup` command."""

from __future__ import annotations

import typer

from weaksup import __version__
from weaksup.cli import (
    audit,
    card,
    counts,
    dedupe,
    evaluate,
    fetch,
    fingerprint,
    labels,
    match,
    models,
    pretrain,
    probe,
    quickstart,
    sample,
    shard,
    splits,
    synth_corpus,
    tables,
)
from weaksup.cli.common import WeaksupGroup

app = typer.Typer(
    name="weaksup",
    help="Build weakly-supervised video pre-training datasets from hashtags, and pre-train on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=WeaksupGroup,
    # plain help: rich markup would eat "[ray]" in pip install "weaksup[ray]", and flags would show "<bool>"
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"weaksup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """weaksup: IG-65M-style weakly-supervised video datasets."""


for module in (
    quickstart,
    synth_corpus,
    fetch,
    labels,
    match,
    counts,
    audit,
    sample,
    probe,
    splits,
    shard,
    fingerprint,
    dedupe,
    card,
    pretrain,
    evaluate,
    models,
    tables,
):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
