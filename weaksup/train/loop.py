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
from dataclasses import dataclass, replace
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
from weaksup.errors import InputError
from weaksup.models import ARCHS, build_model
from weaksup.models.via2d import native_3d_convs
from weaksup.tables import write_json
from weaksup.outputs import require_local_output
from weaksup.train.checkpoint import capture_rng, checkpoint_name, load_latest, remove_checkpoints, restore_rng, save_checkpoint
from weaksup.threads import ThreadTuner, thread_budget
from weaksup.train.config import RUN_FIELDS, TrainConfig, run_field_changes
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
    fields = ", ".join(f"{k} {'(unused)' if a is None else a} -> {'(unused)' if b is None else b}" for k, a, b in changed)
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
        return (f"torchrun --max-restarts {max_restarts} with a shared rendezvous store: restarted workers will fail "
                "to connect (pytorch#135712); launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 and "
                "--rdzv-backend c10d (see docs/scaling.md)")
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
        raise InputError(f"{ckpt_dir}: the ranks resumed from different checkpoints ({found}); --out must be on "
                         "storage that every node sees (docs/scaling.md)")


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
                kept = [row for row in csv.DictReader(fh) if row.get("step", "").isdigit() and int(row["step"]) <= start_step]
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[clips_s]:>7.1f} clips/s"),
        TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), disable=not enabled,
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
        raise InputError(f"{data.path}: --use-sample-weights is not supported for shard folders (train from the "
                         "sample table instead)")
    if cfg.use_sample_weights and data.weights is None:
        raise InputError(f"{manifest}: --use-sample-weights needs a sample table with sample_weight on every row")
    if cfg.precision == "fp16" and not uses_cuda(cfg.device):
        raise InputError("precision fp16 needs CUDA; use bf16 on the CPU")
    if cfg.precision == "bf16" and not uses_cuda(cfg.device):
        with torch.device("meta"):
            full_3d = native_3d_convs(build_model(cfg.arch, num_classes=1))
        if full_3d:
            raise InputError(f"{cfg.arch} has {len(full_3d)} full 3D convolutions (e.g. {full_3d[0]}), whose bf16 "
                             "weight gradients are wrong on CPU in this torch's oneDNN; use --precision fp32")
    if not 0.0 <= max_reject_fraction <= 1.0:  # also refuses NaN
        raise InputError(f"max-reject-fraction must be in [0, 1], got {max_reject_fraction}")
    procs = setup_processes(cfg.device)
    try:
        return _train(cfg, data, procs, out=out, resume=resume, progress=progress, started=started, init=init,
                      init_source=init_source, allow_changed_config=allow_changed_config,
                      max_reject_fraction=max_reject_fraction)
    finally:
        if procs.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, data: TrainingTable | TrainingShards, procs: Processes, *, out: Path, resume: bool, progress: bool,
           started: float, init: Mapping[str, torch.Tensor] | None = None, init_source: str | None = None,
           allow_changed_config: bool = False,
           max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION) -> dict[str, Any]:
    """The run itself, inside the process group that :func:`pretrain` opened and closes."""
    device = procs.device
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # CPU threads: processes of one machine share its cores; a fixed count, or adapt to the load
    local_procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    tuner = ThreadTuner(max_threads=thread_budget(local_procs), fixed=cfg.threads, enabled=not cuda)

    # -- data: the clips, this process's shard of each epoch's order, whole steps only
    per_step = cfg.batch_size * cfg.accumulate  # clips per optimizer step, per process
    ckpt_dir = out / "checkpoints"
    if procs.main:
        out.mkdir(parents=True, exist_ok=True)
    clip_args = dict(num_frames=cfg.frames, stride=cfg.stride, train=True, crop=cfg.crop, short_side=cfg.short_side,
                     seed=cfg.seed, hflip=cfg.hflip,
                     rejects_path=out / f"rejects.rank{procs.rank}.jsonl" if procs.distributed else out / "rejects.jsonl")
    dataset: ClipDataset | ShardMemberDataset
    sampler: ResumableSampler
    if isinstance(data, TrainingShards):  # shard by shard: each process reads a contiguous run of shards
        dataset = ShardMemberDataset(data.index, **clip_args)
        sampler = ShardSampler(data.index.shard, seed=cfg.seed, rank=procs.rank, world_size=procs.world_size,
                               multiple_of=per_step)
    else:
        dataset = ClipDataset(data.table, **clip_args)
        sampler = ResumableSampler(
            data.rows, seed=cfg.seed, rank=procs.rank, world_size=procs.world_size,
            weights=data.weights if cfg.use_sample_weights else None, multiple_of=per_step,
        )
    steps_per_epoch = sampler.shard_length // per_step
    total_steps = cfg.total_steps(procs.world_size, steps_per_epoch)
    schedule = cfg.schedule(procs.world_size, total_steps)
    multi_hot = _multi_hot_lookup(data.table) if cfg.loss == "bce" and isinstance(data, TrainingTable) else None

    # -- model and optimizer (same seed on every process; DDP also broadcasts rank 0's weights)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    raw_model = build_model(cfg.arch, num_classes=data.num_classes).to(device)
    memory_format = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    raw_model = raw_model.to(memory_format=memory_format)
    if cfg.backbone_lr_scale == 1.0:
        groups: list[dict[str, Any]] = [{"params": list(raw_model.parameters()), "lr_scale": 1.0}]
    else:  # fine-tuning: the classifier at the full LR, everything else at a fraction of it
        head = [p for n, p in raw_model.named_parameters() if n.startswith("fc.")]
        body = [p for n, p in raw_model.named_parameters() if not n.startswith("fc.")]
        groups = [{"params": body, "lr_scale": cfg.backbone_lr_scale}, {"params": head, "lr_scale": 1.0}]
    optimizer = torch.optim.SGD(groups, lr=schedule.lr(0), momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)

    def autocast() -> contextlib.AbstractContextManager:
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    # -- resume from the newest readable checkpoint (or start over with --no-resume)
    step, resumed_from, last_loss, last_ckpt = 0, None, float("nan"), None
    if not resume and procs.main:
        remove_checkpoints(ckpt_dir)
    if procs.distributed:
        dist.barrier()  # nobody reads checkpoints rank 0 is deleting
    loaded = load_latest(ckpt_dir, arch=cfg.arch) if resume else None
    start_from_init = loaded is None and init is not None
    if loaded is not None:
        state, path = loaded
        changed = changed_run_fields(state["config"], cfg)
        if changed and not allow_changed_config:  # on every rank, before anything is loaded
            raise InputError(f"{path}: resuming with changed {_describe_changes(changed)}; rerun with the run's "
                             "settings, pass --allow-changed-config to continue anyway, or --no-resume to start over")
        try:
            raw_model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise InputError(f"{path}: checkpoint does not fit this model ({str(exc).splitlines()[0][:160]})") from None
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        sampler.load_state_dict(state["sampler"])
        rng = state["rng"]
        restore_rng(rng[procs.rank] if len(rng) == procs.world_size else rng[0])
        step, resumed_from, last_loss = int(state["step"]), int(state["step"]), float(state.get("loss", float("nan")))
        if changed and procs.main:
            warnings.warn(f"{path}: resuming with changed {_describe_changes(changed)}; the run will differ from "
                          "the uninterrupted one", RuntimeWarning, stacklevel=2)
        last_ckpt = path
        del state, loaded  # the model and optimizer hold their own copies now
    if start_from_init:
        body = {k: v for k, v in init.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = raw_model.load_state_dict(body, strict=False)
        except RuntimeError as exc:  # a shape mismatch
            raise InputError(f"{init_source or 'init'}: weights do not fit {cfg.arch} "
                             f"({str(exc).splitlines()[-1].strip()[:160]})") from None
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            bad = (unexpected or [k for k in missing if not k.startswith("fc.")])[0]
            raise InputError(f"{init_source or 'init'}: weights do not fit {cfg.arch} (first mismatch: {bad!r})")
    if procs.distributed:
        check_resumed_together(_gather(step, procs), ckpt_dir)
    if procs.main:
        write_json(cfg.to_dict(), out / "config.json")

    # -- wrap: compile, then DDP (the optimizer and checkpoints use raw_model's parameters)
    model: nn.Module = raw_model
    if cfg.compile:
        model = torch.compile(model)
    if procs.distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[procs.local_rank] if cuda else None)
    model.train()

    def micro_batches() -> Iterator[dict | None]:
        """Batches forever, epoch after epoch, from where the sampler stands (mid-epoch after a resume).

        None (or a short batch) where clips failed to decode; the dataset's epoch lives in
        shared memory, so the loader's persistent workers see each new one. The loader lives
        in this generator, so closing it shuts the workers down.
        """
        loader = make_loader(dataset, batch_size=cfg.batch_size, sampler=sampler, workers=cfg.workers, pin_memory=cuda)
        while True:
            if sampler.position >= sampler.shard_length:
                sampler.set_epoch(sampler.epoch + 1)
            dataset.set_epoch(sampler.epoch)
            yield from loader

    def targets(batch: dict) -> torch.Tensor:
        labels = torch.as_tensor(batch["label"], dtype=torch.long)
        if cfg.loss == "softmax":
            return labels
        hot = torch.zeros(len(labels), data.num_classes)
        hot[torch.arange(len(labels)), labels] = 1.0
        if multi_hot is not None:
            offsets, values = multi_hot
            for row, index in enumerate(torch.as_tensor(batch["index"]).tolist()):
                hot[row, values[offsets[index] : offsets[index + 1]]] = 1.0
        return hot

    def loss_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if cfg.loss == "softmax":  # the paper: softmax cross-entropy on the single label
            return F.cross_entropy(logits.float(), y)
        return F.binary_cross_entropy_with_logits(logits.float(), y, reduction="sum") / len(y)

    def checkpoint(loss: float) -> Path:
        """Rank 0 saves; every process contributes its RNG state and learns the path."""
        rngs = _gather(capture_rng(), procs)
        if not procs.main:
            return ckpt_dir / checkpoint_name(step)
        state = {
            "arch": cfg.arch, "step": step, "epoch": sampler.epoch, "loss": loss, "num_classes": data.num_classes,
            "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "sampler": sampler.state_dict(), "rng": rngs, "config": cfg.to_dict(), "schedule": schedule.to_dict(),
        }
        return save_checkpoint(ckpt_dir, state, step=step, keep=cfg.keep_checkpoints)

    # -- the loop: one optimizer step = `accumulate` micro-batches on every process
    log = RunLog(out, start_step=step, enabled=procs.main)
    batches = micro_batches()
    start_step = step
    run_clips = run_skipped = 0
    run_wait = 0.0
    window = {"loss": 0.0, "steps": 0, "clips": 0, "wait": 0.0, "t0": time.perf_counter()}
    run_t0 = time.perf_counter()
    first_loss: float | None = None
    try:
        with _progress(progress and procs.main) as bar:
            task = bar.add_task("pretrain", total=total_steps, completed=step, clips_s=0.0, loss=last_loss)
            while step < total_steps:
                step_t0 = time.perf_counter()
                lr = schedule.lr(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                stats = torch.zeros(3, device=device)  # loss sum, real clips, skipped clips
                for micro in range(cfg.accumulate):
                    t = time.perf_counter()
                    batch = next(batches)
                    window["wait"] += time.perf_counter() - t
                    sampler.advance(cfg.batch_size)
                    n = 0 if batch is None else len(batch["label"])
                    if n == 0:  # every clip failed: a zero-weight dummy keeps DDP's collectives in step
                        x = torch.zeros(1, 3, cfg.frames, cfg.crop, cfg.crop)
                        batch = {"label": torch.zeros(1, dtype=torch.long), "index": torch.zeros(1, dtype=torch.long)}
                    else:
                        x = batch["clip"]
                    x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                    y = targets(batch).to(device, non_blocking=True)
                    sync = micro == cfg.accumulate - 1
                    no_sync = model.no_sync() if procs.distributed and not sync else contextlib.nullcontext()
                    with no_sync:
                        with autocast():
                            logits = model(x)
                        loss = loss_of(logits, y) * (1.0 if n else 0.0)
                        scaler.scale(loss / cfg.accumulate).backward()
                    stats[0] += loss.detach()
                    stats[1] += n
                    stats[2] += cfg.batch_size - n
                if procs.distributed:
                    dist.all_reduce(stats)  # every process sees the same numbers, so all stop together
                step_loss = stats[0].item() / (cfg.accumulate * procs.world_size)
                # stats is the same on every process after the all-reduce, so all stop together
                step_clips, step_skipped = int(stats[1].item()), int(stats[2].item())
                seen, rejected = run_clips + run_skipped + step_clips + step_skipped, run_skipped + step_skipped
                stop = None
                if step_clips == 0:
                    stop = f"no clip of step {step + 1} could be decoded ({step_skipped} rejected)"
                elif seen >= REJECT_CHECK_AFTER and rejected > max_reject_fraction * seen:
                    stop = (f"{rejected} of {seen} clips were rejected at step {step + 1}, more than "
                            f"--max-reject-fraction {max_reject_fraction:g}")
                if stop is not None:
                    optimizer.zero_grad(set_to_none=True)
                    where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint was saved"
                    rejects = out / ("rejects.rank*.jsonl" if procs.distributed else "rejects.jsonl")
                    raise TooManyRejects(f"{stop}; training stopped, {where}; the reasons are in {rejects}")
                if not math.isfinite(step_loss):
                    optimizer.zero_grad(set_to_none=True)
                    where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint was saved yet"
                    raise TrainingDiverged(
                        f"loss is {step_loss} at step {step + 1} (epoch {sampler.epoch}, lr {lr:.3g}); "
                        f"training stopped, {where}"
                    )
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last_loss = step_loss
                clips, skipped = step_clips, step_skipped
                run_clips += clips
                run_skipped += skipped
                tuner.record(time.perf_counter() - step_t0, max(clips, 1))
                window["loss"] += step_loss
                window["steps"] += 1
                window["clips"] += clips
                first_loss = step_loss if first_loss is None else first_loss

                if step % cfg.log_every == 0 or step == total_steps:
                    elapsed = time.perf_counter() - window["t0"]
                    clips_s = window["clips"] / max(elapsed, 1e-9)
                    run_wait += window["wait"]
                    log.row({"step": step, "epoch": sampler.epoch, "loss": window["loss"] / window["steps"], "lr": lr,
                             "clips_per_s": clips_s, "data_wait_fraction": min(1.0, window["wait"] / max(elapsed, 1e-9))})
                    bar.update(task, clips_s=clips_s)
                    window = {"loss": 0.0, "steps": 0, "clips": 0, "wait": 0.0, "t0": time.perf_counter()}
                bar.update(task, completed=step, loss=step_loss)
                if step % cfg.checkpoint_every == 0 or step == total_steps:
                    last_ckpt = checkpoint(step_loss)
    finally:
        batches.close()  # shuts the loader's workers down
        tuner.restore()
        if isinstance(dataset, ShardMemberDataset):
            dataset.close()  # the shard this process had open (workers=0)
        log.close()

    # -- the end: every process must hold the same weights
    run_wait += window["wait"]
    run_s = time.perf_counter() - run_t0
    hashes = _gather(weights_sha256(raw_model), procs)
    summary = {
        "out": str(out),
        "table": f"{data.path} ({data.kind}, {data.rows} rows, {data.num_classes} classes)",
        "arch": cfg.arch,
        "init": init_source,
        "device": str(device),
        "world_size": procs.world_size,
        "total_batch": cfg.total_batch(procs.world_size),
        "peak_lr": schedule.peak,
        "steps": step,
        "total_steps": total_steps,
        "steps_this_run": step - start_step,
        "resumed_from_step": resumed_from,
        "epoch": sampler.epoch,
        "first_loss": first_loss if start_step == 0 else None,
        "final_loss": last_loss,
        "clips_per_s": run_clips / max(run_s, 1e-9),
        "data_wait_fraction": min(1.0, run_wait / max(run_s, 1e-9)) if step > start_step else None,
        "clips_skipped": run_skipped,
        "cpu_threads": tuner.summary() if not cuda else None,
        "rejected_videos": _rejected_videos(out) if procs.main else None,
        "rejects": str(out / ("rejects.rank*.jsonl" if procs.distributed else "rejects.jsonl")),
        "checkpoint": str(last_ckpt) if last_ckpt else None,
        "weights_sha256": hashes[0],
        "ranks_in_sync": len(set(hashes)) == 1,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    if procs.distributed:
        summary["ranks_weights_sha256"] = hashes
    if procs.main:
        write_json(summary, out / "summary.json")
    return summary
