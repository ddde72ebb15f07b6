"""How a manifest's videos spread over labels (and durations), as tables, plots and numbers.

The paper's Fig. 3 shows the long tail as the cumulative distribution of videos per label,
labels sorted by count and the x-axis normalised by the number of labels, so label spaces
of different sizes compare on one plot; ``weaksup stats`` draws the same curve for a
manifest, next to the per-label counts on a log scale, a histogram of videos per label,
and a duration histogram when durations are known (from ``probe`` or the manifest).
Counting is vectorised numpy over the columns it needs, so it runs on a 65M-row manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weaksup.assembly.sample import HEAD_LABEL_FRACTION, check_manifest_columns, dense_ids, head_label_mask
from weaksup.errors import InputError
from weaksup.outputs import atomic_path, require_local_output
from weaksup.tables import read_table, write_json, write_table

LABEL_COUNTS_FILE = "label_counts.parquet"
DISTRIBUTION_PNG = "label_distribution.png"
PER_LABEL_HIST_PNG = "videos_per_label_hist.png"
DURATION_HIST_PNG = "duration_hist.png"
SUMMARY_FILE = "summary.json"
UNKNOWN_LABEL_NAME = ""
"""Name given to a label that appears only in matched_label_ids (never drawn), since the
manifest holds names only for drawn labels."""


@dataclass(frozen=True)
class StatsConfig:
    """One ``weaksup stats`` job: a manifest, an output directory, optionally probe results for durations."""

    manifest: Path
    out: Path
    probe: Path | None = None


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of the counts: 0 when every label has as many videos, towards 1 for a long tail."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    return float(2.0 * np.sum(np.arange(1, n + 1) * x) / (n * x.sum()) - (n + 1) / n)


def matched_counts(matched: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per label id, the videos whose matched_label_ids hold it (a repeat inside one list counts once),
    plus the total number of (video, label) matches."""
    matched = matched.combine_chunks() if isinstance(matched, pa.ChunkedArray) else matched
    flat = pc.list_flatten(matched).to_numpy(zero_copy_only=False).astype(np.int64)
    parents = pc.list_parent_indices(matched).to_numpy(zero_copy_only=False)
    if flat.size:
        same_video = parents[1:] == parents[:-1]
        if (same_video & (flat[1:] < flat[:-1])).any():  # the schema says sorted; sort only if not
            order = np.lexsort((flat, parents))
            flat, parents = flat[order], parents[order]
        first = np.ones(flat.size, bool)
        first[1:] = (flat[1:] != flat[:-1]) | (parents[1:] != parents[:-1])
        flat = flat[first]
    ids, _, counts = dense_ids(flat)
    return ids, counts, int(flat.size)


def label_names(label_index: np.ndarray, n_labels: int, label: pa.ChunkedArray) -> list[str]:
    """The name of each dense label, from its first row."""
    first = np.full(n_labels, label_index.size, np.int64)
    np.minimum.at(first, label_index, np.arange(label_index.size))
    return label.take(pa.array(first)).to_pylist()


def durations(cfg: StatsConfig, manifest: pa.Table) -> tuple[np.ndarray, str | None]:
    """Durations in seconds of the manifest's videos: from probe rows with status ok when
    given and any match, else the manifest's duration_s; (empty, None) when neither has any."""
    if cfg.probe is not None:
        probe = read_table("probe", cfg.probe, columns=["video_id", "status", "duration_s"])
        ok = pc.and_(pc.equal(probe.column("status"), "ok"), pc.is_valid(probe.column("duration_s")))
        probe = probe.filter(ok)
        probe = probe.filter(pc.is_in(probe.column("video_id"), value_set=manifest.column("video_id").combine_chunks()))
        seconds = probe.column("duration_s").to_numpy()
        seconds = seconds[np.isfinite(seconds) & (seconds >= 0)]
        if seconds.size:
            return seconds, "probe"
    column = manifest.column("duration_s")
    seconds = column.drop_null().to_numpy() if column.null_count < len(column) else np.zeros(0)
    seconds = seconds[np.isfinite(seconds) & (seconds >= 0)]
    return (seconds, "manifest") if seconds.size else (np.zeros(0), None)


