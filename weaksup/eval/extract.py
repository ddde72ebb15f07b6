"""``extract``: per-video features of a frozen network, the paper's test protocol (Sec. 4).

Each video gives K clips (default 10) spread uniformly over its window (the whole video
for a manifest, the clip window for a clips table), centre-cropped (or whole frames with
``full_frame``: fully-convolutional testing); the global-pooled features (the input of
fc) of the clips are averaged into one vector per video. The per-clip features and the
classifier's scores can be kept too, so evaluation can report clip-level and video-level
figures from the same run.

The job is resumable: videos go in chunks, each chunk's rows are written as an atomic
part under ``OUT.parts/``, a rerun skips the chunks done, and the final table (input
order, one row per input row) is streamed from the parts, one part at a time, into a
temporary renamed into place at the end. Each part carries a stamp
(:mod:`weaksup.bulk`): the settings that change its numbers (the protocol, a digest of the
network's weights, per-clip/scores columns, the chunk size) and a digest of its input rows
(every column read from the table), so a rerun with another checkpoint, another or edited
table, or other settings recomputes the parts that do not match (one warning), or stops
with ``resume_strict``. A video none of whose
clips decode becomes a ``status="rejected"`` row with the reason; a video some of whose
clips fail is averaged over the clips that decoded, and ``clips``/``error`` say so.

With ``engine="ray"`` the driver holds nothing per row: it plans the chunks from the
table's row count (its Parquet footer) and commits the final table. A pool of Ray Data
actors (each loads the network once) takes the chunks; for each, an actor reads the chunk's
rows (only the row groups they are in), computes the chunk's stamp, keeps the part already
stamped for it, or else extracts the chunk (its decode failures logged on its own node, their reasons put into the rows'
``error``) and writes the part into ``OUT.parts/`` itself, and sends back only counts. Parts
are interchangeable between the engines (same names, stamps and rows).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, default_collate

from weaksup.bulk import STAMP_KEY, StaleParts, make_stamp, parts_dir, read_stamp, row_digest, stale_reason
from weaksup.data.dataset import EvalClipDataset, load_video_table
from weaksup.data.loader import single_thread_worker
from weaksup.data.rejects import read_rejects
from weaksup.devices import uses_cuda
from weaksup.errors import InputError
from weaksup.eval.features import EXTRACT_META_KEY
from weaksup.eval.network import Network, load_network
from weaksup.outputs import atomic_output, require_local_output
from weaksup.ray_engine import check_engine
from weaksup.tables import RowGroupWriter, conform, load_schema, open_parquet, read_rows
from weaksup.threads import ThreadTuner


@dataclass(frozen=True)
class ExtractConfig:
    """How features are extracted. Clip settings left None come from the checkpoint's pre-training config."""

    num_clips: int = 10
    frames: int | None = None
    stride: int | None = None
    crop: int | None = None
    short_side: int | None = None
    full_frame: bool = False
    per_clip: bool = True
    scores: bool = False
    batch_size: int = 16
    workers: int = 2
    #: torch CPU threads of the network (0 = adapt to the load; see weaksup.threads)
    threads: int = 0
    device: str = "auto"
    precision: str = "fp32"
    chunk_videos: int = 256
    arch: str | None = None
    seed: int = 0
    progress: bool = True
    engine: str = "local"  # "ray": chunks go to Ray Data actors (workers = actors, each loading in-process)
    ray_address: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_clips", "batch_size", "chunk_videos"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"extract: {name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise InputError(f"extract: workers must be 0 or more, got {self.workers}")
        if self.threads < 0:
            raise InputError(f"extract: threads must be 0 or more, got {self.threads}")
        check_engine(self.engine, self.ray_address)
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise InputError(f"extract: unknown precision {self.precision!r}; known: fp32, bf16, fp16")


@dataclass(frozen=True)
class Protocol:
    """What the features mean; written into the table's metadata and every report."""

    checkpoint: str
    arch: str
    feature_dim: int
    num_classes: int
    loss: str
    num_clips: int
    frames: int
    stride: int
    crop: int | None  # None: full frame (fully convolutional)
    short_side: int
    precision: str
    input_table: str

    def key(self) -> str:
        """A short fingerprint of the protocol (the parts' stamps compare its fields one by one)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class _MarkedEvalClips(EvalClipDataset):
    """EvalClipDataset whose failed items are markers, so every index is accounted for in order."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        if item is None:
            video, k = divmod(int(index), self.num_clips)
            return {"index": int(index), "video_index": video, "clip_index": k, "clip": None}
        return item


def collate_by_shape(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack clips of equal shape (full frames of different aspect differ); keep failure markers apart."""
    failed = [it["index"] for it in items if it["clip"] is None]
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for it in items:
        if it["clip"] is not None:
            groups.setdefault(tuple(it["clip"].shape), []).append(it)
    return {
        "n": len(items),
        "failed": failed,
        "groups": [default_collate([{k: it[k] for k in ("clip", "index")} for it in g]) for g in groups.values()],
    }


_KEY_COLUMNS = ("video_id", "uri", "label_id")
_EXTRA_COLUMNS = ("label", "matched_label_ids", "duration_s", "clip_start_s", "clip_end_s")


def _row_columns(names: list[str]) -> list[str]:
    """The columns a chunk's rows are read with: its features rows and its stamp's digest come from them."""
    return [*_KEY_COLUMNS, *(c for c in _EXTRA_COLUMNS if c in names)]


def _load_protocol(manifest: Path, checkpoint: Path | None, cfg: ExtractConfig) -> tuple[Network, Protocol]:
    net = load_network(checkpoint, arch=cfg.arch, seed=cfg.seed)
    if cfg.scores and checkpoint is None:
        raise InputError("--scores needs a trained classifier: give --checkpoint")
    crop = None if cfg.full_frame else (cfg.crop or net.clip_setting("crop", 112))
    protocol = Protocol(
        checkpoint=net.source,
        arch=net.arch,
        feature_dim=net.feature_dim,
        num_classes=net.num_classes,
        loss=net.loss,
        num_clips=cfg.num_clips,
        frames=cfg.frames or net.clip_setting("frames", 8),
        stride=cfg.stride or net.clip_setting("stride", 1),
        crop=crop,
        short_side=cfg.short_side or net.clip_setting("short_side", 128),
        precision=cfg.precision,
        input_table=str(manifest),
    )
    if protocol.crop is not None and protocol.crop > protocol.short_side:
        raise InputError(f"extract: crop {protocol.crop} is larger than short_side {protocol.short_side}")
    return net, protocol


def _prepare(manifest: Path, checkpoint: Path | None, cfg: ExtractConfig) -> tuple[Network, Protocol, pa.Table]:
    """The network, the protocol and the table's rows, every value checked: the local engine's
    driver and each Ray actor (never the Ray driver, see :func:`_plan`)."""
    net, protocol = _load_protocol(manifest, checkpoint, cfg)
    load_video_table(manifest)  # checks the file, its columns and labels with one-line errors
    parquet = open_parquet(manifest)
    rows = parquet.read(columns=_row_columns(parquet.schema_arrow.names))
    if rows.num_rows == 0:
        raise InputError(f"{manifest}: the table has no rows")
    return net, protocol, rows


def _plan(manifest: Path, checkpoint: Path | None, cfg: ExtractConfig) -> tuple[Network, Protocol, int]:
    """The Ray driver's view of the job: the network, the protocol and the row count, from the
    table's footer alone. The columns a clip dataset needs are checked here (load_video_table's
    message); the values are checked by every actor, which reads the rows (its one-line
    InputError comes back to the driver)."""
    net, protocol = _load_protocol(manifest, checkpoint, cfg)
    parquet = open_parquet(manifest, "manifest or clips table")
    names = parquet.schema_arrow.names
    kind = "clips" if {"clip_start_s", "clip_end_s"} <= set(names) else "manifest"
    wanted = [*_KEY_COLUMNS]
    wanted += ["clip_start_s", "clip_end_s"] if kind == "clips" else (["duration_s"] if "duration_s" in names else [])
    missing = [c for c in wanted if c not in names]
    if missing:
        needs = ", ".join(wanted)
        raise InputError(f"{manifest}: missing column {missing[0]!r} (a {kind} table for a clip dataset needs {needs})")
    if parquet.metadata.num_rows == 0:
        raise InputError(f"{manifest}: the table has no rows")
    return net, protocol, parquet.metadata.num_rows


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


_PART = re.compile(r"^part-(\d+)\.parquet$")


def _part_name(parts: Path, chunk: int) -> Path:
    return parts / f"part-{chunk:06d}.parquet"


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of a network's state (names, dtypes, shapes and bytes): which weights made the features."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def _stamp_settings(net: Network, protocol: Protocol, cfg: ExtractConfig) -> dict[str, Any]:
    """What changes a part's rows: the protocol (not the paths: the weights and rows are
    compared by content), the weights, the optional columns and which videos a chunk holds."""
    settings = {k: v for k, v in asdict(protocol).items() if k not in ("checkpoint", "input_table")}
    return {
        **settings,
        "weights": weights_digest(net.model),
        "per_clip": cfg.per_clip,
        "scores": cfg.scores,
        "chunk_videos": cfg.chunk_videos,
    }


def _chunk_digest(rows: pa.Table, chunk: int, chunk_videos: int) -> str:
    lo = chunk * chunk_videos
    return _rows_digest(rows.slice(lo, min(rows.num_rows, lo + chunk_videos) - lo))


def _rows_digest(rows: pa.Table) -> str:
    """The digest of one chunk's rows in a part's stamp (whoever reads them: driver, actor, stream)."""
    return row_digest(rows.to_pylist())


def _judge_part(
    path: Path, settings: dict[str, Any], digest: str, *, remove_unreadable: bool = True
) -> tuple[bool, str | None]:
    """Whether a readable part is at ``path`` and, if so, why it does not belong to this job
    (None: it does). A part cut short by a kill is not a part: it is deleted (its chunk redone)."""
    if not path.exists():
        return False, None
    try:
        stamp = read_stamp((pq.read_schema(path).metadata or {}).get(STAMP_KEY))
    except Exception:  # noqa: BLE001 - cut short by a kill: redo it
        if remove_unreadable:
            path.unlink(missing_ok=True)
        return False, None
    return True, stale_reason(stamp, settings, digest)


def _done_chunks(
    parts: Path, n_chunks: int, stamps: dict[int, dict[str, Any]], settings: dict[str, Any], strict: bool
) -> set[int]:
    """Chunks whose part belongs to this job; stale parts are deleted after one warning (or stop, strict)."""
    done = set()
    stale = StaleParts(parts, "chunk")
    remove = []
    for c in range(n_chunks):
        p = _part_name(parts, c)
        seen, reason = _judge_part(p, settings, stamps[c]["rows"])
        if not seen:
            continue
        if stale.check(reason):
            done.add(c)
        else:
            remove.append(p)
    stale.report(strict)  # before anything is deleted
    for p in remove:
        p.unlink()
    return done


def _parts_folder(out: Path, resume: bool) -> Path:
    """The parts folder beside ``out`` (every node of a cluster sees it), emptied when not resuming."""
    parts = parts_dir(out)
    if parts.exists() and not resume:
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "protocol.json").unlink(missing_ok=True)  # an older weaksup's folder-wide stamp (its parts are unstamped)
    for tmp in parts.glob(".part-*.tmp-*"):  # writers killed mid-part (one job per output: the lock)
        tmp.unlink(missing_ok=True)
    return parts


def _open_parts(
    out: Path,
    net: Network,
    protocol: Protocol,
    rows: pa.Table,
    cfg: ExtractConfig,
    n_chunks: int,
    resume: bool,
    resume_strict: bool,
) -> tuple[Path, dict[int, dict[str, Any]], set[int]]:
    """The local engine's parts folder, every chunk's stamp, and the chunks already done."""
    parts = _parts_folder(out, resume)
    settings = _stamp_settings(net, protocol, cfg)
    stamps = {c: make_stamp(settings, _chunk_digest(rows, c, cfg.chunk_videos)) for c in range(n_chunks)}
    done = _done_chunks(parts, n_chunks, stamps, settings, resume_strict)
    return parts, stamps, done


def _part_chunks(parts: Path) -> list[int]:
    """The chunks that have a part in ``parts`` (by name; temporaries left out), in order."""
    found = (_PART.match(p.name) for p in parts.iterdir()) if parts.is_dir() else ()
    return sorted(int(m.group(1)) for m in found if m)


def _check_strict(manifest: Path, parts: Path, settings: dict[str, Any], n_chunks: int, chunk_videos: int) -> None:
    """``resume_strict`` with Ray, before any actor starts and anything changes: the driver
    judges every earlier part against its chunk's rows, read as the actors read them (only
    that chunk's row groups; nothing per row is kept)."""
    stale = StaleParts(parts, "chunk")
    columns = _row_columns(open_parquet(manifest).schema_arrow.names)
    for chunk in (c for c in _part_chunks(parts) if c < n_chunks):
        rows = read_rows(manifest, chunk * chunk_videos, chunk_videos, columns)
        seen, reason = _judge_part(_part_name(parts, chunk), settings, _rows_digest(rows), remove_unreadable=False)
        if seen:
            stale.check(reason)
    stale.report(True)


