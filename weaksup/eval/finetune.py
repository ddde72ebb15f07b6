"""``eval finetune``: full fine-tuning on a target, then the 10-clip video-level test (paper Sec. 4, A.4).

A fine-tune is a ``pretrain`` run (same loop, resume, DDP and logs) that starts from the
checkpoint's backbone with a new classifier sized for the target, under a fine-tuning
preset (LR decayed by 0.1 at equal steps, warm-up, optionally a lower LR for the
backbone). The fine-tuned network then scores K centre-crop clips per test video; the
softmax scores are averaged per video and the report is written into the run folder.

Label numbering: the training manifest's label_ids are the classifier's outputs. With a
label map, both manifests are renumbered by name into it first (written into the run
folder), so a target's own label file decides the classes; without one, train and test
must agree on every (label_id, label) pair they share.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.errors import InputError
from weaksup.eval.extract import ExtractConfig, extract_features
from weaksup.eval.features import read_features
from weaksup.eval.label_maps import LabelMap, name_key, read_label_map
from weaksup.eval.network import load_network
from weaksup.eval.report import Predictions, network_name, write_report
from weaksup.outputs import require_local_output
from weaksup.tables import open_parquet, read_table, write_table
from weaksup.train.config import TrainConfig
from weaksup.train.loop import DEFAULT_MAX_REJECT_FRACTION, pretrain


def _renumber(path: Path, label_map: LabelMap, out: Path) -> Path:
    """``path`` (manifest or clips) with label_id replaced by the label map's index of its label name."""
    table = open_parquet(path, "manifest .parquet").read()
    if "label" not in table.column_names:
        raise InputError(f"{path}: has no label column, so it cannot be mapped by name to {label_map.source}")
    index = label_map.index()
    names = table.column("label").to_pylist()
    unknown = sorted({n for n in names if n is None or name_key(n) not in index}, key=str)
    if unknown:
        raise InputError(
            f"{path}: label {unknown[0]!r} is not in the label map {label_map.source} ({len(unknown)} unknown)"
        )
    ids = pa.array([index[name_key(n)] for n in names], pa.int32())
    table = table.set_column(table.column_names.index("label_id"), "label_id", ids)
    if "matched_label_ids" in table.column_names:
        table = table.drop_columns(["matched_label_ids"])  # the other numbering's ids
        table = table.append_column("matched_label_ids", pa.array([[i] for i in ids.to_pylist()], pa.list_(pa.int32())))
    kind = "clips" if "clip_start_s" in table.column_names else "manifest"
    write_table(kind, table, out)
    return out


def _check_same_numbering(train: Path, test: Path) -> None:
    pairs: dict[int, str] = {}
    for path in (train, test):
        parquet = open_parquet(path, "manifest .parquet")
        if "label" not in parquet.schema_arrow.names:
            return
        t = parquet.read(columns=["label_id", "label"])
        for i, name in zip(t.column("label_id").to_pylist(), t.column("label").to_pylist()):
            if name is not None and name_key(pairs.setdefault(i, name)) != name_key(name):
                raise InputError(
                    f"{path}: label_id {i} is {name!r} here but {pairs[i]!r} in {train}; "
                    "pass --label-map to renumber both by name"
                )


def _target_manifests(
    train_manifest: Path, test_manifest: Path, label_map: Path | None, out: Path
) -> tuple[Path, Path, LabelMap | None, int | None]:
    """Train and test manifests in one numbering (renumbered by the label map into ``out``, or checked to agree),
    the label map, its class count, after refusing test classes without a training example."""
    for path in (train_manifest, test_manifest):
        open_parquet(path, "manifest .parquet")  # missing, a folder, not Parquet: one line before any work
    lm = read_label_map(label_map) if label_map is not None else None
    if lm is not None:
        train_manifest = _renumber(train_manifest, lm, out / "train_manifest.parquet")
        test_manifest = _renumber(test_manifest, lm, out / "test_manifest.parquet")
        num_classes = len(lm)
    else:
        _check_same_numbering(train_manifest, test_manifest)
        num_classes = None
    train_labels = set(open_parquet(train_manifest).read(columns=["label_id"]).column("label_id").to_pylist())
    test_labels = set(open_parquet(test_manifest).read(columns=["label_id"]).column("label_id").to_pylist())
    if test_labels - train_labels:
        raise InputError(
            f"{test_manifest}: test label_id {min(test_labels - train_labels)} has no training example in "
            f"{train_manifest} ({len(test_labels - train_labels)} such classes)"
        )
    return train_manifest, test_manifest, lm, num_classes


