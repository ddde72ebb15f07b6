"""Evaluation commands: ``extract`` and ``eval fc-only`` / ``eval finetune`` (paper Sec. 4).

    weaksup extract --manifest target/train.parquet --checkpoint runs/pre --out feats/train.parquet
    weaksup extract --manifest target/test.parquet --checkpoint runs/pre --out feats/test.parquet
    weaksup eval fc-only --train feats/train.parquet --test feats/test.parquet --out reports/fc
    weaksup eval finetune --train-manifest target/train.parquet --test-manifest target/test.parquet \\
        --checkpoint runs/pre --out runs/ft --preset finetune-paper
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from weaksup.cli.common import (
    AllowEmptyOption,
    EngineOption,
    MaxRejectFractionOption,
    ProgressOption,
    RayAddressOption,
    console,
    err_console,
    nothing_done,
    one_line_warnings,
    print_summary,
    run_locked,
)
from weaksup.train.config import FIELD_HELP as H
from weaksup.train.config import FINETUNE_PRESETS

eval_app = typer.Typer(
    help="Evaluate a network on a target: fc-only logistic regression or full fine-tuning.", no_args_is_help=True
)


def extract(
    manifest: Annotated[Path, typer.Option(help="Manifest or clips table of the videos (.parquet).")],
    out: Annotated[Path, typer.Option(help="Output features table (.parquet); OUT.parts/ holds resumable parts.")],
    checkpoint: Annotated[
        Optional[Path],
        typer.Option(
            help="Pre-training run folder, checkpoint (.pt) or state dict (.pth/.safetensors, needs --arch); "
            "omit for a random init of --arch (the no-pre-training baseline)."
        ),
    ] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of a plain state dict or random init.")] = None,
    clips: Annotated[int, typer.Option(help="Clips per video, spread uniformly (the paper: 10).")] = 10,
    frames: Annotated[
        Optional[int], typer.Option(help="Frames per clip (default: the checkpoint's pre-training).")
    ] = None,
    stride: Annotated[Optional[int], typer.Option(help="Temporal stride (default: the checkpoint's).")] = None,
    crop: Annotated[Optional[int], typer.Option(help="Centre crop size (default: the checkpoint's, else 112).")] = None,
    short_side: Annotated[
        Optional[int], typer.Option(help="Short side frames are resized to (default: the checkpoint's, else 128).")
    ] = None,
    full_frame: Annotated[
        bool, typer.Option("--full-frame", help="Fully-convolutional testing: no crop, the whole resized frame.")
    ] = False,
    per_clip: Annotated[
        bool, typer.Option("--per-clip/--no-per-clip", help="Keep every clip's features too (clip-level metrics).")
    ] = True,
    scores: Annotated[bool, typer.Option("--scores", help="Also store the checkpoint classifier's scores.")] = False,
    batch_size: Annotated[int, typer.Option(help="Clips per forward pass.")] = 16,
    workers: Annotated[
        int, typer.Option(help="Decoding worker processes (with --engine ray: Ray actors, each decoding in-process).")
    ] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16 (CUDA).")] = "fp32",
    chunk_videos: Annotated[int, typer.Option(help="Videos per resumable part.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of a random init.")] = 0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help=(
                "Continue from what an earlier run of the same input and settings left in OUT (--no-resume: start "
                "over, deleting OUT.parts first)."
            ),
        ),
    ] = True,
    resume_strict: Annotated[
        bool,
        typer.Option(
            "--resume-strict",
            help="Stop (exit 2) when parts in OUT.parts do not match this job (rows, network weights "
            "or settings), instead of recomputing them with a warning.",
        ),
    ] = False,
    progress: ProgressOption = True,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    allow_empty: AllowEmptyOption = False,
) -> None:
    """Per-video features: K centre-crop clips per video through the frozen network, averaged."""
    from weaksup.eval.extract import ExtractConfig, extract_features

    def job() -> dict:
        cfg = ExtractConfig(
            num_clips=clips,
            frames=frames,
            stride=stride,
            crop=crop,
            short_side=short_side,
            full_frame=full_frame,
            per_clip=per_clip,
            scores=scores,
            batch_size=batch_size,
            workers=workers,
            device=device,
            precision=precision,
            chunk_videos=chunk_videos,
            arch=arch,
            seed=seed,
            progress=progress,
            engine=engine,
            ray_address=ray_address,
        )
        return extract_features(
            manifest, out, checkpoint=checkpoint, cfg=cfg, resume=resume, resume_strict=resume_strict
        )

    with one_line_warnings():
        summary = run_locked(out, job)
    print_summary(f"extract -> {out}", summary)
    from weaksup.bulk import nothing_done_message

    nothing_done(nothing_done_message(summary["videos"], summary["rejected"], "video"), allow_empty)


@eval_app.command("fc-only")
def fc_only(
    train: Annotated[Path, typer.Option(help="Features table of the target's training videos.")],
    test: Annotated[Path, typer.Option(help="Features table of the target's test videos.")],
    out: Annotated[Path, typer.Option(help="Report folder: metrics.json, per_class.csv, confusion.png.")],
    label_map: Annotated[
        Optional[Path],
        typer.Option(
            help=(
                "The target's class list (label_map.txt, classInd.txt, EPIC CSV, labels .parquet): rows map to it by "
                "name."
            )
        ),
    ] = None,
    multi_label: Annotated[
        bool, typer.Option("--multi-label", help="Per-class sigmoids on label_ids; report mAP.")
    ] = False,
    penalty: Annotated[
        Optional[list[float]], typer.Option(help="L2 penalty to try (repeat; default: a grid from 1e-6 to 1e-1).")
    ] = None,
    holdout: Annotated[
        float,
        typer.Option(
            help="Fraction of training videos held out to choose the penalty"
            " (when that is at least 50 videos and 5 per class on average)."
        ),
    ] = 0.1,
    folds: Annotated[
        int,
        typer.Option(
            help="Cross-validation folds that choose the penalty when the held-out part would be smaller than that."
        ),
    ] = 5,
    max_iter: Annotated[int, typer.Option(help="L-BFGS iterations at most per fit.")] = 500,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the held-out split or the folds.")] = 0,
) -> None:
    """fc-only: L2 logistic regression on frozen features, penalty chosen on 10% held out (5-fold CV on small
    training sets), video-level metrics."""
    from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only
    from weaksup.eval.report import report_table

    def job() -> dict:
        cfg = FcOnlyConfig(
            penalties=tuple(penalty) if penalty else None,
            holdout_fraction=holdout,
            folds=folds,
            multilabel=multi_label,
            label_map=label_map,
            max_iter=max_iter,
            device=device,
            seed=seed,
        )
        return eval_fc_only(train, test, out, cfg)

    from weaksup.train.loop import TrainingStopped

    with one_line_warnings():
        try:
            metrics = run_locked(out, job)
        except TrainingStopped as exc:  # diverged, or too many clips failed to decode: one line, exit 1
            err_console.print(f"weaksup: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    console.print(report_table(metrics))


@eval_app.command("finetune")
def finetune(
    train_manifest: Annotated[Path, typer.Option(help="Manifest or clips table of the target's training videos.")],
    test_manifest: Annotated[Path, typer.Option(help="Manifest or clips table of the target's test videos.")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log.csv, test features and the report.")],
    checkpoint: Annotated[
        Optional[Path],
        typer.Option(
            help="Pre-trained network (run folder, .pt, or state dict with --arch); omit to train --arch from scratch."
        ),
    ] = None,
    preset: Annotated[str, typer.Option(help=f"Fine-tuning recipe: {', '.join(FINETUNE_PRESETS)}.")] = "finetune-paper",
    label_map: Annotated[
        Optional[Path], typer.Option(help="The target's class list; both manifests are renumbered by name.")
    ] = None,
    clips: Annotated[int, typer.Option(help="Test clips per video (the paper: 10).")] = 10,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help=(
                "Continue from what an earlier run of the same input and settings left in OUT (--no-resume: start "
                "over)."
            ),
        ),
    ] = True,
    progress: ProgressOption = True,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of a state dict or a from-scratch run.")] = None,
    frames: Annotated[Optional[int], typer.Option(help=H["frames"])] = None,
    crop: Annotated[Optional[int], typer.Option(help=H["crop"])] = None,
    short_side: Annotated[Optional[int], typer.Option(help=H["short_side"])] = None,
    hflip: Annotated[Optional[bool], typer.Option("--hflip/--no-hflip", help=H["hflip"])] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=H["batch_size"])] = None,
    epochs: Annotated[Optional[int], typer.Option(help=H["epochs"])] = None,
    max_steps: Annotated[Optional[int], typer.Option(help=H["max_steps"])] = None,
    base_lr: Annotated[Optional[float], typer.Option(help=H["base_lr"])] = None,
    reference_batch: Annotated[Optional[int], typer.Option(help=H["reference_batch"])] = None,
    backbone_lr_scale: Annotated[Optional[float], typer.Option(help=H["backbone_lr_scale"])] = None,
    warmup_fraction: Annotated[Optional[float], typer.Option(help=H["warmup_fraction"])] = None,
    precision: Annotated[Optional[str], typer.Option(help=H["precision"])] = None,
    workers: Annotated[Optional[int], typer.Option(help=H["workers"])] = None,
    device: Annotated[Optional[str], typer.Option(help=H["device"])] = None,
    seed: Annotated[Optional[int], typer.Option(help=H["seed"])] = None,
    max_reject_fraction: MaxRejectFractionOption = 0.5,
) -> None:
    """Full fine-tuning from a checkpoint (new classifier, preset recipe), then the 10-clip video-level test."""
    from weaksup.eval.finetune import finetune as run_finetune
    from weaksup.eval.report import report_table
    from weaksup.train.config import finetune_preset

    names = (
        "arch",
        "frames",
        "crop",
        "short_side",
        "hflip",
        "batch_size",
        "epochs",
        "max_steps",
        "base_lr",
        "reference_batch",
        "backbone_lr_scale",
        "warmup_fraction",
        "precision",
        "workers",
        "device",
        "seed",
    )
    overrides = {k: v for k, v in locals().items() if k in names}

    def job() -> dict:
        cfg = finetune_preset(preset).override(**overrides)  # --epochs alone replaces the preset's length
        return run_finetune(
            cfg,
            train_manifest=train_manifest,
            test_manifest=test_manifest,
            checkpoint=checkpoint,
            out=out,
            label_map=label_map,
            num_clips=clips,
            resume=resume,
            progress=progress,
            max_reject_fraction=max_reject_fraction,
        )

    from weaksup.train.loop import TrainingStopped

    with one_line_warnings():
        try:
            metrics = run_locked(out, job)
        except TrainingStopped as exc:  # diverged, or too many clips failed to decode: one line, exit 1
            err_console.print(f"weaksup: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    console.print(report_table(metrics))


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.add_typer(eval_app, name="eval")
