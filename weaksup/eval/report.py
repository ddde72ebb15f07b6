"""The evaluation report: the same files and terminal table for fc-only and fine-tuning.

Written into the report folder: ``metrics.json`` (video-level ``top1``/``top5`` for
single-label targets or ``mAP`` for multi-label ones, the clip-level figures beside them,
and the protocol that produced them: checkpoint, clips, crop, features, penalty, label
map), ``per_class.csv`` (test videos, correct, accuracy, or AP per class) and, for at most
100 classes of single-label targets, ``confusion.png``: rows the true class, columns the
predicted one, each cell's colour its share of the true class's test videos and, for at
most 30 classes, its count written in it; full class names; titled with the report's
title (callers name the network and the protocol there) plus the network from the
protocol's ``checkpoint`` when the title does not already name it.

Video level is the paper's test protocol: the clip scores of a video are averaged first
(``extract`` averages features; fine-tuning averages softmax scores), then ranked. Clip
level ranks each clip on its own. They are reported under different keys so they can
never be mixed up.
"""

from __future__ import annotations

import csv
import math
import textwrap
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
from weaksup.outputs import atomic_output
from weaksup.tables import write_json

MAX_CONFUSION_CLASSES = 100
MAX_ANNOTATED_CLASSES = 30  # above this, confusion cells carry no numbers (colour only)
FONT_PT = 9  # the smallest font in the plots
DPI = 100


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
        return {
            f"{prefix}top1": topk_accuracy(self.scores, self.labels, 1),
            f"{prefix}top5": topk_accuracy(self.scores, self.labels, k5),
        }


