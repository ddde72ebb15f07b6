"""Pre-training: :func:`pretrain` checks the input and joins the process group, and
``_train`` is the run itself, to be read top to bottom (data, model, resume, loop, summary).

The same command runs on one CPU, one GPU, eight GPUs or many nodes: launched by
``torchrun`` (``torchrun --nproc_per_node 8 -m weaksup.train ...``, the pretrain command on
its own; ``-m weaksup.cli.main pretrain ...`` works too) it joins
the process group (NCCL on CUDA, Gloo on CPU) and wraps the model in DDP; launched plainly
it trains in this process. Batch norm statistics stay per process, as in the paper.

Resuming is the default: rerunning the same command continues from the newest readable
checkpoint in ``OUT/checkpoints`` in the middle of its epoch. Every source of randomness
is either saved (model, optimizer, scaler, sampler position, RNG states of every process)
or a pure function of saved numbers (the data order of ``(seed, epoch)``, each clip's
augmentation of ``(seed, epoch, index)``, the LR of the step), so on the CPU a resumed run
ends with exactly the weights of an uninterrupted one. A worker group that torchrun
restarts (``--max-restarts``) is such a rerun: it resumes from the newest checkpoint, which
must therefore live where every node sees it (docs/scaling.md).

Written into OUT: ``config.json``, ``log.csv`` (step, epoch, loss, lr, clips/s, data wait
fraction), ``tensorboard/`` when TensorBoard is installed, ``checkpoints/step_*.pt``,
``rejects.*`` (videos that failed to decode, from the dataset) and ``summary.json``.

The input is a table (manifest, clips or sample) or a shard folder written by ``weaksup
shard`` (a local folder or an fsspec URL with ``index.parquet``). Shards are read by index
(:class:`~weaksup.data.shards.ShardMemberDataset`) in the shard-aware order of
:class:`~weaksup.train.sampler.ShardSampler`: one contiguous run of shards per process, each
read front to back, with the same exact resume, equal steps per rank and rejects.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from weaksup.data.dataset import ClipDataset
from weaksup.data.loader import make_loader
from weaksup.data.rejects import read_rejects
from weaksup.data.shards import ShardMemberDataset
from weaksup.data.training_data import TrainingShards, TrainingTable, read_training_data
from weaksup.devices import uses_cuda
from weaksup.errors import REASON_LIMIT, InputError, first_line
from weaksup.models import ARCHS, build_model
from weaksup.models.via2d import native_3d_convs
from weaksup.outputs import require_local_output
from weaksup.tables import write_json
from weaksup.threads import ThreadTuner, thread_budget
from weaksup.train.checkpoint import (
    capture_rng,
    checkpoint_name,
    load_latest,
    remove_checkpoints,
    restore_rng,
    save_checkpoint,
)
from weaksup.train.config import RUN_FIELDS, LRSchedule, TrainConfig, run_field_changes
from weaksup.train.sampler import ResumableSampler, ShardSampler

LOG_COLUMNS = ("step", "epoch", "loss", "lr", "clips_per_s", "data_wait_fraction")


def _effective(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config's run fields (:data:`~weaksup.train.config.RUN_FIELDS`, from TrainConfig's field
    metadata; the others, such as workers, threads, logging or device, may change on resume)
    as they act: the run length comes from max_steps, else max_clips, else epochs, and
    warmup_fraction only counts without warmup_steps (unused ones are None)."""
    defaults = TrainConfig()
    run = {k: config.get(k, getattr(defaults, k)) for k in RUN_FIELDS}
    if run["max_steps"]:
        run["max_clips"] = run["epochs"] = None
    elif run["max_clips"]:
        run["epochs"] = None
    if run["warmup_steps"]:
        run["warmup_fraction"] = None
    return run