def _save(fig: Any, path: Path) -> None:
    """Write a figure atomically (temp name + rename), like every other output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        fig.savefig(tmp, format="png", dpi=120)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def plot_label_distribution(assigned: np.ndarray, matched: np.ndarray, path: Path) -> None:
    """Fig. 3 style: cumulative share of videos over labels sorted by count, x normalised to [0, 1];
    and the per-label count curve on a log scale."""
    from matplotlib.figure import Figure  # the object API needs no pyplot state or GUI backend

    fig = Figure(figsize=(11, 4.2))
    cumulative, counts = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for values, name, style in ((assigned, "assigned label", "-"), (matched, "matched labels", "--")):
        if values.size == 0 or values.sum() == 0:
            continue
        desc = np.sort(values)[::-1].astype(np.float64)
        x = np.arange(1, desc.size + 1) / desc.size
        cumulative.plot(
            np.concatenate(([0.0], x)), np.concatenate(([0.0], np.cumsum(desc) / desc.sum())), style, label=name
        )
        counts.plot(x, np.maximum(desc, 0.5), style, label=name)
    cumulative.set(
        xlabel="labels, sorted by videos (normalised)", ylabel="cumulative share of videos", xlim=(0, 1), ylim=(0, 1.01)
    )
    cumulative.set_title("Cumulative distribution of videos per label")
    cumulative.grid(alpha=0.3)
    cumulative.legend(loc="lower right")
    counts.set_yscale("log")
    counts.set(xlabel="labels, sorted by videos (normalised)", ylabel="videos per label", xlim=(0, 1))
    counts.set_title("Videos per label (log scale)")
    counts.grid(alpha=0.3, which="both")
    counts.legend(loc="upper right")
    fig.tight_layout()
    _save(fig, path)


def plot_per_label_histogram(assigned: np.ndarray, path: Path) -> None:
    """How many labels have how many videos, on log-spaced bins (the counts span decades)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    lo, hi = max(int(assigned.min()), 1), max(int(assigned.max()), 2)
    bins = np.unique(np.geomspace(lo, hi + 1, num=40).round(6))
    ax.hist(assigned, bins=bins, color="tab:blue", edgecolor="white")
    ax.set_xscale("log")
    ax.set(xlabel="videos per label (log)", ylabel="labels", title=f"Videos per label ({assigned.size} labels)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_duration_histogram(seconds: np.ndarray, source: str, path: Path) -> None:
    """Distribution of video durations (the paper's source videos are 1-60 s)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(seconds, bins=60, color="tab:green", edgecolor="white")
    ax.set(xlabel="duration (s)", ylabel="videos", title=f"Video durations ({seconds.size} videos, from {source})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def manifest_stats(cfg: StatsConfig) -> dict[str, Any]:
    """Count videos per label, write label_counts, the plots and summary.json under ``cfg.out``; return the summary."""
    require_local_output(cfg.out)
    check_manifest_columns(cfg.manifest)
    if cfg.out.exists() and not cfg.out.is_dir():
        raise InputError(f"{cfg.out}: exists and is not a directory (stats writes a directory)")
    columns = ["label_id", "label", "matched_label_ids", "duration_s"] + (["video_id"] if cfg.probe is not None else [])
    manifest = read_table("manifest", cfg.manifest, columns=columns)
    n_videos = manifest.num_rows
    if n_videos == 0:
        raise InputError(f"{cfg.manifest}: manifest has no rows")

    label_ids, label_index, assigned = dense_ids(manifest.column("label_id").to_numpy())
    names = label_names(label_index, label_ids.size, manifest.column("label"))
    matched_ids, matched, n_matches = matched_counts(manifest.column("matched_label_ids"))

    all_ids = np.union1d(label_ids, matched_ids)
    assigned_all = np.zeros(all_ids.size, np.int64)
    assigned_all[np.searchsorted(all_ids, label_ids)] = assigned
    matched_all = np.zeros(all_ids.size, np.int64)
    matched_all[np.searchsorted(all_ids, matched_ids)] = matched
    name_all = np.full(all_ids.size, UNKNOWN_LABEL_NAME, dtype=object)
    name_all[np.searchsorted(all_ids, label_ids)] = names

    cfg.out.mkdir(parents=True, exist_ok=True)
    files = {"label_counts": str(cfg.out / LABEL_COUNTS_FILE)}
    write_table(
        "label_counts",
        {
            "label_id": pa.array(all_ids, pa.int32()),
            "label": pa.array(name_all.tolist(), pa.string()),
            "matched_videos": pa.array(matched_all, pa.int64()),
            "assigned_videos": pa.array(assigned_all, pa.int64()),
            "kept": pa.array(np.ones(all_ids.size, bool)),
        },
        cfg.out / LABEL_COUNTS_FILE,
    )
    plot_label_distribution(assigned, matched, cfg.out / DISTRIBUTION_PNG)
    plot_per_label_histogram(assigned, cfg.out / PER_LABEL_HIST_PNG)
    files["label_distribution"] = str(cfg.out / DISTRIBUTION_PNG)
    files["videos_per_label_hist"] = str(cfg.out / PER_LABEL_HIST_PNG)

    seconds, duration_source = durations(cfg, manifest)
    if duration_source is not None:
        plot_duration_histogram(seconds, duration_source, cfg.out / DURATION_HIST_PNG)
        files["duration_hist"] = str(cfg.out / DURATION_HIST_PNG)

    head = head_label_mask(label_ids, assigned)
    desc = np.sort(assigned)[::-1]
    summary: dict[str, Any] = {
        "manifest": str(cfg.manifest),
        "videos": n_videos,
        "labels": int(label_ids.size),
        "matched_labels": int(matched_ids.size),
        "min_videos_per_label": int(assigned.min()),
        "median_videos_per_label": float(np.median(assigned)),
        "mean_videos_per_label": float(assigned.mean()),
        "max_videos_per_label": int(assigned.max()),
        "gini": gini(assigned),
        "head_labels": int(head.sum()),
        "head_share": float(assigned[head].sum() / n_videos),
        "head_definition": f"the {HEAD_LABEL_FRACTION:.0%} most frequent labels",
        "labels_for_half_of_videos": int(np.searchsorted(np.cumsum(desc), n_videos / 2.0) + 1),
        "mean_matched_labels_per_video": float(n_matches / n_videos),
        "duration_source": duration_source,
        "videos_with_duration": int(seconds.size),
        "total_duration_hours": float(seconds.sum() / 3600.0) if seconds.size else None,
        "mean_duration_s": float(seconds.mean()) if seconds.size else None,
        "files": files,
    }
    files["summary"] = str(cfg.out / SUMMARY_FILE)
    write_json(summary, cfg.out / SUMMARY_FILE)
    return summary