def write_report(
    out: Path,
    *,
    videos: Predictions,
    clips: Predictions | None,
    class_names: list[str],
    protocol: dict[str, Any],
    counts: dict[str, Any],
    title: str,
    video_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Compute every figure, write the report files into ``out`` and return metrics.json's content.

    ``title`` heads metrics.json, the terminal table and the plot: make it say which
    network and which protocol this is (e.g. "runs/k400/final.pt, fine-tune: train -> test"
    vs "random init (seed 0), fine-tune: ..."), since two reports on the same target differ
    by nothing else. The plot adds ``protocol["checkpoint"]`` (see :func:`network_name`)
    when present and not already in the title. With ``video_ids`` (single-label targets),
    ``predictions.csv`` lists every test video's true and predicted class and whether it
    was right: what :mod:`weaksup.eval.compare` bootstraps over.
    """
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
    if video_ids is not None and videos.labels is not None:
        _write_predictions(out / "predictions.csv", video_ids, videos, class_names)
        metrics["files"]["predictions"] = str(out / "predictions.csv")
    if len(class_names) <= MAX_CONFUSION_CLASSES and videos.labels is not None:
        plot_title = title
        if "checkpoint" in protocol and network_name(protocol["checkpoint"]) not in title:
            plot_title = f"{title}\nnetwork: {network_name(protocol['checkpoint'])}"
        _plot_confusion(out / "confusion.png", videos, class_names, plot_title)
        metrics["files"]["confusion"] = str(out / "confusion.png")
    metrics["files"]["metrics"] = str(out / "metrics.json")
    write_json(metrics, out / "metrics.json")
    return metrics


def _write_predictions(path: Path, video_ids: list[str], videos: Predictions, names: list[str]) -> None:
    assert videos.labels is not None
    if len(video_ids) != len(videos.labels):
        raise ValueError(f"{len(video_ids)} video ids for {len(videos.labels)} predictions")
    pred = videos.scores.argmax(axis=1)
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video_id", "label", "predicted", "correct"])
        for vid, truth, guess in zip(video_ids, videos.labels.tolist(), pred.tolist()):
            writer.writerow([vid, names[truth], names[guess], int(truth == guess)])


def read_predictions(report_dir: Path) -> dict[str, int]:
    """``predictions.csv`` of a report folder as {video_id: 1 if right else 0}."""
    path = Path(report_dir) / "predictions.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["video_id"]: int(row["correct"]) for row in csv.DictReader(fh)}


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


def network_name(checkpoint: Any) -> str:
    """A short name of the network for titles: "random init" without a checkpoint, a
    "random init (seed N)" source as it is, else the last three parts of its path or URI."""
    if checkpoint is None or not str(checkpoint).strip():
        return "random init"
    text = str(checkpoint).strip()
    if text.startswith("random init"):
        return text
    parts = [p for p in text.replace("\\", "/").split("/") if p]
    return "/".join(parts[-3:]) if len(parts) <= 3 else ".../" + "/".join(parts[-3:])


def _wrap_name(name: str, two_lines: bool) -> str:
    """The full class name; on at most two lines when ``two_lines`` and it is long."""
    if not two_lines or len(name) <= 16:
        return name
    width = max(16, math.ceil(len(name) / 2))
    while True:
        lines = textwrap.wrap(name, width)
        if len(lines) <= 2:
            return "\n".join(lines)
        width += 1


def confusion_figure(counts: np.ndarray, names: list[str], title: str):
    """The confusion plot as a matplotlib Figure (no pyplot state): rows true, columns predicted.

    Cell colours are shares of the row (the true class's test videos); for at most
    ``MAX_ANNOTATED_CLASSES`` classes each cell also shows its count. Class names are
    never cut (long ones wrap onto two lines when annotated), x labels are rotated, no
    text is smaller than ``FONT_PT`` and the size grows with the number of classes from
    6 x 5 inches (at ``DPI``: 600 x 500 pixels at least).
    """
    from matplotlib.figure import Figure

    counts = np.asarray(counts)
    n = len(names)
    if counts.shape != (n, n):
        raise ValueError(f"counts must be ({n}, {n}) for {n} class names, got {counts.shape}")
    annotate = n <= MAX_ANNOTATED_CLASSES
    labels = [_wrap_name(str(s), annotate) for s in names]
    lines = max((lab.count("\n") + 1 for lab in labels), default=1)
    longest = max((len(line) for lab in labels for line in lab.split("\n")), default=1)
    char_in = 0.62 * FONT_PT / 72  # a character's width at FONT_PT, about
    line_in = 1.3 * FONT_PT / 72
    label_in = longest * char_in + 0.2
    digits = len(str(int(counts.max()))) if counts.size else 1
    cell = max(lines * line_in + 0.06, (max(3, digits) * char_in + 0.12) if annotate else line_in + 0.03)
    xlabel_in = label_in * (0.72 if annotate else 1.0) + lines * line_in * 0.7
    width = max(6.0, label_in + n * cell + 2.0)
    title_chars = max(30, int(width / (0.62 * 10 / 72)) - 4)  # characters of 10 pt across the figure
    title_lines = [line for part in title.split("\n") for line in (textwrap.wrap(part, title_chars) or [""])]
    title_lines.append(
        "video-level confusion: counts; colour = share of the true class"
        if annotate
        else "video-level confusion: colour = share of the true class"
    )
    height = max(5.0, n * cell + xlabel_in + len(title_lines) * 1.3 * 10 / 72 + 1.1)

    rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, np.float64), where=rows > 0)
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    fig.suptitle("\n".join(title_lines), fontsize=10, x=0.02, ha="left")
    ax.set_xlabel("predicted class", fontsize=FONT_PT + 1)
    ax.set_ylabel("true class", fontsize=FONT_PT + 1)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    if annotate:
        ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=FONT_PT)
    else:
        ax.set_xticklabels(labels, rotation=90, fontsize=FONT_PT)
    ax.set_yticklabels(labels, fontsize=FONT_PT)
    ax.tick_params(length=2)
    if annotate:
        for i in range(n):
            for j in range(n):
                value = int(counts[i, j])
                colour = "white" if share[i, j] > 0.5 else ("0.55" if value == 0 else "black")
                ax.text(j, i, str(value), ha="center", va="center", fontsize=FONT_PT, color=colour)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=FONT_PT)
    bar.set_label("share of the true class", fontsize=FONT_PT)
    return fig


def _plot_confusion(path: Path, videos: Predictions, names: list[str], title: str) -> None:
    assert videos.labels is not None
    cm = confusion_matrix(videos.scores.argmax(axis=1), videos.labels, len(names))
    fig = confusion_figure(cm, names, title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")


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
    for key in ("method", "checkpoint", "clips", "penalty", "penalty_search_scheme", "label_map"):
        if proto.get(key) is not None:
            table.add_row(key.replace("_", " "), str(proto[key]), "")
    table.add_row("report", str(Path(metrics["files"]["metrics"]).parent), "")
    return table