def changed_run_fields(saved: Mapping[str, Any], cfg: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(field, checkpoint's value, this run's value) for every run field a resume would change."""
    old, new = _effective(saved), _effective(cfg.to_dict())
    return [(k, old[k], new[k]) for k in RUN_FIELDS if old[k] != new[k]]


def _describe_changes(changed: list[tuple[str, Any, Any]]) -> str:
    fields = ", ".join(
        f"{k} {'(unused)' if a is None else a} -> {'(unused)' if b is None else b}" for k, a, b in changed
    )
    effects = []
    for k, _, _ in changed:
        if run_field_changes(k) not in effects:
            effects.append(run_field_changes(k))
    return f"{fields} (this changes {' and '.join(effects)} mid-run)"


class TrainingStopped(RuntimeError):
    """Training stopped mid-run (the CLI prints one line and exits 1); nothing is saved at the
    failing step, so earlier checkpoints stay the newest and no summary claims success."""


class TrainingDiverged(TrainingStopped):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


class TooManyRejects(TrainingStopped):
    """No clip of a step could be decoded, or rejected clips exceed the allowed fraction."""


DEFAULT_MAX_REJECT_FRACTION = 0.5
REJECT_CHECK_AFTER = 100  # items seen (clips + rejects, all processes) before the fraction is checked


# ----------------------------------------------------------------------------- input


def _multi_hot_lookup(table: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
    """CSR (offsets, values) of matched_label_ids, for BCE targets looked up by row index."""
    if "matched_label_ids" not in table.column_names:
        return None
    col = table.column("matched_label_ids").combine_chunks()
    offsets = col.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0], col.flatten().to_numpy().astype(np.int64)


# ----------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Processes:
    """Where this process sits: rank, world size, device; DDP when launched by torchrun."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    distributed: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def restart_hazard(environ: Mapping[str, str]) -> str | None:
    """Why torchrun's worker restarts would fail to reconnect here, or None.

    Since torch 2.4 the c10d rendezvous shares the agent's TCPStore with the workers
    (TORCHELASTIC_USE_AGENT_STORE=True) and keeps it across restarts, with no per-attempt
    key prefix: a restarted worker group reads the dead group's addresses from it and fails
    in Gloo/NCCL init (pytorch/pytorch#135712; still so in torch 2.14.1, where a restart
    failed in Gloo's connectFullMesh, one node or two). ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``
    in torchrun's environment gives every rendezvous round a fresh store, and restarts then
    resume (tests/test_multinode.py).
    """
    try:
        max_restarts = int(environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)
    except ValueError:
        return None
    if max_restarts > 0 and environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        return (
            f"torchrun --max-restarts {max_restarts} with a shared rendezvous store: restarted workers will fail "
            "to connect (pytorch#135712); launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 and "
            "--rdzv-backend c10d (see docs/scaling.md)"
        )
    return None


def setup_processes(device: str) -> Processes:
    """Pick the device and, under torchrun (RANK/WORLD_SIZE set), join the process group."""
    use_cuda = uses_cuda(device)
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", 0)) if launched else 0
    hazard = restart_hazard(os.environ) if launched else None
    if hazard and rank == 0:
        warnings.warn(hazard, RuntimeWarning, stacklevel=2)
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if launched else 0
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if launched else 1
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if launched and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Processes(rank, local_rank, world_size, dev, launched)


def check_resumed_together(steps: list[int], ckpt_dir: Path) -> None:
    """Stop (InputError, on every rank) unless every rank resumed from the same step.

    Only rank 0 writes checkpoints but every rank reads them: a checkpoint folder that only
    rank 0's node sees (a node-local --out, a stale NFS listing) would start the other
    nodes over at step 0 and leave the ranks out of step, hanging or silently wrong.
    """
    if len(set(steps)) > 1:
        found = ", ".join(f"rank {r}: step {s}" for r, s in enumerate(steps))
        raise InputError(
            f"{ckpt_dir}: the ranks resumed from different checkpoints ({found}); --out must be on "
            "storage that every node sees (docs/scaling.md)"
        )


def _gather(obj: Any, procs: Processes) -> list[Any]:
    """``obj`` of every process, in rank order (just ``[obj]`` without a process group)."""
    if not procs.distributed:
        return [obj]
    out: list[Any] = [None] * procs.world_size
    dist.all_gather_object(out, obj)
    return out


# ----------------------------------------------------------------------------- logging


def _rejected_videos(out: Path) -> int:
    """Distinct videos in this run folder's rejects logs (a video fails again every epoch)."""
    ids: set[str] = set()
    for path in sorted(out.glob("rejects*.jsonl")):
        ids.update(v for v in read_rejects(path).column("video_id").to_pylist() if v is not None)
    return len(ids)


def weights_sha256(model: nn.Module) -> str:
    """Hash of every parameter, bit for bit: equal hashes mean equal weights.

    Buffers are left out: BatchNorm running statistics are per process (as in the paper,
    whose BN statistics were per GPU), so DDP ranks legitimately differ there; checkpoints
    hold rank 0's.
    """
    h = hashlib.sha256()
    for name, tensor in model.named_parameters():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class RunLog:
    """log.csv (cut back to the resumed step, so a rerun never duplicates rows) + TensorBoard if importable."""

    def __init__(self, out: Path, *, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.path = out / "log.csv"
        kept: list[dict[str, str]] = []
        if start_step > 0 and self.path.exists():
            with open(self.path, newline="") as fh:
                kept = [
                    row
                    for row in csv.DictReader(fh)
                    if row.get("step", "").isdigit() and int(row["step"]) <= start_step
                ]
        self.fh = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=LOG_COLUMNS)
        self.writer.writeheader()
        self.writer.writerows({k: row.get(k, "") for k in LOG_COLUMNS} for row in kept)
        self.fh.flush()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is an optional extra
            return
        self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start_step or None)

    def row(self, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()})
        self.fh.flush()
        if self.tb is not None:
            for key in ("loss", "lr", "clips_per_s", "data_wait_fraction"):
                self.tb.add_scalar(f"train/{key}", values[key], values["step"])

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.tb is not None:
                self.tb.close()


