"""The evaluation report: the same files and terminal table for fc-only and fine-tuning.

Written into the report folder: ``metrics.json`` (video-level ``top1``/``top5`` for
single-label targets or ``mAP`` for multi-label ones, the clip-level figures beside them,
and the protocol that produced them: checkpoint, clips, crop, features, penalty, label
map), ``per_class.csv`` (test videos, correct, accuracy, or AP per class) and, for at most
100 classes, ``confusion.png`` (rows: true class, normalised per row).

Video level is the paper's test protocol: the clip scores of a video are averaged first
(``extract`` averages features; fine-tuning averages softmax scores), then ranked. Clip
level ranks each clip on its own. They are reported under different keys so they can
never be mixed up.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weaksup.eval.metrics import (
    average_precision,
    confusion_matrix,
    mean_average_precision,
    per_class_accuracy,
    topk_accuracy,
)
from weaksup.tables import atomic_output, write_json

MAX_CONFUSION_CLASSES = 100


@dataclass(frozen=True)
class Predictions:
    """Scores over the evaluated classes, with the truth, at one level (videos or clips)."""

    scores: np.ndarray  # (N, C)
    labels: np.ndarray | None = None  # (N,) class indices, single-label
    targets: np.ndarray | None = None  # (N, C) multi-hot, multi-label

    def metrics(self, prefix: str = "") -> dict[str, float]:
        if self.targets is not None:
            value, skipped = mean_average_precision(self.scores, self.targets)
            return {f"{prefix}mAP": value, f"{prefix}mAP_classes_without_positives": skipped}
        assert self.labels is not None
        k5 = min(5, self.scores.shape[1])
        return {f"{prefix}top1": topk_accuracy(self.scores, self.labels, 1),
                f"{prefix}top5": topk_accuracy(self.scores, self.labels, k5)}


def write_report(
    out: Path,
    *,
    videos: Predictions,
    clips: Predictions | None,
    class_names: list[str],
    protocol: dict[str, Any],
    counts: dict[str, Any],
    title: str,
) -> dict[str, Any]:
    """Compute every figure, write the report files into ``out`` and return metrics.json's content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {"title": title, "level": "video (clip scores averaged per video)"}
    metrics.update(videos.metrics())
    if clips is not None:
        metrics.update(clips.metrics("clip_"))
    else:
        metrics["clip_level"] = "not available (extract with --per-clip to get clip-level figures)"
    metrics["num_classes"] = len(class_names)
    metrics.update(counts)
    metrics["protocol"] = protocol
    metrics["files"] = {"per_class": str(out / "per_class.csv")}
    _write_per_class(out / "per_class.csv", videos, class_names)
    if len(class_names) <= MAX_CONFUSION_CLASSES and videos.labels is not None:
        _plot_confusion(out / "confusion.png", videos, class_names, title)
        metrics["files"]["confusion"] = str(out / "confusion.png")
    metrics["files"]["metrics"] = str(out / "metrics.json")
    write_json(metrics, out / "metrics.json")
    return metrics


def _write_per_class(path: Path, videos: Predictions, names: list[str]) -> None:
    rows: list[list[Any]] = []
    if videos.targets is not None:
        header = ["class_id", "class", "test_positives", "AP"]
        for c, name in enumerate(names):
            pos = int(videos.targets[:, c].sum())
            ap = average_precision(videos.scores[:, c], videos.targets[:, c]) if pos else float("nan")
            rows.append([c, name, pos, f"{ap:.6f}"])
    else:
        assert videos.labels is not None
        pred = videos.scores.argmax(axis=1)
        correct, totals = per_class_accuracy(pred, videos.labels, len(names))
        header = ["class_id", "class", "test_videos", "correct", "accuracy"]
        for c, name in enumerate(names):
            acc = correct[c] / totals[c] if totals[c] else float("nan")
            rows.append([c, name, int(totals[c]), int(correct[c]), f"{acc:.6f}"])
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _plot_confusion(path: Path, videos: Predictions, names: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert videos.labels is not None
    cm = confusion_matrix(videos.scores.argmax(axis=1), videos.labels, len(names)).astype(np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(names)
    size = min(16.0, 3.0 + 0.16 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\nvideo-level confusion (row-normalised)", fontsize=9)
    if n <= 40:
        ax.set_xticks(range(n), [s[:18] for s in names], rotation=90, fontsize=6)
        ax.set_yticks(range(n), [s[:18] for s in names], fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)


def report_table(metrics: dict[str, Any]):
    """A one-screen rich table of a report (what the CLI prints)."""
    from rich.table import Table

    table = Table(title=metrics.get("title", "evaluation"), title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("video level", justify="right")
    table.add_column("clip level", justify="right")
    for key in ("top1", "top5", "mAP"):
        if key in metrics:
            clip = metrics.get(f"clip_{key}")
            table.add_row(key, f"{100 * metrics[key]:.2f}%", "-" if clip is None else f"{100 * clip:.2f}%")
    proto = metrics.get("protocol", {})
    for key in ("test_videos", "test_rejected", "train_videos", "train_rejected", "num_classes"):
        if key in metrics:
            table.add_row(key.replace("_", " "), str(metrics[key]), "")
    for key in ("method", "checkpoint", "clips", "penalty", "label_map"):
        if key in proto:
            table.add_row(key.replace("_", " "), str(proto[key]), "")
    table.add_row("report", str(Path(metrics["files"]["metrics"]).parent), "")
    return table