def _extract_todo(
    manifest: Path,
    net: Network,
    protocol: Protocol,
    rows: pa.Table,
    cfg: ExtractConfig,
    todo: list[int],
    n_clips: int,
    device: torch.device,
    parts: Path,
    stamps: dict[int, dict[str, Any]],
) -> tuple[int, int]:
    """Extract the chunks not done yet in this process under one progress bar; clips done and failed."""
    from weaksup.progress import job_progress

    with job_progress(enabled=cfg.progress, desc="extract", unit="clips") as bar:
        task = bar.add_task("extract", total=n_clips)

        def advance(n: int) -> None:
            """Move the bar on by ``n`` clips."""
            bar.update(task, advance=n)

        def write(chunk: int, data: dict[str, list]) -> None:
            _write_part(parts, chunk, data, stamps[chunk])

        return _extract_chunks(
            manifest,
            net,
            protocol,
            rows,
            cfg,
            todo,
            device,
            parts / "rejects.jsonl",
            cfg.workers,
            write,
            advance,
        )


def _extract_on_ray(
    manifest: Path,
    checkpoint: Path | None,
    cfg: ExtractConfig,
    parts: Path,
    settings: dict[str, Any],
    n_videos: int,
    n_chunks: int,
) -> tuple[int, int, int]:
    """Every chunk to the Ray actor pool. Each actor keeps a part already stamped for its chunk,
    else extracts the chunk and writes the part itself; only counts come back. Clips done, clips
    failed and chunks resumed; the stale parts the actors replaced are reported in one warning."""
    from weaksup.progress import job_progress
    from weaksup.ray_engine import ray_map

    k = cfg.num_clips
    clips_done = clips_failed = resumed = finished = 0
    stale = StaleParts(parts, "chunk")
    results = ray_map(
        [{"chunk": c} for c in range(n_chunks)],
        _RayChunkExtractor,
        batch_size=1,
        workers=max(1, cfg.workers),
        address=cfg.ray_address,
        constructor_kwargs={
            "manifest": str(manifest),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "cfg": cfg,
            "parts": str(parts),
            "settings": settings,
            "n_videos": n_videos,
        },
    )
    with job_progress(enabled=cfg.progress, desc="extract", unit="clips") as bar, contextlib.closing(results):
        task = bar.add_task("extract", total=n_videos * k)
        for block in results:
            for r in block.to_pylist():
                if r["error"]:
                    raise InputError(r["error"])
                videos = len(_chunk_clips(r["chunk"], n_videos, k, cfg.chunk_videos)) // k
                if r["rows"] != videos:  # never let a short part through
                    raise RuntimeError(f"extract: chunk {r['chunk']} has {r['rows']} of its {videos} rows")
                if r["seen"]:
                    stale.check(r["stale"])
                resumed += bool(r["reused"])
                clips_done += r["clips_done"] or 0
                clips_failed += r["clips_failed"] or 0
                finished += 1
                bar.update(task, advance=videos * k)
    if finished != n_chunks:
        raise RuntimeError(f"extract: {finished} of {n_chunks} chunks came back from the Ray actors")
    stale.report(False)
    return clips_done, clips_failed, resumed