def _progress(enabled: bool):
    """The run's bar: steps, and the clips/s (of the last log window) and loss fields the loop updates."""
    from weaksup.progress import job_progress

    return job_progress(
        enabled=enabled,
        desc="pretrain",
        unit="steps",
        rate=False,  # the loop's own clips/s (measured over the log window) says more than steps/s
        fields=("{task.fields[clips_s]:>7.1f} clips/s", "loss {task.fields[loss]:.4f}"),
    )


# ----------------------------------------------------------------------------- the run


def pretrain(
    cfg: TrainConfig,
    *,
    manifest: Path | str,
    out: Path,
    resume: bool = True,
    labels: Path | None = None,
    progress: bool = True,
    num_classes: int | None = None,
    init: Mapping[str, torch.Tensor] | None = None,
    init_source: str | None = None,
    allow_changed_config: bool = False,
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION,
) -> dict[str, Any]:
    """Pre-train ``cfg.arch`` on a manifest/clips/sample table or a shard folder (local or a URL);
    returns the run's summary.

    A resumed run must keep every field that changes the run (:data:`RUN_FIELDS`: the
    schedule, the clips, the updates): a change is bad input naming the fields and both
    values, unless ``allow_changed_config`` (then one warning, and the run continues with
    the new settings from the checkpoint's step).

    Fine-tuning is the same run started from ``init``: a state dict whose every entry but
    the classifier (``fc.*``) is loaded before step 0 (a resumed run loads its own
    checkpoint instead); ``num_classes`` sizes the new classifier (else from the table).

    Raises InputError for bad input, :class:`TrainingDiverged` when the loss stops being
    finite and :class:`TooManyRejects` when no clip of a step could be decoded or, once
    :data:`REJECT_CHECK_AFTER` items were drawn this run, more than ``max_reject_fraction``
    of them were rejected (nothing is saved at that step; the previous checkpoint stays the
    newest). ``max_reject_fraction`` is a guard, not part of the run: it is not in
    TrainConfig, so changing it never changes the run's identity or blocks a resume.
    """
    require_local_output(out)  # checkpoints are renamed and fsynced in place: a POSIX folder every node mounts
    out = Path(out)
    started = time.perf_counter()

    # -- input, checked before any process group or model exists
    if cfg.arch not in ARCHS:
        raise InputError(f"unknown architecture {cfg.arch!r}; known: {', '.join(ARCHS)}")
    data = read_training_data(manifest, labels=labels, loss=cfg.loss)
    if num_classes is not None:
        if data.num_classes > num_classes:
            raise InputError(f"{data.path}: label id {data.num_classes - 1} is outside the {num_classes} classes")
        data = replace(data, num_classes=num_classes)
    if cfg.use_sample_weights and isinstance(data, TrainingShards):
        raise InputError(
            f"{data.path}: --use-sample-weights is not supported for shard folders (train from the "
            "sample table instead)"
        )
    if cfg.use_sample_weights and data.weights is None:
        raise InputError(f"{manifest}: --use-sample-weights needs a sample table with sample_weight on every row")
    if cfg.precision == "fp16" and not uses_cuda(cfg.device):
        raise InputError("precision fp16 needs CUDA; use bf16 on the CPU")
    if cfg.precision == "bf16" and not uses_cuda(cfg.device):
        with torch.device("meta"):
            full_3d = native_3d_convs(build_model(cfg.arch, num_classes=1))
        if full_3d:
            raise InputError(
                f"{cfg.arch} has {len(full_3d)} full 3D convolutions (e.g. {full_3d[0]}), whose bf16 "
                "weight gradients are wrong on CPU in this torch's oneDNN; use --precision fp32"
            )
    if not 0.0 <= max_reject_fraction <= 1.0:  # also refuses NaN
        raise InputError(f"max-reject-fraction must be in [0, 1], got {max_reject_fraction}")
    procs = setup_processes(cfg.device)
    try:
        return _train(
            cfg,
            data,
            procs,
            out=out,
            resume=resume,
            progress=progress,
            started=started,
            init=init,
            init_source=init_source,
            allow_changed_config=allow_changed_config,
            max_reject_fraction=max_reject_fraction,
        )
    finally:
        if procs.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig,
    data: TrainingTable | TrainingShards,
    procs: Processes,
    *,
    out: Path,
    resume: bool,
    progress: bool,
    started: float,
    init: Mapping[str, torch.Tensor] | None = None,
    init_source: str | None = None,
    allow_changed_config: bool = False,
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION,
) -> dict[str, Any]:
    """The run itself, inside the process group that :func:`pretrain` opened and closes: the
    recipe, top to bottom (data, model, resume, the loop of steps with its logs and checkpoints,
    the summary); each stage is one helper below, in this order."""
    cuda = procs.device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ckpt_dir = out / "checkpoints"
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)

    clips = _build_clips(cfg, data, procs, out)
    net = _build_net(cfg, clips, procs.device)
    run = _resume_run(
        cfg,
        net,
        clips.sampler,
        procs,
        ckpt_dir,
        resume=resume,
        init=init,
        init_source=init_source,
        allow_changed_config=allow_changed_config,
    )
    if procs.main:
        write_json(cfg.to_dict(), out / "config.json")
    model = _wrap_model(net.model, cfg, procs)

    # -- the loop: one optimizer step = `accumulate` micro-batches on every process
    log = RunLog(out, start_step=run.step, enabled=procs.main)
    batches = _micro_batches(cfg, clips, pin_memory=cuda)
    window = LogWindow()
    # CPU threads: processes of one machine share its cores; a fixed count, or adapt to the
    # load. Set here, just before the loop's try, so a setup error leaves torch's count as it was.
    local_procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    tuner = ThreadTuner(max_threads=thread_budget(local_procs), fixed=cfg.threads, enabled=not cuda)
    run_t0 = time.perf_counter()
    try:
        with _progress(progress and procs.main) as bar:
            task = bar.add_task(
                "pretrain", total=clips.total_steps, completed=run.step, clips_s=0.0, loss=run.last_loss
            )
            while run.step < clips.total_steps:
                step_t0 = time.perf_counter()
                lr = clips.schedule.lr(run.step)
                _set_lr(net.optimizer, lr)
                stats = _forward_backward(cfg, procs, net, model, clips, batches, window)
                stop = _why_stop(
                    stats,
                    run,
                    epoch=clips.sampler.epoch,
                    lr=lr,
                    out=out,
                    procs=procs,
                    max_reject_fraction=max_reject_fraction,
                )
                if stop is not None:  # nothing is saved at this step: the last checkpoint stays the newest
                    net.optimizer.zero_grad(set_to_none=True)
                    raise stop
                net.scaler.step(net.optimizer)
                net.scaler.update()
                net.optimizer.zero_grad(set_to_none=True)
                run.add(stats)
                tuner.record(time.perf_counter() - step_t0, max(stats.clips, 1))
                window.add(stats)

                if run.step % cfg.log_every == 0 or run.step == clips.total_steps:
                    run.wait += window.wait
                    bar.update(task, clips_s=_log_window(log, window, step=run.step, epoch=clips.sampler.epoch, lr=lr))
                    window = LogWindow()
                bar.update(task, completed=run.step, loss=stats.loss)
                if run.step % cfg.checkpoint_every == 0 or run.step == clips.total_steps:
                    run.last_ckpt = _checkpoint(cfg, procs, net, clips, ckpt_dir, step=run.step, loss=stats.loss)
    finally:
        batches.close()  # shuts the loader's workers down
        tuner.restore()
        if isinstance(clips.dataset, ShardMemberDataset):
            clips.dataset.close()  # the shard this process had open (workers=0)
        log.close()
    run.wait += window.wait
    run_s = time.perf_counter() - run_t0
    return _finish(
        cfg, data, procs, clips, net, run, tuner, out=out, init_source=init_source, run_s=run_s, started=started
    )


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Clips:
    """What this process trains on and for how long: the clips, its share of each epoch's order
    (whole steps only), the run's length and LR schedule, and what the targets need."""

    dataset: ClipDataset | ShardMemberDataset
    sampler: ResumableSampler
    total_steps: int
    schedule: LRSchedule
    num_classes: int
    multi_hot: tuple[np.ndarray, np.ndarray] | None  # matched_label_ids for BCE targets, tables only


