"""Pre-training configuration: one frozen dataclass, named presets, and the LR schedule.

The paper (Sec. 3.3, supp. A.3) trains with synchronous SGD on 128 GPUs, 16 clips per GPU
at 8 frames (6 at 32 frames), weight decay 1e-4, an initial LR of 0.192 set by the linear
scaling rule with warm-up (Goyal et al. 2017), and halves the LR at equal steps, 13 times
over training; about 490M clips are processed per run.

Decisions where the paper is silent (weaksup's, documented here and in ``--help``):

* **Reference batch.** 0.192 is the LR of the paper's 8-frame setup, 16 clips x 128 GPUs =
  2048 clips per step. The linear scaling rule then gives
  ``lr = base_lr * total_batch / reference_batch`` with ``total_batch = batch_size *
  accumulate * world_size``; the 32-frame setup (6 clips/GPU, 768 per step) gets 0.072.
* **Warm-up.** Linear from ``peak / warmup_steps`` to the peak over the first
  ``warmup_steps`` updates (default 5% of training, which ends before the first halving
  at 1/14 of training).
* **Halvings.** 13 halvings at equal steps means 14 equal segments: the LR is halved at
  ``round(k * total_steps / 14)`` for k = 1..13, so the last segment runs at peak / 2^13.
  Warm-up and halvings multiply, so a warm-up longer than a segment is still well defined.
* **Length.** ``max_steps`` wins over ``max_clips`` (the paper's 490M clips, independent
  of the number of GPUs), which wins over ``epochs``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from weaksup.errors import InputError

LOSSES = ("softmax", "bce")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

# 16 clips/GPU x 128 GPUs: the batch the paper's initial LR of 0.192 belongs to
PAPER_REFERENCE_BATCH = 2048
PAPER_BASE_LR = 0.192
PAPER_CLIPS_SEEN = 490_000_000


# What a change of each field does to a run resumed from a checkpoint (see _run and _free
# below); pretrain refuses a resume that changes a "run" field unless told to continue.
SCHEDULE = "the LR schedule and the run's length"
CLIPS = "the clips the network is trained on"
UPDATES = "the weight updates"


def _run(default: Any, changes: str, help: str) -> Any:
    """A field that changes the trained weights or the schedule: a resume must keep it.
    ``help`` is its one line in ``weaksup pretrain --help`` and ``eval finetune --help``."""
    return field(default=default, metadata={"run": True, "changes": changes, "help": help})


def _free(default: Any, why: str, help: str) -> Any:
    """A field that may change on resume: speed, logging or placement, not what is trained."""
    return field(default=default, metadata={"run": False, "why": why, "help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a pre-training run; the defaults are the paper's 8-frame setup.

    Each field's metadata says whether it belongs to the run (``run=True``: it changes the
    trained weights or the LR schedule, so a resumed run must keep it; ``changes`` names
    what it changes) or may change on resume (``run=False``: speed, logging, placement;
    ``why`` says so), and ``help`` is its line of CLI help. :data:`RUN_FIELDS` and
    :data:`FIELD_HELP` are derived from them; nothing else lists the fields.
    """

    arch: str = _run(
        "r2plus1d_34", "the network", help="Model architecture (r2plus1d_10/18/34/50/101/152, r3d_18, r2d_18)."
    )
    frames: int = _run(8, CLIPS, help="Frames per clip (the paper: 8 or 32).")
    stride: int = _run(1, CLIPS, help="Temporal stride between sampled frames.")
    crop: int = _run(112, CLIPS, help="Random square crop size in pixels (the paper: 112).")
    short_side: int = _run(
        128, CLIPS, help="Frames are resized so their short side is this many pixels before cropping (the paper: 128)."
    )
    hflip: bool = _run(
        True, CLIPS, help="Random horizontal flips in training (off for direction classes such as left vs right)."
    )
    batch_size: int = _run(
        16,
        SCHEDULE,  # the total batch scales the LR and sets the steps per epoch
        help="Clips per process per micro-batch (the paper: 16 at 8 frames, 6 at 32).",
    )
    accumulate: int = _run(1, SCHEDULE, help="Micro-batches per optimizer step (gradient accumulation).")
    epochs: int = _run(
        1, SCHEDULE, help="Passes over the table (replaces the preset's --max-clips/--max-steps when given alone)."
    )
    max_steps: int = _run(0, SCHEDULE, help="Optimizer steps in all (0 = from --max-clips or --epochs).")
    max_clips: int = _run(
        PAPER_CLIPS_SEEN,
        SCHEDULE,
        help=(
            "Clips to process in all, over every process (the paper: 490M; 0 = from --epochs; replaces the preset's "
            "--max-steps when given)."
        ),
    )
    base_lr: float = _run(
        PAPER_BASE_LR,
        SCHEDULE,
        help="LR at the reference batch; scaled linearly by total batch / reference batch (the paper: 0.192).",
    )
    reference_batch: int = _run(
        PAPER_REFERENCE_BATCH,
        SCHEDULE,
        help="Total batch (clips per optimizer step) that --base-lr belongs to (the paper: 16 x 128 GPUs = 2048).",
    )
    momentum: float = _run(0.9, UPDATES, help="SGD momentum.")
    weight_decay: float = _run(1e-4, UPDATES, help="SGD weight decay (the paper: 1e-4).")
    warmup_steps: int = _run(0, SCHEDULE, help="Linear warm-up steps (0 = --warmup-fraction of training).")
    warmup_fraction: float = _run(
        0.05, SCHEDULE, help="Warm-up length as a fraction of training, when --warmup-steps is 0."
    )
    lr_halvings: int = _run(
        13,
        SCHEDULE,
        help="Times the LR is decayed (by --lr-decay), at equally spaced steps over training (the paper: 13 halvings).",
    )
    lr_decay: float = _run(
        0.5, SCHEDULE, help="Factor of each LR decay step (the paper: 0.5 in pre-training, 0.1 in fine-tuning)."
    )
    backbone_lr_scale: float = _run(
        1.0,
        UPDATES,
        help="LR of every layer but the classifier, as a fraction of the LR (fine-tuning; 1 = one LR for all).",
    )
    loss: Literal["softmax", "bce"] = _run(
        "softmax",
        UPDATES,
        help="softmax (cross-entropy on the single label, the paper) or bce (per-label sigmoid on matched_label_ids).",
    )
    # bf16/fp16 autocast computes every step at another precision (fp16 also scales the loss)
    precision: Literal["fp32", "bf16", "fp16"] = _run(
        "bf16", UPDATES, help="fp32, bf16 (autocast; CPU or CUDA) or fp16 (autocast + gradient scaling; CUDA only)."
    )
    channels_last: bool = _free(
        True,
        "a memory layout: the same arithmetic up to kernel rounding, like threads",
        help="Use the channels_last_3d memory format (faster convolutions on recent GPUs).",
    )
    compile: bool = _free(False, "the same model, compiled or not", help="torch.compile the model.")
    workers: int = _free(
        8,
        "loader processes: every clip depends on (seed, epoch, index) only",
        help="Data loader worker processes per training process (0 = load in the training process).",
    )
    threads: int = _free(
        0,
        "CPU threads: the same arithmetic up to summation order",
        help=(
            "CPU threads for torch's ops per training process (0 = adapt: try all of this process's share of "
            "the cores and fewer, keep the faster, re-check as the machine's load changes; a fixed N gives "
            "bit-identical reruns, which a changing count does not)."
        ),
    )
    seed: int = _run(
        0,
        CLIPS + " (their order and augmentation)",
        help="Seed of model init, data order and augmentation; the same seed gives the same run.",
    )
    log_every: int = _free(50, "logging only", help="Write a log row (CSV, TensorBoard) every N steps.")
    checkpoint_every: int = _free(
        2000, "checkpointing only", help="Save a checkpoint every N steps (and always at the end)."
    )
    keep_checkpoints: int = _free(3, "checkpointing only", help="Keep the last K checkpoints.")
    device: Literal["auto", "cpu", "cuda"] = _free(
        "auto",
        "placement: the same run on another device, up to rounding",
        help="auto (CUDA when available), cpu or cuda.",
    )
    use_sample_weights: bool = _run(
        False, CLIPS, help="Draw clips with replacement by the sample table's sample_weight (square-root sampling)."
    )

    def __post_init__(self) -> None:
        for name in (
            "frames",
            "stride",
            "crop",
            "short_side",
            "batch_size",
            "accumulate",
            "epochs",
            "reference_batch",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            if int(getattr(self, name)) < 1:
                raise InputError(f"config: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "max_clips", "warmup_steps", "lr_halvings", "workers", "threads"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"config: {name} must be 0 or more, got {getattr(self, name)}")
        if not self.base_lr > 0 or not math.isfinite(self.base_lr):
            raise InputError(f"config: base_lr must be a positive number, got {self.base_lr}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise InputError(f"config: lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0.0 <= self.backbone_lr_scale <= 1.0:
            raise InputError(f"config: backbone_lr_scale must be in [0, 1], got {self.backbone_lr_scale}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise InputError(f"config: warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.crop > self.short_side:
            raise InputError(f"config: crop {self.crop} is larger than short_side {self.short_side}")
        for name, allowed in (("loss", LOSSES), ("precision", PRECISIONS), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise InputError(f"config: unknown {name} {getattr(self, name)!r}; known: {', '.join(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config (from config.json or a checkpoint); unknown keys are bad input."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def override(self, **changes: Any) -> TrainConfig:
        """A copy with the given fields changed; ``None`` values mean "keep" (unset CLI options).

        The run length named here replaces the preset's (max_steps > max_clips > epochs):
        ``max_clips`` or ``epochs`` without ``max_steps`` clears max_steps, and ``epochs``
        alone clears max_clips too. The CLI and the Python API share this one rule.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"config: unknown field(s) {', '.join(unknown)}")
        if "max_steps" not in changes and ("max_clips" in changes or "epochs" in changes):
            changes["max_steps"] = 0
            changes.setdefault("max_clips", 0)
        return replace(self, **changes)

    def total_batch(self, world_size: int) -> int:
        """Clips per optimizer step over every process: what the linear scaling rule scales by."""
        return self.batch_size * self.accumulate * world_size

    def peak_lr(self, world_size: int) -> float:
        """The linear scaling rule (Goyal et al. 2017): LR proportional to the total batch."""
        return self.base_lr * self.total_batch(world_size) / self.reference_batch

    def total_steps(self, world_size: int, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run: max_steps, else max_clips, else epochs."""
        if self.max_steps:
            return self.max_steps
        if self.max_clips:
            return max(1, math.ceil(self.max_clips / self.total_batch(world_size)))
        return self.epochs * steps_per_epoch

    def schedule(self, world_size: int, total_steps: int) -> LRSchedule:
        warmup = self.warmup_steps or round(self.warmup_fraction * total_steps)
        return LRSchedule(
            peak=self.peak_lr(world_size),
            total_steps=total_steps,
            warmup_steps=warmup,
            halvings=self.lr_halvings,
            decay=self.lr_decay,
        )


#: One line of help per field, from the fields' metadata: the CLI reuses it, so
#: ``weaksup pretrain --help`` and the dataclass never disagree.
FIELD_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in fields(TrainConfig)}

# the fields a resumed run must keep (pretrain compares them with the checkpoint's config)
RUN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainConfig) if f.metadata["run"])


def run_field_changes(name: str) -> str:
    """What changing run field ``name`` on resume changes ("the LR schedule ...")."""
    return TrainConfig.__dataclass_fields__[name].metadata["changes"]


@dataclass(frozen=True)
class LRSchedule:
    """Linear warm-up, then the LR multiplied by ``decay`` (halved by default) at ``halvings``
    equally spaced steps.

    A pure function of the step, so resuming needs nothing but the step count.
    """

    peak: float
    total_steps: int
    warmup_steps: int = 0
    halvings: int = 13
    decay: float = 0.5

    @property
    def boundaries(self) -> list[int]:
        """Steps from which the LR is halved once more: total_steps * k / (halvings + 1)."""
        n = self.halvings + 1
        return [round(k * self.total_steps / n) for k in range(1, n)]

    def lr(self, step: int) -> float:
        """LR of the update that takes the model from ``step`` to ``step + 1`` (steps count from 0)."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        halved = sum(1 for b in self.boundaries if step >= b)
        return self.peak * warm * self.decay**halved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, TrainConfig] = {
    # the paper's 8-frame pre-training: R(2+1)D-34, 16 clips/GPU, 490M clips; on 128 GPUs
    # total batch 2048, LR 0.192
    "paper-8f": TrainConfig(),
    # the paper's 32-frame model-capacity runs: 6 clips/GPU; on 128 GPUs total batch 768, LR 0.072
    "paper-32f": TrainConfig(frames=32, batch_size=6),
    # a CPU-sized run for tests and smoke checks: 4 frames of 32x32, 4 clips a step, fp32,
    # a larger LR (0.01 at batch 4, not 0.192 x 4 / 2048) and 3 halvings so that the loss
    # falls within a few dozen steps
    "tiny": TrainConfig(
        arch="r2plus1d_10",
        frames=4,
        crop=32,
        short_side=40,
        batch_size=4,
        max_steps=40,
        max_clips=0,
        base_lr=0.01,
        reference_batch=4,
        warmup_fraction=0.1,
        lr_halvings=3,
        precision="fp32",
        channels_last=False,
        workers=0,
        log_every=5,
        checkpoint_every=20,
        keep_checkpoints=2,
    ),
}


# Fine-tuning recipes (paper supp. A.4): a new classifier on a pre-trained backbone, weight
# decay 1e-4, LR decayed by 0.1 at equally spaced steps, linear scaling + warm-up.
FINETUNE_PRESETS: dict[str, TrainConfig] = {
    # Kinetics, R(2+1)D-34, 8 frames, 16 clips/GPU, 58 epochs, LR 3e-4 per GPU (pre-trained on
    # <= 5M videos; 3e-5 from >= 10M), warm-up 16 epochs then steps [16, 16]: here the two
    # 0.1 decays fall at equal thirds of training after a warm-up of 16/58. The paper uses
    # one LR for every layer (backbone_lr_scale 1).
    "finetune-paper": TrainConfig(
        epochs=58,
        max_clips=0,
        base_lr=3e-4,
        reference_batch=16,
        warmup_fraction=16 / 58,
        lr_halvings=2,
        lr_decay=0.1,
    ),
    # a CPU-sized fine-tune for tests and the quickstart: the tiny clips, the backbone at a
    # tenth of the head's LR so a few hundred steps adapt it without washing it out (a run
    # from scratch trains every layer at the full LR); bf16 + channels_last_3d is ~5x fp32 here
    "finetune-tiny": TrainConfig(
        arch="r2plus1d_10",
        frames=4,
        crop=32,
        short_side=40,
        batch_size=8,
        epochs=8,
        max_clips=0,
        base_lr=0.02,
        reference_batch=8,
        warmup_fraction=0.1,
        lr_halvings=2,
        lr_decay=0.1,
        backbone_lr_scale=0.1,
        precision="bf16",
        channels_last=True,
        workers=0,
        log_every=5,
        checkpoint_every=100,
        keep_checkpoints=1,
    ),
}


def finetune_preset(name: str) -> TrainConfig:
    """A named fine-tuning preset; unknown names raise InputError listing the known ones."""
    if name not in FINETUNE_PRESETS:
        raise InputError(f"unknown fine-tuning preset {name!r}; known: {', '.join(FINETUNE_PRESETS)}")
    return FINETUNE_PRESETS[name]


def preset(name: str) -> TrainConfig:
    """A named preset; unknown names raise InputError listing the known ones."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
