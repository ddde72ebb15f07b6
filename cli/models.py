"""The convert-weights command: check a checkpoint against an architecture, write safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import print_summary, run


def convert_weights(
    src: Annotated[
        Path, typer.Option(help="Checkpoint to read: .pth/.pt (torch.save, possibly DDP-wrapped) or .safetensors.")
    ],
    dst: Annotated[Path, typer.Option(help="Output .safetensors file.")],
    arch: Annotated[str, typer.Option(help="Architecture the weights are for, e.g. r2plus1d_34, r2plus1d_18, r3d_18.")],
    num_classes: Annotated[
        Optional[int], typer.Option(help="Classes of the fc layer (default: read from the checkpoint's fc.weight).")
    ] = None,
) -> None:
    """Convert a checkpoint to safetensors after checking every key and shape against ARCH.

    A missing, truncated or foreign file, or one made for another architecture, is a
    one-line error (exit 2) naming the first problem.
    """
    from weaksup.models.weights import convert_weights as convert

    summary = run(convert, src, dst, arch, num_classes)
    print_summary(f"convert-weights -> {dst}", summary)


def register(app: typer.Typer) -> None:
    app.command("convert-weights")(convert_weights)
