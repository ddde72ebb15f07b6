"""The pretrain command: weakly-supervised pre-training on a manifest (paper Sec. 3.3, A.3).

A preset gives every setting (``--preset paper-8f``, ``paper-32f`` or ``tiny``); each
option below overrides one of them, and ``--show-config`` prints the result as JSON. The
same command runs on one CPU, one GPU or, under torchrun, many:

    weaksup pretrain --manifest sample.parquet --out runs/r34 --preset paper-8f
    weaksup pretrain --manifest s3://bucket/shards --out runs/r34 --preset paper-8f   # from `weaksup shard`
    torchrun --nproc_per_node 8 -m weaksup.cli.main pretrain --manifest sample.parquet --out runs/r34

Rerunning a command continues from its newest checkpoint (``--no-resume`` starts over); a
rerun that changes a setting of the run itself (the schedule, its length, the clips, the
updates) is refused unless ``--allow-changed-config``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from weaksup.cli.common import (
    MaxRejectFractionOption,
    ProgressOption,
    err_console,
    one_line_warnings,
    print_summary,
    run,
    run_locked,
)
from weaksup.errors import InputError
from weaksup.train.config import FIELD_HELP as H
from weaksup.train.config import PRESETS, TrainConfig
from weaksup.train.config import preset as get_preset
from weaksup.uris import as_uri


def pretrain(
    manifest: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "Table to train on: manifest, clips or sample (.parquet), or a shard folder from `weaksup shard` "
                "(local or an fsspec URL such as s3://bucket/shards)."
            )
        ),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Run folder: config.json, log.csv, checkpoints/, rejects, summary.json.")
    ] = None,
    preset: Annotated[
        str, typer.Option(help=f"Named settings the options below override: {', '.join(PRESETS)}.")
    ] = "paper-8f",
    labels: Annotated[
        Optional[Path],
        typer.Option(help="Labels table: the classifier gets one output per label (else max label_id + 1)."),
    ] = None,
    show_config: Annotated[
        bool, typer.Option("--show-config", help="Print the resolved config as JSON and exit.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help=(
                "Continue from what an earlier run of the same input and settings left in OUT (--no-resume: start "
                "from step 0, deleting OUT's old checkpoints)."
            ),
        ),
    ] = True,
    allow_changed_config: Annotated[
        bool,
        typer.Option(
            "--allow-changed-config",
            help="Resume even when a setting that changes the run (schedule, length, clips, updates) differs from the "
            "checkpoint's: one warning instead of an error.",
        ),
    ] = False,
    progress: ProgressOption = True,
    max_reject_fraction: MaxRejectFractionOption = 0.5,
    arch: Annotated[Optional[str], typer.Option(help=H["arch"])] = None,
    frames: Annotated[Optional[int], typer.Option(help=H["frames"])] = None,
    stride: Annotated[Optional[int], typer.Option(help=H["stride"])] = None,
    crop: Annotated[Optional[int], typer.Option(help=H["crop"])] = None,
    short_side: Annotated[Optional[int], typer.Option(help=H["short_side"])] = None,
    hflip: Annotated[Optional[bool], typer.Option("--hflip/--no-hflip", help=H["hflip"])] = None,
    lr_decay: Annotated[Optional[float], typer.Option(help=H["lr_decay"])] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=H["batch_size"])] = None,
    accumulate: Annotated[Optional[int], typer.Option(help=H["accumulate"])] = None,
    epochs: Annotated[Optional[int], typer.Option(help=H["epochs"])] = None,
    max_steps: Annotated[Optional[int], typer.Option(help=H["max_steps"])] = None,
    max_clips: Annotated[Optional[str], typer.Option(help=H["max_clips"] + " Accepts 4.9e8.")] = None,
    base_lr: Annotated[Optional[float], typer.Option(help=H["base_lr"])] = None,
    reference_batch: Annotated[Optional[int], typer.Option(help=H["reference_batch"])] = None,
    momentum: Annotated[Optional[float], typer.Option(help=H["momentum"])] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=H["weight_decay"])] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help=H["warmup_steps"])] = None,
    warmup_fraction: Annotated[Optional[float], typer.Option(help=H["warmup_fraction"])] = None,
    lr_halvings: Annotated[Optional[int], typer.Option(help=H["lr_halvings"])] = None,
    loss: Annotated[Optional[str], typer.Option(help=H["loss"])] = None,
    precision: Annotated[Optional[str], typer.Option(help=H["precision"])] = None,
    channels_last: Annotated[
        Optional[bool], typer.Option("--channels-last/--no-channels-last", help=H["channels_last"])
    ] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help=H["compile"])] = None,
    workers: Annotated[Optional[int], typer.Option(help=H["workers"])] = None,
    threads: Annotated[Optional[int], typer.Option(help=H["threads"])] = None,
    seed: Annotated[Optional[int], typer.Option(help=H["seed"])] = None,
    log_every: Annotated[Optional[int], typer.Option(help=H["log_every"])] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help=H["checkpoint_every"])] = None,
    keep_checkpoints: Annotated[Optional[int], typer.Option(help=H["keep_checkpoints"])] = None,
    device: Annotated[Optional[str], typer.Option(help=H["device"])] = None,
    use_sample_weights: Annotated[
        Optional[bool], typer.Option("--use-sample-weights/--no-use-sample-weights", help=H["use_sample_weights"])
    ] = None,
) -> None:
    """Pre-train a video model with SGD, linear LR scaling + warm-up and 13 equal-step halvings
    (resumable, DDP under torchrun)."""
    overrides = {k: v for k, v in locals().items() if k in TrainConfig.__dataclass_fields__}

    def resolve() -> TrainConfig:
        # the run length the user names wins over the preset's: TrainConfig.override's rule
        if overrides.get("max_clips") is not None:
            text = overrides["max_clips"]
            try:
                value = float(text)
            except ValueError:
                raise InputError(f"--max-clips: not a number: {text!r}") from None
            if not value.is_integer():
                raise InputError(f"--max-clips: not a whole number: {text!r}")
            overrides["max_clips"] = int(value)
        return get_preset(preset).override(**overrides)

    cfg = run(resolve)
    if show_config:
        typer.echo(cfg.to_json())
        return

    from weaksup.train.loop import TrainingStopped
    from weaksup.train.loop import pretrain as run_pretrain

    def job() -> dict[str, Any]:
        if manifest is None or out is None:
            raise InputError("--manifest and --out are required (or --show-config)")
        return run_pretrain(
            cfg,
            manifest=as_uri(manifest),
            out=out,
            resume=resume,
            labels=labels,
            progress=progress,
            allow_changed_config=allow_changed_config,
            max_reject_fraction=max_reject_fraction,
        )

    with one_line_warnings():
        try:
            # one lock per run folder: rank 0's (torchrun's other ranks write into the same folder)
            summary = run_locked(out, job) if int(os.environ.get("RANK", "0")) == 0 else run(job)
        except TrainingStopped as exc:  # diverged, or too many clips failed to decode
            err_console.print(f"weaksup: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    if int(os.environ.get("RANK", "0")) == 0:
        shown = {k: v for k, v in summary.items() if k not in ("weights_sha256", "ranks_weights_sha256")}
        print_summary(f"pretrain {cfg.arch} -> {out}", shown)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