def _ok_scores(features: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """The averaged scores (one row per video) and per-clip scores of the test videos that were not rejected."""
    scores_col = pq.read_table(features, columns=["status", "scores", "clip_scores"])
    ok = np.asarray(scores_col.column("status").to_pylist()) == "ok"
    video_scores = np.stack(
        [np.asarray(s, np.float32) for s, k in zip(scores_col.column("scores").to_pylist(), ok) if k]
    )
    clip_lists = [np.asarray(s, np.float32) for s, k in zip(scores_col.column("clip_scores").to_pylist(), ok) if k]
    return video_scores, clip_lists


def _finetune_protocol(
    cfg: TrainConfig,
    source: str,
    num_clips: int,
    summary: dict[str, Any],
    lm: LabelMap | None,
    train_manifest: Path,
    out: Path,
) -> dict[str, Any]:
    """The report's protocol block: how the network was fine-tuned and tested."""
    return {
        "method": "full fine-tuning (new classifier on the pre-trained backbone), softmax scores averaged per video",
        "checkpoint": source,
        "arch": cfg.arch,
        "clips": num_clips,
        "crop": cfg.crop,
        "frames": cfg.frames,
        "finetune_config": cfg.to_dict(),
        "steps": summary["steps"],
        "final_train_loss": summary["final_loss"],
        "label_map": lm.source if lm is not None else f"label_id numbering of {train_manifest}",
        "run": str(out),
    }


def finetune(
    cfg: TrainConfig,
    *,
    train_manifest: Path,
    test_manifest: Path,
    checkpoint: Path | None,
    out: Path,
    label_map: Path | None = None,
    num_clips: int = 10,
    resume: bool = True,
    progress: bool = True,
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION,
) -> dict[str, Any]:
    """Fine-tune ``checkpoint`` on ``train_manifest``, test on ``test_manifest``; returns the report's metrics.

    ``checkpoint`` None trains the same network from scratch (the baseline the paper compares with).
    Training stops (:class:`~weaksup.train.loop.TooManyRejects`) when more than
    ``max_reject_fraction`` of the clips drawn fail to decode, as in pre-training.
    """
    require_local_output(out)
    train_manifest, test_manifest, out = Path(train_manifest), Path(test_manifest), Path(out)
    net = load_network(checkpoint, arch=cfg.arch if checkpoint is None else None, seed=cfg.seed)
    cfg = replace(cfg, arch=net.arch)
    if checkpoint is None:
        cfg = replace(cfg, backbone_lr_scale=1.0)  # no pre-trained backbone to protect
    train_manifest, test_manifest, lm, num_classes = _target_manifests(train_manifest, test_manifest, label_map, out)

    init = net.model.state_dict() if checkpoint is not None else None
    summary = pretrain(
        cfg,
        manifest=train_manifest,
        out=out,
        resume=resume,
        progress=progress,
        num_classes=num_classes,
        init=init,
        init_source=net.source if init is not None else None,
        max_reject_fraction=max_reject_fraction,
    )

    features = out / "test_features.parquet"
    ext = extract_features(
        test_manifest,
        features,
        checkpoint=out,
        resume=resume,
        cfg=ExtractConfig(
            num_clips=num_clips,
            frames=cfg.frames,
            stride=cfg.stride,
            crop=cfg.crop,
            short_side=cfg.short_side,
            scores=True,
            per_clip=True,
            batch_size=max(16, cfg.batch_size),
            workers=max(2, min(cfg.workers, 8)),
            device=cfg.device,
            progress=progress,
        ),
    )
    te = read_features(features)
    video_scores, clip_lists = _ok_scores(features)
    labels = te.label_ids
    names = _class_names(train_manifest, lm, video_scores.shape[1])
    clips = Predictions(np.concatenate(clip_lists), labels=np.repeat(labels, [len(c) for c in clip_lists]))
    protocol = _finetune_protocol(cfg, net.source, num_clips, summary, lm, train_manifest, out)
    counts = {
        "train_videos": read_table(
            "manifest" if "clip_start_s" not in open_parquet(train_manifest).schema_arrow.names else "clips",
            train_manifest,
            columns=["video_id"],
        ).num_rows,
        "test_videos": len(te),
        "test_rejected": te.rejected,
        "train_wall_s": summary["wall_s"],
        "extract_wall_s": ext["wall_s"],
    }
    network = network_name(net.source) if checkpoint is not None else f"from scratch (seed {cfg.seed})"
    return write_report(
        out,
        videos=Predictions(video_scores, labels=labels),
        clips=clips,
        class_names=names,
        protocol=protocol,
        counts=counts,
        video_ids=list(te.video_ids),
        title=f"{network}, fine-tune: {train_manifest.name} -> {test_manifest.name}",
    )


def _class_names(train_manifest: Path, lm: LabelMap | None, num_classes: int) -> list[str]:
    if lm is not None:
        return list(lm.names)
    names = [str(i) for i in range(num_classes)]
    parquet = open_parquet(train_manifest)
    if "label" in parquet.schema_arrow.names:
        t = parquet.read(columns=["label_id", "label"])
        for i, n in zip(t.column("label_id").to_pylist(), t.column("label").to_pylist()):
            if n is not None and 0 <= i < num_classes:
                names[i] = n
    return names