def _build_clips(cfg: TrainConfig, data: TrainingTable | TrainingShards, procs: Processes, out: Path) -> Clips:
    """The dataset and this process's sampler (shards read as contiguous runs per process), and
    the run's length in optimizer steps, which follows from the sampler's share of an epoch."""
    per_step = cfg.batch_size * cfg.accumulate  # clips per optimizer step, per process
    rejects_path = out / f"rejects.rank{procs.rank}.jsonl" if procs.distributed else out / "rejects.jsonl"
    clip_args = dict(
        num_frames=cfg.frames,
        stride=cfg.stride,
        train=True,
        crop=cfg.crop,
        short_side=cfg.short_side,
        seed=cfg.seed,
        hflip=cfg.hflip,
        rejects_path=rejects_path,
    )
    dataset: ClipDataset | ShardMemberDataset
    sampler: ResumableSampler
    if isinstance(data, TrainingShards):  # shard by shard: each process reads a contiguous run of shards
        dataset = ShardMemberDataset(data.index, **clip_args)
        sampler = ShardSampler(
            data.index.shard, seed=cfg.seed, rank=procs.rank, world_size=procs.world_size, multiple_of=per_step
        )
    else:
        dataset = ClipDataset(data.table, **clip_args)
        sampler = ResumableSampler(
            data.rows,
            seed=cfg.seed,
            rank=procs.rank,
            world_size=procs.world_size,
            weights=data.weights if cfg.use_sample_weights else None,
            multiple_of=per_step,
        )
    steps_per_epoch = sampler.shard_length // per_step
    total_steps = cfg.total_steps(procs.world_size, steps_per_epoch)
    schedule = cfg.schedule(procs.world_size, total_steps)
    multi_hot = _multi_hot_lookup(data.table) if cfg.loss == "bce" and isinstance(data, TrainingTable) else None
    return Clips(dataset, sampler, total_steps, schedule, data.num_classes, multi_hot)