def _assemble_features(
    parts: Path, n_chunks: int, n_videos: int, chunk_videos: int, out: Path, protocol: Protocol
) -> int:
    """Stream the parts, in chunk (= input) order, into the features table (the protocol in its
    metadata) through a RowGroupWriter on a temporary renamed into place when whole: a part
    or a row group in memory at a time. Remove the parts; return the rejected rows."""
    schema = load_schema("features")
    metadata = {EXTRACT_META_KEY: json.dumps(asdict(protocol)).encode()}
    rejected = 0
    with atomic_output(out) as tmp:
        writer = RowGroupWriter(tmp)
        try:
            for c in range(n_chunks):
                part = pq.read_table(_part_name(parts, c)).replace_schema_metadata(None)
                videos = min(n_videos, (c + 1) * chunk_videos) - c * chunk_videos
                if part.num_rows != videos:
                    raise RuntimeError(f"extract: part {c} holds {part.num_rows} rows, expected {videos}")
                table = conform(part, schema)
                writer.add(table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata}))
                rejected += sum(s != "ok" for s in part.column("status").to_pylist())
        finally:
            writer.close()
    shutil.rmtree(parts, ignore_errors=True)
    return rejected


def extract_features(
    manifest: Path,
    out: Path,
    *,
    checkpoint: Path | None,
    cfg: ExtractConfig = ExtractConfig(),
    resume: bool = True,
    resume_strict: bool = False,
) -> dict[str, Any]:
    """Extract K-clip averaged features of every row of ``manifest`` into ``out`` (features table).

    ``resume=False`` deletes an earlier run's parts first; with ``resume_strict`` a part of an
    earlier run that does not match this job (rows, weights or settings) stops the job
    (InputError) instead of being recomputed with a warning.

    With ``engine="ray"`` this process only plans and commits: it reads the table's footer
    (row count, columns), never its rows (except, with ``resume_strict``, a streamed check of
    the earlier parts, one chunk at a time), and the actors write the parts.
    """
    require_local_output(out)
    manifest, out = Path(manifest), Path(out)
    started = time.perf_counter()
    on_ray = cfg.engine == "ray"
    if on_ray:
        net, protocol, n_videos = _plan(manifest, checkpoint, cfg)
    else:
        net, protocol, rows = _prepare(manifest, checkpoint, cfg)
        n_videos = rows.num_rows
    device = torch.device("cuda" if uses_cuda(cfg.device) else "cpu")
    if cfg.precision == "fp16" and device.type != "cuda":
        raise InputError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    k = cfg.num_clips
    n_chunks = math.ceil(n_videos / cfg.chunk_videos)

    if on_ray:
        settings = _stamp_settings(net, protocol, cfg)
        del net  # the actors load their own
        parts = _parts_folder(out, resume)
        if resume_strict:
            _check_strict(manifest, parts, settings, n_chunks, cfg.chunk_videos)
        (parts / "rejects.jsonl").unlink(missing_ok=True)  # an older weaksup's log (the actors keep theirs per chunk)
        t_run = time.perf_counter()
        clips_done, clips_failed, resumed = _extract_on_ray(
            manifest, checkpoint, cfg, parts, settings, n_videos, n_chunks
        )
    else:
        parts, stamps, done = _open_parts(out, net, protocol, rows, cfg, n_chunks, resume, resume_strict)
        todo = [c for c in range(n_chunks) if c not in done]
        (parts / "rejects.jsonl").unlink(missing_ok=True)  # reasons are read only for the chunks done in this run
        n_clips = sum(len(_chunk_clips(c, n_videos, k, cfg.chunk_videos)) for c in todo)
        t_run = time.perf_counter()
        clips_done, clips_failed = _extract_todo(
            manifest, net, protocol, rows, cfg, todo, n_clips, device, parts, stamps
        )
        resumed = len(done)
    run_s = time.perf_counter() - t_run

    rejected = _assemble_features(parts, n_chunks, n_videos, cfg.chunk_videos, out, protocol)
    return {
        "out": str(out),
        "checkpoint": protocol.checkpoint,
        "arch": protocol.arch,
        "videos": n_videos,
        "ok": n_videos - rejected,
        "rejected": rejected,
        "chunks_resumed": resumed,
        "clips_this_run": clips_done,
        "clips_failed": clips_failed,
        "clips_per_s": clips_done / max(run_s, 1e-9),
        "feature_dim": protocol.feature_dim,
        "protocol": f"{k} clips x {protocol.frames} frames (stride {protocol.stride}), "
        + (f"centre crop {protocol.crop}" if protocol.crop else "full frame")
        + f" of short side {protocol.short_side}, {cfg.precision}",
        "device": str(device),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _chunk_clips(chunk: int, n_videos: int, k: int, chunk_videos: int) -> range:
    """Clip indices (video * k + clip) of one chunk."""
    return range(chunk * chunk_videos * k, min(n_videos, (chunk + 1) * chunk_videos) * k)


def _extract_chunks(
    manifest: Path | pa.Table,
    net: Network,
    protocol: Protocol,
    rows: pa.Table,
    cfg: ExtractConfig,
    chunks: list[int],
    device: torch.device,
    rejects_path: Path,
    workers: int,
    write: Any,
    advance: Any,
) -> tuple[int, int]:
    """Run the network over every clip of ``chunks`` of ``rows`` (the rows of ``manifest``, a
    file or a table); hand each finished chunk's rows to ``write``."""
    k = cfg.num_clips
    dataset = _MarkedEvalClips(
        manifest,
        num_clips=k,
        num_frames=protocol.frames,
        stride=protocol.stride,
        crop=protocol.crop,
        short_side=protocol.short_side,
        rejects_path=rejects_path,
    )
    order = [i for c in chunks for i in _chunk_clips(c, rows.num_rows, k, cfg.chunk_videos)]
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=order,
        num_workers=workers,
        collate_fn=collate_by_shape,
        pin_memory=device.type == "cuda",
        **({"worker_init_fn": single_thread_worker, "prefetch_factor": 4} if workers else {}),
    )
    # channels_last_3d: 2x faster inference on this CPU too (oneDNN), and on recent GPUs
    model = net.model.to(device).eval().to(memory_format=torch.channels_last_3d)
    sigmoid = net.loss == "bce"
    acc = _ChunkAccumulator(rows, k, cfg.chunk_videos, net.feature_dim, net.num_classes, cfg)
    clips_done = clips_failed = 0
    on_cpu = device.type == "cpu"
    # the decoding workers share the cores with the network: adapt its thread count to them
    tuner = ThreadTuner(probe_every=20, fixed=cfg.threads, enabled=on_cpu)
    with torch.inference_mode(), contextlib.closing(tuner):
        batch_t0 = time.perf_counter()
        for batch in loader:
            for index in batch["failed"]:
                acc.add(index, None, None)
            clips_failed += len(batch["failed"])
            for group in batch["groups"]:
                x = group["clip"].to(device, non_blocking=True)
                x = x.contiguous(memory_format=torch.channels_last_3d)
                with _autocast(device, cfg.precision):
                    feats = model.forward_features(x)
                    logits = model.fc(feats) if cfg.scores else None
                feats = feats.float().cpu().numpy()
                scores = None
                if logits is not None:
                    logits = logits.float()
                    scores = (torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=1)).cpu().numpy()
                for j, index in enumerate(group["index"].tolist()):
                    acc.add(index, feats[j], None if scores is None else scores[j])
                clips_done += len(feats)
            for chunk in acc.complete_chunks():
                reasons = read_rejects_by_video(rejects_path) if acc.failed_in(chunk) else {}
                write(chunk, acc.rows_of(chunk, reasons))
            advance(batch["n"])
            now = time.perf_counter()  # the whole batch, loader wait included: the throughput that counts
            tuner.record(now - batch_t0, max(1, batch["n"]))
            batch_t0 = now
    if acc.pending():  # cannot happen unless the loader lost items; never write a partial table silently
        raise RuntimeError(f"extract: {acc.pending()} chunk(s) incomplete after the loader finished")
    return clips_done, clips_failed


_COUNTS = pa.schema(
    [
        ("chunk", pa.int64()),
        ("rows", pa.int64()),  # rows in its part
        ("reused", pa.bool_()),  # its part was there, stamped for it
        ("seen", pa.bool_()),  # a readable part of an earlier run was there
        ("stale", pa.string()),  # why that part did not belong to this job (it was recomputed)
        ("clips_done", pa.int64()),
        ("clips_failed", pa.int64()),
        ("error", pa.string()),  # bad input: the driver stops with this one line
    ]
)


class _RayChunkExtractor:
    """A Ray Data actor: loads the network once; then, for each chunk, it reads the chunk's rows
    (only the row groups they are in), computes the chunk's stamp, keeps the part already
    stamped for it, or else extracts the chunk and writes its part into the shared parts folder
    itself (whole or absent). Only a row of counts (:data:`_COUNTS`) goes back to the driver."""

    def __init__(
        self, manifest: str, checkpoint: str | None, cfg: ExtractConfig, parts: str, settings: dict, n_videos: int
    ) -> None:
        torch.set_num_threads(1)  # one CPU per actor, as Ray scheduled it
        self.manifest, self.cfg, self.parts, self.settings = Path(manifest), cfg, Path(parts), settings
        self.error: str | None = None
        try:
            self.net, self.protocol = _load_protocol(self.manifest, Path(checkpoint) if checkpoint else None, cfg)
            parquet = open_parquet(self.manifest)  # the footer: each chunk reads its own rows
        except InputError as exc:
            self.error = str(exc)
            return
        self.columns = _row_columns(parquet.schema_arrow.names)
        # the driver planned with its own reading of the checkpoint and the table: they must not have changed since
        changed = stale_reason(make_stamp(settings, ""), _stamp_settings(self.net, self.protocol, cfg), "")
        if changed is None and parquet.metadata.num_rows != n_videos:
            changed = f"{n_videos} rows -> {parquet.metadata.num_rows}"
        if changed is not None:
            self.error = f"{manifest}: the table or the network changed while extract ran ({changed}); run it again"
        self.device = torch.device("cuda" if uses_cuda(cfg.device) else "cpu")

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist([self._chunk(c) for c in batch.column("chunk").to_pylist()], schema=_COUNTS)

    def _chunk(self, chunk: int) -> dict[str, Any]:
        import tempfile

        if self.error is not None:
            return {"chunk": chunk, "error": self.error}
        first = chunk * self.cfg.chunk_videos
        rows = read_rows(self.manifest, first, self.cfg.chunk_videos, self.columns)  # only this chunk's row groups
        try:  # its values checked with the local engine's messages, naming the rows
            load_video_table(rows, source=f"{self.manifest} (rows {first}..{first + rows.num_rows - 1})")
        except InputError as exc:
            return {"chunk": chunk, "error": str(exc)}
        digest = _rows_digest(rows)
        path = _part_name(self.parts, chunk)
        seen, reason = _judge_part(path, self.settings, digest)
        counts: dict[str, Any] = {"chunk": chunk, "seen": seen, "stale": reason, "reused": False}
        if seen and reason is None:
            return {**counts, "reused": True, "rows": pq.read_metadata(path).num_rows, "clips_done": 0}
        path.unlink(missing_ok=True)  # a stale part: recomputed (the driver warns once for all of them)
        stamp = make_stamp(self.settings, digest)
        written: list[int] = []

        def write(c: int, data: dict[str, list]) -> None:  # c: 0, the chunk's rows being a table of their own
            _write_part(self.parts, chunk, data, stamp)
            written.append(len(data["video_id"]))

        # this chunk's own rejects log, on this node: the reasons go into its rows' error column
        with tempfile.TemporaryDirectory() as tmp:
            done, failed = _extract_chunks(
                rows,
                self.net,
                self.protocol,
                rows,
                self.cfg,
                [0],
                self.device,
                Path(tmp) / "rejects.jsonl",
                0,
                write,
                lambda n: None,
            )
        return {**counts, "rows": sum(written), "clips_done": done, "clips_failed": failed}