def _micro_batches(cfg: TrainConfig, clips: Clips, *, pin_memory: bool) -> Iterator[dict | None]:
    """Batches forever, epoch after epoch, from where the sampler stands (mid-epoch after a resume).

    None (or a short batch) where clips failed to decode; the dataset's epoch lives in
    shared memory, so the loader's persistent workers see each new one. The loader lives
    in this generator (made at the first batch, so a finished run starts no workers), and
    closing the generator shuts the workers down.
    """
    dataset, sampler = clips.dataset, clips.sampler
    loader = make_loader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, workers=cfg.workers, pin_memory=pin_memory
    )
    while True:
        if sampler.position >= sampler.shard_length:
            sampler.set_epoch(sampler.epoch + 1)
        dataset.set_epoch(sampler.epoch)
        yield from loader


# ----------------------------------------------------------------------------- model and optimizer


@dataclass(frozen=True)
class Net:
    """The model as built (the optimizer, checkpoints and the weights hash use its parameters,
    not those of the compiled or DDP wrapper), its optimizer and loss scaler, and how its
    inputs are laid out and cast."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    memory_format: torch.memory_format
    autocast_dtype: torch.dtype | None  # None: fp32, no autocast


def _build_net(cfg: TrainConfig, clips: Clips, device: torch.device) -> Net:
    """Model, SGD and scaler; the same seed on every process (DDP also broadcasts rank 0's weights)."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, num_classes=clips.num_classes).to(device)
    memory_format = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if cfg.backbone_lr_scale == 1.0:
        groups: list[dict[str, Any]] = [{"params": list(model.parameters()), "lr_scale": 1.0}]
    else:  # fine-tuning: the classifier at the full LR, everything else at a fraction of it
        head = [p for n, p in model.named_parameters() if n.startswith("fc.")]
        body = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
        groups = [{"params": body, "lr_scale": cfg.backbone_lr_scale}, {"params": head, "lr_scale": 1.0}]
    optimizer = torch.optim.SGD(groups, lr=clips.schedule.lr(0), momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    return Net(model, optimizer, scaler, memory_format, autocast_dtype)


def _wrap_model(model: nn.Module, cfg: TrainConfig, procs: Processes) -> nn.Module:
    """Compile, then DDP, in training mode; the wrapper runs the steps, the raw model is what is saved."""
    if cfg.compile:
        model = torch.compile(model)
    if procs.distributed:
        device_ids = [procs.local_rank] if procs.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    model.train()
    return model


# ----------------------------------------------------------------------------- resume


@dataclass
class RunState:
    """Where the run stands, updated after every step: the checkpoint, the stop messages and
    the summary read it. ``step`` is the number of optimizer steps done, resumed ones included."""

    step: int
    resumed_from: int | None = None
    last_loss: float = float("nan")
    last_ckpt: Path | None = None
    start_step: int = field(init=False)
    first_loss: float | None = None  # the loss of this run's first step
    clips: int = 0  # decoded clips this run, every process
    skipped: int = 0  # rejected clips this run, every process
    wait: float = 0.0  # seconds this process waited for data

    def __post_init__(self) -> None:
        self.start_step = self.step

    def add(self, stats: StepStats) -> None:
        """One optimizer step done."""
        self.step += 1
        self.last_loss = stats.loss
        self.clips += stats.clips
        self.skipped += stats.skipped
        self.first_loss = stats.loss if self.first_loss is None else self.first_loss


def _resume_run(
    cfg: TrainConfig,
    net: Net,
    sampler: ResumableSampler,
    procs: Processes,
    ckpt_dir: Path,
    *,
    resume: bool,
    init: Mapping[str, torch.Tensor] | None,
    init_source: str | None,
    allow_changed_config: bool,
) -> RunState:
    """Where the run starts: the newest readable checkpoint (or none with ``resume=False``, which
    deletes them), else step 0 from ``init``'s weights or from scratch; every rank at the same step."""
    if not resume and procs.main:
        remove_checkpoints(ckpt_dir)
    if procs.distributed:
        dist.barrier()  # nobody reads checkpoints rank 0 is deleting
    loaded = load_latest(ckpt_dir, arch=cfg.arch) if resume else None
    if loaded is not None:
        run = _restore_checkpoint(*loaded, cfg, net, sampler, procs, allow_changed_config=allow_changed_config)
        del loaded  # the model and optimizer hold their own copies now
    else:
        run = RunState(step=0)
        if init is not None:
            _load_init(net.model, init, init_source=init_source, arch=cfg.arch)
    if procs.distributed:
        check_resumed_together(_gather(run.step, procs), ckpt_dir)
    return run


def _restore_checkpoint(
    state: dict[str, Any],
    path: Path,
    cfg: TrainConfig,
    net: Net,
    sampler: ResumableSampler,
    procs: Processes,
    *,
    allow_changed_config: bool,
) -> RunState:
    """Model, optimizer, scaler, sampler position and this process's RNG state from a checkpoint,
    after checking (on every rank, before anything is loaded) that the run fields are unchanged."""
    changed = changed_run_fields(state["config"], cfg)
    if changed and not allow_changed_config:  # on every rank, before anything is loaded
        raise InputError(
            f"{path}: resuming with changed {_describe_changes(changed)}; rerun with the run's "
            "settings, pass --allow-changed-config to continue anyway, or --no-resume to start over"
        )
    try:
        net.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(f"{path}: checkpoint does not fit this model ({first_line(exc)})") from None
    net.optimizer.load_state_dict(state["optimizer"])
    net.scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    rng = state["rng"]
    restore_rng(rng[procs.rank] if len(rng) == procs.world_size else rng[0])
    step, last_loss = int(state["step"]), float(state.get("loss", float("nan")))
    if changed and procs.main:
        # stacklevel 4: past _resume_run and _train, to pretrain (the frame it named before the split)
        warnings.warn(
            f"{path}: resuming with changed {_describe_changes(changed)}; the run will differ from "
            "the uninterrupted one",
            RuntimeWarning,
            stacklevel=4,
        )
    return RunState(step=step, resumed_from=step, last_loss=last_loss, last_ckpt=path)


def _load_init(model: nn.Module, init: Mapping[str, torch.Tensor], *, init_source: str | None, arch: str) -> None:
    """Fine-tuning: every weight of ``init`` but the classifier (``fc.*``), which stays new;
    anything else missing, unexpected or misshapen is bad input."""
    body = {k: v for k, v in init.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(body, strict=False)
    except RuntimeError as exc:  # a shape mismatch
        # the last line names the mismatch (the first is torch's "Error(s) in loading state_dict for ...")
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()[:REASON_LIMIT]
        raise InputError(f"{init_source or 'init'}: weights do not fit {arch} ({last})") from None
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        bad = (unexpected or [k for k in missing if not k.startswith("fc.")])[0]
        raise InputError(f"{init_source or 'init'}: weights do not fit {arch} (first mismatch: {bad!r})")


# ----------------------------------------------------------------------------- one step


@dataclass(frozen=True)
class StepStats:
    """One optimizer step's numbers, summed over every process, so all processes stop together."""

    loss: float  # mean over micro-batches and processes
    clips: int  # decoded clips
    skipped: int  # rejected clips


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The schedule's LR for this step, scaled per group (a fine-tuned backbone at a fraction)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _forward_backward(
    cfg: TrainConfig,
    procs: Processes,
    net: Net,
    model: nn.Module,
    clips: Clips,
    batches: Iterator[dict | None],
    window: LogWindow,
) -> StepStats:
    """``accumulate`` micro-batches' gradients (DDP syncs on the last one only), and their stats
    all-reduced; the time spent waiting for each batch goes into ``window``."""
    device = procs.device
    stats = torch.zeros(3, device=device)  # loss sum, real clips, skipped clips
    for micro in range(cfg.accumulate):
        t = time.perf_counter()
        batch = next(batches)
        window.wait += time.perf_counter() - t
        clips.sampler.advance(cfg.batch_size)
        n = 0 if batch is None else len(batch["label"])
        if n == 0:  # every clip failed: a zero-weight dummy keeps DDP's collectives in step
            x = torch.zeros(1, 3, cfg.frames, cfg.crop, cfg.crop)
            batch = {"label": torch.zeros(1, dtype=torch.long), "index": torch.zeros(1, dtype=torch.long)}
        else:
            x = batch["clip"]
        x = x.to(device, non_blocking=True).contiguous(memory_format=net.memory_format)
        y = _targets(batch, cfg.loss, clips).to(device, non_blocking=True)
        sync = micro == cfg.accumulate - 1
        no_sync = model.no_sync() if procs.distributed and not sync else contextlib.nullcontext()
        with no_sync:
            with _autocast(device, net.autocast_dtype):
                logits = model(x)
            loss = _loss_of(logits, y, cfg.loss) * (1.0 if n else 0.0)
            net.scaler.scale(loss / cfg.accumulate).backward()
        stats[0] += loss.detach()
        stats[1] += n
        stats[2] += cfg.batch_size - n
    if procs.distributed:
        dist.all_reduce(stats)  # every process sees the same numbers, so all stop together
    step_loss = stats[0].item() / (cfg.accumulate * procs.world_size)
    return StepStats(loss=step_loss, clips=int(stats[1].item()), skipped=int(stats[2].item()))


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass (bf16/fp16), or nothing for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _targets(batch: dict, loss: str, clips: Clips) -> torch.Tensor:
    """Class ids for softmax; multi-hot rows for BCE (the label, plus matched_label_ids when the table has them)."""
    labels = torch.as_tensor(batch["label"], dtype=torch.long)
    if loss == "softmax":
        return labels
    hot = torch.zeros(len(labels), clips.num_classes)
    hot[torch.arange(len(labels)), labels] = 1.0
    if clips.multi_hot is not None:
        offsets, values = clips.multi_hot
        for row, index in enumerate(torch.as_tensor(batch["index"]).tolist()):
            hot[row, values[offsets[index] : offsets[index + 1]]] = 1.0
    return hot


def _loss_of(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The batch's mean loss, computed in fp32 whatever the autocast dtype."""
    if loss == "softmax":  # the paper: softmax cross-entropy on the single label
        return F.cross_entropy(logits.float(), y)
    return F.binary_cross_entropy_with_logits(logits.float(), y, reduction="sum") / len(y)


def _rejects_glob(out: Path, procs: Processes) -> Path:
    """Where the rejects logs of every process are (one per rank under DDP)."""
    return out / ("rejects.rank*.jsonl" if procs.distributed else "rejects.jsonl")


def _why_stop(
    stats: StepStats, run: RunState, *, epoch: int, lr: float, out: Path, procs: Processes, max_reject_fraction: float
) -> TrainingStopped | None:
    """Why the run must stop before applying this step, or None: no clip decoded, too many
    rejected (checked once :data:`REJECT_CHECK_AFTER` items were drawn), or a non-finite loss."""
    seen, rejected = run.clips + run.skipped + stats.clips + stats.skipped, run.skipped + stats.skipped
    stop = None
    if stats.clips == 0:
        stop = f"no clip of step {run.step + 1} could be decoded ({stats.skipped} rejected)"
    elif seen >= REJECT_CHECK_AFTER and rejected > max_reject_fraction * seen:
        stop = (
            f"{rejected} of {seen} clips were rejected at step {run.step + 1}, more than "
            f"--max-reject-fraction {max_reject_fraction:g}"
        )
    if stop is not None:
        where = f"last good checkpoint: {run.last_ckpt}" if run.last_ckpt else "no checkpoint was saved"
        return TooManyRejects(f"{stop}; training stopped, {where}; the reasons are in {_rejects_glob(out, procs)}")
    if not math.isfinite(stats.loss):
        where = f"last good checkpoint: {run.last_ckpt}" if run.last_ckpt else "no checkpoint was saved yet"
        return TrainingDiverged(
            f"loss is {stats.loss} at step {run.step + 1} (epoch {epoch}, lr {lr:.3g}); training stopped, {where}"
        )
    return None


# ----------------------------------------------------------------------------- logs and checkpoints


@dataclass
class LogWindow:
    """Sums since the last log row, which reports their means: loss, clips/s, data wait."""

    loss: float = 0.0
    steps: int = 0
    clips: int = 0
    wait: float = 0.0  # seconds waiting for batches
    t0: float = field(default_factory=time.perf_counter)

    def add(self, stats: StepStats) -> None:
        self.loss += stats.loss
        self.steps += 1
        self.clips += stats.clips


def _log_window(log: RunLog, window: LogWindow, *, step: int, epoch: int, lr: float) -> float:
    """Writes the window's row of log.csv (and TensorBoard); returns its clips/s for the progress bar."""
    elapsed = time.perf_counter() - window.t0
    clips_s = window.clips / max(elapsed, 1e-9)
    log.row(
        {
            "step": step,
            "epoch": epoch,
            "loss": window.loss / window.steps,
            "lr": lr,
            "clips_per_s": clips_s,
            "data_wait_fraction": min(1.0, window.wait / max(elapsed, 1e-9)),
        }
    )
    return clips_s


def _checkpoint(
    cfg: TrainConfig, procs: Processes, net: Net, clips: Clips, ckpt_dir: Path, *, step: int, loss: float
) -> Path:
    """Rank 0 saves; every process contributes its RNG state and learns the path."""
    rngs = _gather(capture_rng(), procs)
    if not procs.main:
        return ckpt_dir / checkpoint_name(step)
    state = {
        "arch": cfg.arch,
        "step": step,
        "epoch": clips.sampler.epoch,
        "loss": loss,
        "num_classes": clips.num_classes,
        "model": net.model.state_dict(),
        "optimizer": net.optimizer.state_dict(),
        "scaler": net.scaler.state_dict(),
        "sampler": clips.sampler.state_dict(),
        "rng": rngs,
        "config": cfg.to_dict(),
        "schedule": clips.schedule.to_dict(),
    }
    return save_checkpoint(ckpt_dir, state, step=step, keep=cfg.keep_checkpoints)


# ----------------------------------------------------------------------------- the end


def _finish(
    cfg: TrainConfig,
    data: TrainingTable | TrainingShards,
    procs: Processes,
    clips: Clips,
    net: Net,
    run: RunState,
    tuner: ThreadTuner,
    *,
    out: Path,
    init_source: str | None,
    run_s: float,
    started: float,
) -> dict[str, Any]:
    """The run's summary (rank 0 writes summary.json); every process must hold the same weights,
    so their hashes are gathered and compared."""
    hashes = _gather(weights_sha256(net.model), procs)
    summary = {
        "out": str(out),
        "table": f"{data.path} ({data.kind}, {data.rows} rows, {data.num_classes} classes)",
        "arch": cfg.arch,
        "init": init_source,
        "device": str(procs.device),
        "world_size": procs.world_size,
        "total_batch": cfg.total_batch(procs.world_size),
        "peak_lr": clips.schedule.peak,
        "steps": run.step,
        "total_steps": clips.total_steps,
        "steps_this_run": run.step - run.start_step,
        "resumed_from_step": run.resumed_from,
        "epoch": clips.sampler.epoch,
        "first_loss": run.first_loss if run.start_step == 0 else None,
        "final_loss": run.last_loss,
        "clips_per_s": run.clips / max(run_s, 1e-9),
        "data_wait_fraction": min(1.0, run.wait / max(run_s, 1e-9)) if run.step > run.start_step else None,
        "clips_skipped": run.skipped,
        "cpu_threads": tuner.summary() if procs.device.type != "cuda" else None,
        "rejected_videos": _rejected_videos(out) if procs.main else None,
        "rejects": str(_rejects_glob(out, procs)),
        "checkpoint": str(run.last_ckpt) if run.last_ckpt else None,
        "weights_sha256": hashes[0],
        "ranks_in_sync": len(set(hashes)) == 1,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    if procs.distributed:
        summary["ranks_weights_sha256"] = hashes
    if procs.main:
        write_json(summary, out / "summary.json")
    return summary