def read_rejects_by_video(path: Path) -> dict[str, str]:
    """The first decode failure reason of each video in a rejects log."""
    if not path.exists():
        return {}
    table = read_rejects(path)
    reasons: dict[str, str] = {}
    for vid, reason in zip(table.column("video_id").to_pylist(), table.column("reason").to_pylist()):
        if vid is not None:
            reasons.setdefault(vid, reason)
    return reasons


def _write_part(parts: Path, chunk: int, data: dict[str, list], stamp: dict[str, Any]) -> None:
    """One chunk's rows as its stamped part, whole or absent: written to a temporary unique to
    this writer (process and node) beside it, then renamed over it."""
    table = conform(pa.table(data, schema=_part_schema()), load_schema("features"))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), STAMP_KEY: json.dumps(stamp).encode()})
    final = _part_name(parts, chunk)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _part_schema() -> pa.Schema:
    return pa.schema([(f.name, f.arrow_type) for f in load_schema("features").fields])


class _ChunkAccumulator:
    """Per-clip results gathered into per-video rows; hands back chunks once all their clips are in."""

    def __init__(self, rows: pa.Table, k: int, chunk_videos: int, dim: int, classes: int, cfg: ExtractConfig) -> None:
        self.rows, self.k, self.chunk_videos, self.cfg = rows, k, chunk_videos, cfg
        self.n_videos = rows.num_rows
        self.seen: dict[int, int] = {}  # chunk -> clips seen (decoded or failed)
        self.feats: dict[int, list] = {}  # video -> per-clip features (None where failed)
        self.scores: dict[int, list] = {}
        self.emitted: set[int] = set()
        self.failed_chunks: set[int] = set()  # chunks with a failed clip: only they need the rejects log read

    def _chunk_size(self, chunk: int) -> int:
        lo = chunk * self.chunk_videos
        return (min(self.n_videos, lo + self.chunk_videos) - lo) * self.k

    def add(self, index: int, feats: np.ndarray | None, scores: np.ndarray | None) -> None:
        video, clip = divmod(index, self.k)
        chunk = video // self.chunk_videos
        self.seen[chunk] = self.seen.get(chunk, 0) + 1
        if feats is None:
            self.failed_chunks.add(chunk)
        self.feats.setdefault(video, [None] * self.k)[clip] = feats
        if self.cfg.scores:
            self.scores.setdefault(video, [None] * self.k)[clip] = scores

    def complete_chunks(self) -> Iterator[int]:
        for chunk, seen in list(self.seen.items()):
            if seen == self._chunk_size(chunk) and chunk not in self.emitted:
                self.emitted.add(chunk)
                yield chunk

    def failed_in(self, chunk: int) -> bool:
        return chunk in self.failed_chunks

    def pending(self) -> int:
        return sum(1 for c in self.seen if c not in self.emitted)

    def rows_of(self, chunk: int, reasons: dict[str, str]) -> dict[str, list]:
        lo = chunk * self.chunk_videos
        hi = min(self.n_videos, lo + self.chunk_videos)
        part = self.rows.slice(lo, hi - lo)
        names = part.column_names
        out: dict[str, list] = {
            "video_id": part.column("video_id").to_pylist(),
            "uri": part.column("uri").to_pylist(),
            "label_id": part.column("label_id").to_pylist(),
            "label": part.column("label").to_pylist() if "label" in names else [None] * len(part),
            "label_ids": part.column("matched_label_ids").to_pylist()
            if "matched_label_ids" in names
            else [None] * len(part),
            "status": [],
            "error": [],
            "clips": [],
            "features": [],
            "clip_features": [],
            "scores": [],
            "clip_scores": [],
        }
        for offset, video in enumerate(range(lo, hi)):
            per_clip = self.feats.pop(video, [None] * self.k)
            ok = [i for i, f in enumerate(per_clip) if f is not None]
            reason = reasons.get(out["video_id"][offset])
            if not ok:
                out["status"].append("rejected")
                out["error"].append(reason or "no clip decoded")
                out["clips"].append(0)
                for col in ("features", "clip_features", "scores", "clip_scores"):
                    out[col].append(None)
                self.scores.pop(video, None)
                continue
            out["status"].append("ok")
            out["error"].append(None if len(ok) == self.k else f"{self.k - len(ok)} of {self.k} clips failed: {reason}")
            out["clips"].append(len(ok))
            stacked = np.stack([per_clip[i] for i in ok]).astype(np.float32)
            out["features"].append(stacked.mean(axis=0))
            out["clip_features"].append(list(stacked) if self.cfg.per_clip else None)
            if self.cfg.scores:
                clip_scores = np.stack([self.scores[video][i] for i in ok]).astype(np.float32)
                out["scores"].append(clip_scores.mean(axis=0))
                out["clip_scores"].append(list(clip_scores) if self.cfg.per_clip else None)
                del self.scores[video]
            else:
                out["scores"].append(None)
                out["clip_scores"].append(None)
        return out
