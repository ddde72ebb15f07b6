"""`weaksup card`: a dataset card (Markdown, Hugging Face style) for a finished manifest.

The card opens with a YAML front matter block as dataset hubs read it (``license``,
``task_categories: video-classification``, ``size_categories``, ``pretty_name``, ``tags``)
and then says, in sections: how many videos and labels; how the videos spread over labels
(a PNG beside the card, ``CARD-stem.labels.png``: the top labels as sorted bars and every
label's count by rank on a log scale; and the top and bottom labels as a table); where the
videos come from (count by URL host, from a ``url`` column) and under which licences (a
``licence`` or ``license`` column); what was rejected or filtered on the way and why (the
summaries beside the manifest, the fetch table's ``status``/``error`` columns, dedupe's
overlaps report); and what built it (the stages' settings from their summaries, the
versions of weaksup, Python and the libraries).

Provenance columns reach the manifest with ``match --keep-columns url,licence,...`` (fetch
writes them). What the card is not given or cannot find is left out with a line saying so.
The manifest is streamed batch by batch (a 65M-row manifest is counted in bounded memory);
it is a local ``.parquet`` file or a folder of parts (``match --partitioned``'s
``OUT/manifest``). The card holds no date, so the same inputs give the same bytes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import platform
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import __version__, uris
from weaksup.errors import InputError, first_line
from weaksup.outputs import atomic_output, output_set, require_local_output, side_path
from weaksup.tables import check_table, load_schema, not_parquet, open_parquet, read_table

PLOT_SUFFIX = ".labels.png"
PLOT_DPI = 100
PLOT_WIDTH_PX = 1400
BAR_PX = 30  # height of one label's bar row in the plot
PLOT_MARGIN_PX = 160  # title, axis labels and ticks
MIN_PLOT_HEIGHT_PX = 400
LABEL_CHARS = 40  # longer label names are shortened in the plot
SHOWN_VALUES = 25  # hosts and licences listed; the rest are summed as "other"
LICENCE_COLUMNS = ("licence", "license")
#: HF's size buckets: (upper bound exclusive, name); beyond the last is n>1T.
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)
#: Licence identifiers the hubs know (lower case); a licence text that maps to none is "other".
KNOWN_LICENSES = frozenset(
    [f"cc-by-{v}" for v in ("2.0", "2.5", "3.0", "4.0")]
    + [f"cc-by-sa-{v}" for v in ("3.0", "4.0")]
    + [f"cc-by-nc-{v}" for v in ("2.0", "3.0", "4.0")]
    + [f"cc-by-nd-{v}" for v in ("4.0",)]
    + [f"cc-by-nc-sa-{v}" for v in ("2.0", "3.0", "4.0")]
    + [f"cc-by-nc-nd-{v}" for v in ("3.0", "4.0")]
    + ["cc0-1.0", "pddl", "odbl", "odc-by", "apache-2.0", "mit", "bsd-3-clause", "gpl-3.0", "cdla-permissive-2.0"]
)
_CC = re.compile(r"(?:creativecommons\.org/licenses/|\bcc[- ]?)(by(?:[- ]nc)?(?:[- ](?:sa|nd))?)(?:[-/ ]*(\d\.\d))?")
_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(?P<host>\[[^\]]*\]|[^/:?#]+)"

#: What each stage's summary is recognised by (keys it always writes), in the order tried.
STAGE_KEYS = (
    ("match", ("in_manifest", "min_videos")),
    ("fetch", ("opt_outs_honoured", "user_agent")),
    ("dedupe", ("threshold_pct", "removed")),
    ("sample", ("strategy", "sizes")),
    ("build-labels", ("hashtag_label_pairs", "collision_policy")),
    ("splits", ("kind", "clip_seconds")),
    ("materialize", ("clips_table", "materialized")),
    ("stats", ("gini", "labels")),
)
#: Stages whose summaries beside the manifest tell how it was made (its own summary is read whatever its stage).
UPSTREAM_STAGES = ("fetch", "build-labels", "match", "dedupe")
#: The order "How it was built" lists the stages in.
STAGE_ORDER = ("fetch", "build-labels", "match", "dedupe", "sample", "splits", "materialize", "stats")
#: The settings worth showing of each stage's summary (everything is in the summary's JSON block).
STAGE_SETTINGS = {
    "match": ("min_videos", "seed", "text_column", "drop_tags", "keep_columns", "support", "parts"),
    "fetch": ("opt_outs_honoured", "private_hosts_allowed", "user_agent"),
    "dedupe": (
        "self_dedupe",
        "threshold_pct",
        "radius_bits",
        "min_frames",
        "tolerance_frames",
        "fps",
        "code_version",
    ),
    "sample": ("strategy", "seed", "replacement", "weights_only"),
    "build-labels": ("collision_policy", "forms", "max_tags"),
    "splits": ("kind", "min_s", "max_s", "center_s", "seed", "max_videos", "total_duration_s"),
    "materialize": ("short_side", "gop", "codec"),
}
#: Counts a stage's summary holds of rows it left out, with what they mean.
STAGE_FILTERS = {
    "match": (("unmatched", "no hashtag of any label"), ("dropped_by_min_videos", "labels under --min-videos")),
    "dedupe": (("removed", "overlap a benchmark (target) video"),),
    "splits": (
        ("too_short", "shorter than the split's bounds"),
        ("too_long", "longer than the split's bounds"),
        ("no_duration", "no known duration"),
        ("probe_rejected", "rejected by probe"),
        ("over_budget", "over the split's budget"),
    ),
}


@dataclass(frozen=True)
class CardConfig:
    """One ``weaksup card`` job: the manifest, the card to write, and optional inputs."""

    manifest: Path
    out: Path
    fetched: Path | None = None  # fetch's fetched.parquet (status/error columns)
    dedupe_report: Path | None = None  # dedupe's overlaps report (--report)
    title: str | None = None  # the card's title (default: the manifest's folder or stem)
    top: int = 25  # labels in the plot and the top table
    bottom: int = 10  # labels in the bottom table


@dataclass
class _Counts:
    """What one pass over the manifest counts."""

    rows: int = 0
    label_rows: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    hosts: Counter = field(default_factory=Counter)
    licences: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    with_duration: int = 0
    flagged: int = 0  # rows whose video the dedupe report removes
    columns: list[str] = field(default_factory=list)
    url_column: str | None = None
    licence_column: str | None = None


# --------------------------------------------------------------------------- small helpers


def plot_path(out: Path) -> Path:
    """The label plot beside the card: ``DATASET_CARD.md`` -> ``DATASET_CARD.labels.png``."""
    out = Path(out)
    return out.with_name((out.stem if out.suffix.lower() in (".md", ".markdown") else out.name) + PLOT_SUFFIX)


def plot_size(shown: int) -> tuple[int, int]:
    """The plot's (width, height) in pixels when it shows ``shown`` labels as bars."""
    return PLOT_WIDTH_PX, max(MIN_PLOT_HEIGHT_PX, PLOT_MARGIN_PX + BAR_PX * shown)


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` bucket of ``n`` rows."""
    for bound, name in SIZE_CATEGORIES:
        if n < bound:
            return name
    return "n>1T"


def license_id(value: str | None) -> str:
    """A hub licence identifier for a licence text or URL (``CC BY-SA 4.0``,
    ``https://creativecommons.org/licenses/by/4.0/`` -> ``cc-by-sa-4.0``, ``cc-by-4.0``); a
    missing value is ``unknown``, one that names no known licence (or no version) ``other``."""
    if value is None or not value.strip():
        return "unknown"
    text = value.strip().lower().replace("_", "-")
    if text in KNOWN_LICENSES:
        return text
    if "publicdomain/zero" in text or re.search(r"\bcc[- ]?0\b|\bcc[- ]?zero\b", text):
        return "cc0-1.0"
    found = _CC.search(text)
    if found and found.group(2):
        name = f"cc-{re.sub(r'[- ]+', '-', found.group(1))}-{found.group(2)}"
        return name if name in KNOWN_LICENSES else "other"
    return "other"


def versions() -> dict[str, str]:
    """Versions of weaksup, Python and the libraries that shaped the data (torch only when
    installed; read from the package metadata, nothing imported)."""
    out = {"weaksup": __version__, "python": platform.python_version()}
    for name in ("pyarrow", "numpy", "duckdb", "av", "torch", "matplotlib"):
        if name == "torch" and importlib.util.find_spec("torch") is None:
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    if isinstance(value, float):
        value = f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    elif isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    elif isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    text = " ".join(str(value).split())
    return text.replace("|", "\\|") or " "


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    """A Markdown table; columns of numbers right-aligned."""
    numeric = [
        bool(rows) and all(_is_number(r[i]) or str(r[i]).endswith("%") for r in rows) for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "-"


def _counted(counter: Counter, total: int, what: str) -> list[tuple]:
    """Rows (value, count, share) of the most common values, the rest summed as one row."""
    rows = [(value, n, _share(n, total)) for value, n in counter.most_common(SHOWN_VALUES)]
    rest = len(counter) - SHOWN_VALUES
    if rest > 0:
        n = sum(counter.values()) - sum(r[1] for r in rows)
        rows.append((f"({rest:,} other {what})", n, _share(n, total)))
    return rows


def _bytes(n: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,} bytes"


def _yaml(value: str) -> str:
    """A YAML scalar: JSON's double-quoted string is one."""
    return json.dumps(value)


# --------------------------------------------------------------------------- reading


def _manifest_files(path: Path) -> list[Path]:
    """The manifest's Parquet files: the file itself, or a folder's ``*.parquet`` parts."""
    if not uris.is_local(path):
        raise InputError(f"{uris.display(path)}: card reads a local manifest (a .parquet file or a folder of parts)")
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: manifest not found")
    uris.check_input_file(path, "manifest .parquet or folder of parts", folder_ok=True)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
        if not files:
            raise InputError(f"{path}: no .parquet manifest parts in the folder")
        return files
    return [path]


def _checked_batches(path: Path, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Record batches of a Parquet file; a corrupt page as one line naming the file."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise not_parquet(path, exc) from None
        yield batch


def _batches(parts: dict[Path, pq.ParquetFile], columns: list[str]) -> Iterator[tuple[Path, pa.Table]]:
    for f, parquet in parts.items():
        for batch in _checked_batches(f, parquet.iter_batches(batch_size=1 << 18, columns=columns)):
            yield f, pa.Table.from_batches([batch])


def _hosts(urls: pa.ChunkedArray) -> Counter:
    """Rows per URL host (lower case, no ``www.``); a value that is not a URL counts as ``(not a URL)``."""
    urls = urls.cast(pa.string())
    host = pc.struct_field(pc.extract_regex(urls, _HOST), "host")
    host = pc.replace_substring_regex(pc.utf8_lower(host), r"^www\.", "")
    counts = Counter()
    for entry in pc.value_counts(pc.fill_null(host, "(not a URL)")).to_pylist():
        counts[entry["values"]] += entry["counts"]
    missing = urls.null_count
    if missing:
        counts["(not a URL)"] -= missing
        counts["(not recorded)"] += missing
        if counts["(not a URL)"] <= 0:
            del counts["(not a URL)"]
    return counts


def _values(column: pa.ChunkedArray) -> Counter:
    counts = Counter()
    for entry in pc.value_counts(column.cast(pa.string())).to_pylist():
        key = entry["values"]
        counts["(not recorded)" if key is None or not str(key).strip() else str(key).strip()] += entry["counts"]
    return counts


def _count_manifest(files: list[Path], removed: pa.Array | None) -> _Counts:
    """One streamed pass: rows, rows per label (and names), hosts, licences, durations."""
    schema = load_schema("manifest")
    counts = _Counts()
    parts = {f: open_parquet(f, "manifest .parquet") for f in files}  # each footer read once
    file_schema = parts[files[0]].schema_arrow
    check_table(file_schema.empty_table(), schema, str(files[0]))
    columns = file_schema.names
    counts.columns = columns
    counts.url_column = "url" if "url" in columns else None
    counts.licence_column = next((c for c in LICENCE_COLUMNS if c in columns), None)
    wanted = ["video_id", "label_id", "label"] + [c for c in ("duration_s",) if c in columns]
    wanted += [c for c in (counts.url_column, counts.licence_column) if c is not None]
    checked = schema.subset(wanted)
    for f in files[1:]:
        check_table(parts[f].schema_arrow.empty_table(), schema, str(f))
        missing = [c for c in wanted if c not in parts[f].schema_arrow.names]
        if missing:
            raise InputError(f"{f}: missing column {missing[0]!r} (the other manifest parts have it)")
    for f, table in _batches(parts, wanted):
        table = check_table(table, checked, str(f))
        counts.rows += table.num_rows
        label_ids = table.column("label_id").to_numpy()
        ids, first, n = np.unique(label_ids, return_index=True, return_counts=True)
        label_names = table.column("label")
        for label_id, row, k in zip(ids.tolist(), first.tolist(), n.tolist()):
            counts.label_rows[label_id] = counts.label_rows.get(label_id, 0) + k
            if label_id not in counts.names:
                counts.names[label_id] = label_names[row].as_py()
        if "duration_s" in table.column_names:
            seconds = table.column("duration_s").to_numpy(zero_copy_only=False)
            known = np.isfinite(seconds) & (seconds >= 0)  # nulls arrive as NaN
            counts.seconds += float(seconds[known].sum())
            counts.with_duration += int(known.sum())
        if counts.url_column:
            counts.hosts += _hosts(table.column(counts.url_column))
        if counts.licence_column:
            counts.licences += _values(table.column(counts.licence_column))
        if removed is not None and len(removed):
            counts.flagged += int(pc.sum(pc.is_in(table.column("video_id"), value_set=removed)).as_py() or 0)
    return counts


def _summary_files(manifest: Path, fetched: Path | None) -> tuple[Path, list[Path]]:
    """The manifest's own summary (``M-stem.summary.json``, or a partitioned match's
    ``summary.json`` above its ``manifest/`` folder), and the other summaries to look at: the
    ``*.summary.json`` beside the manifest and the one beside the fetch table."""
    manifest = Path(manifest)
    folder = manifest.parent
    own = folder / "summary.json" if manifest.is_dir() else Path(side_path(manifest, ".summary.json"))
    others = sorted(p for p in folder.glob("*summary.json") if p != own)
    if fetched is not None and uris.is_local(fetched):
        others.append(Path(side_path(fetched, ".summary.json")))
    return own, others


def stage_of(summary: dict) -> str | None:
    """Which stage wrote a summary, by the keys it always writes; None when none matches."""
    for stage, keys in STAGE_KEYS:
        if all(k in summary for k in keys):
            return stage
    return None


def _read_summary(path: Path, skipped: list[str]) -> dict | None:
    """A summary file's JSON object (None when absent; a line in ``skipped`` when unreadable)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        skipped.append(f"{path.name}: not read ({first_line(exc)})")
        return None
    return data if isinstance(data, dict) else None


def _read_summaries(own: Path, others: list[Path]) -> tuple[list[dict], list[str]]:
    """The summaries that tell how the manifest was made, in pipeline order, each with its
    ``file`` and ``stage``: its own, and those among ``others`` of the stages that make a
    manifest (:data:`UPSTREAM_STAGES`) other than the own one's stage (a manifest is made by one
    match: another match summary beside it is another manifest's); and one line per file that
    could not be read."""
    skipped: list[str] = []
    out = []
    data = _read_summary(own, skipped)
    own_stage = stage_of(data) if data is not None else None
    if data is not None:
        out.append({"file": own.name, "stage": own_stage, "data": data, "own": True})
    seen = {own.resolve()}
    for p in others:
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        data = _read_summary(p, skipped)
        stage = stage_of(data) if data is not None else None
        if data is not None and stage in UPSTREAM_STAGES and stage != own_stage:
            out.append({"file": p.name, "stage": stage, "data": data, "own": False})
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    out.sort(key=lambda s: (s["own"], rank.get(s["stage"], len(rank))))  # the manifest's own last: its last step
    return out, skipped


def _read_fetched(path: Path) -> dict:
    """Outcomes of a fetch table: rows, ok, rejected by reason (the error's kind), retryable."""
    parquet = open_parquet(path, "fetched .parquet")
    names = parquet.schema_arrow.names
    for name in ("status", "error"):
        if name not in names:
            raise InputError(f"{path}: missing column {name!r} (--fetched takes fetch's fetched.parquet)")
    columns = ["status", "error"] + [c for c in ("retryable", "bytes") if c in names]
    out = {"rows": 0, "ok": 0, "bytes": 0, "retryable": 0, "reasons": Counter()}
    for batch in _checked_batches(path, parquet.iter_batches(batch_size=1 << 18, columns=columns)):
        status = batch.column("status").cast(pa.string())
        ok = pc.fill_null(pc.equal(status, "ok"), False)
        out["rows"] += batch.num_rows
        out["ok"] += int(pc.sum(ok).as_py() or 0)
        bad = pc.invert(ok)
        if "bytes" in batch.schema.names:
            out["bytes"] += int(pc.sum(pc.filter(batch.column("bytes"), ok)).as_py() or 0)
        if "retryable" in batch.schema.names:
            out["retryable"] += int(pc.sum(pc.fill_null(pc.filter(batch.column("retryable"), bad), False)).as_py() or 0)
        for error in pc.filter(batch.column("error"), bad).to_pylist():
            out["reasons"][reason_of(error)] += 1
    return out


def reason_of(error: str | None) -> str:
    """The kind of a reject's error text: before ``:`` and before `` (`` (fetch's and match's rules)."""
    if not error:
        return "unknown"
    return error.split(":", 1)[0].split(" (", 1)[0].strip() or "unknown"


def _read_report(path: Path) -> dict:
    """Dedupe's overlaps report: pairs reported, sources removed, by variant."""
    table = read_table(
        "overlaps", path, columns=["source_video_id", "target_video_id", "variant", "mirrored", "removed"]
    )
    removed = table.filter(pc.fill_null(table.column("removed"), False))
    by_variant = Counter(removed.column("variant").to_pylist())
    removed_ids = pc.unique(removed.column("source_video_id")).cast(pa.string())
    return {
        "pairs": table.num_rows,
        "sources_reported": len(pc.unique(table.column("source_video_id"))),
        "targets_matched": len(pc.unique(table.column("target_video_id"))),
        "removed": len(removed_ids),
        "removed_mirrored": int(pc.sum(pc.fill_null(removed.column("mirrored"), False)).as_py() or 0),
        "removed_by_variant": dict(sorted(by_variant.items())),
        "removed_ids": removed_ids,
    }


# --------------------------------------------------------------------------- the plot


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def plot_labels(ids: np.ndarray, counts: np.ndarray, names: dict[int, str], top: int, path: Path) -> tuple[int, int]:
    """The label plot: the ``top`` labels as sorted horizontal bars (largest on top, counts at
    the bar ends) and every label's count by rank on a log scale; returns its size in pixels."""
    from matplotlib.figure import Figure  # the object API needs no pyplot state or GUI backend

    order = np.lexsort((ids, -counts))
    shown = order[: max(0, top)]
    width, height = plot_size(len(shown))
    fig = Figure(figsize=(width / PLOT_DPI, height / PLOT_DPI), dpi=PLOT_DPI)
    bars = fig.add_axes((0.27, PLOT_MARGIN_PX * 0.55 / height, 0.36, 1 - PLOT_MARGIN_PX / height))
    tail = fig.add_axes((0.71, PLOT_MARGIN_PX * 0.55 / height, 0.27, 1 - PLOT_MARGIN_PX / height))
    total = int(counts.sum())
    if len(shown):
        y = np.arange(len(shown))
        values = counts[shown]
        bars.barh(y, values, color="#4C72B0")
        bars.set_yticks(y, [_short(names.get(int(i), str(i))) for i in ids[shown]], fontsize=9)
        bars.invert_yaxis()
        bars.set_ylim(len(shown) - 0.5, -0.5)
        for yi, v in zip(y, values):
            bars.text(v, yi, f" {int(v):,}", va="center", fontsize=8)
        bars.set_xlim(0, values.max() * 1.18)
        ranked = counts[order]
        tail.plot(np.arange(1, len(ranked) + 1), np.maximum(ranked, 0.5), color="#4C72B0")
        tail.axvspan(0.5, len(shown) + 0.5, color="#DD8452", alpha=0.2, label=f"top {len(shown)} (left)")
        tail.set_yscale("log")
        tail.set_xlim(0.5, max(len(ranked), 1) + 0.5)
        tail.legend(loc="upper right", fontsize=8)
    else:
        bars.text(0.5, 0.5, "no labelled videos", ha="center", va="center", transform=bars.transAxes)
    bars.set_xlabel("videos")
    bars.set_ylabel("label")
    bars.set_title(f"Videos per label: top {len(shown)} of {len(ids):,} labels ({total:,} videos)", fontsize=11)
    bars.grid(axis="x", alpha=0.3)
    tail.set_xlabel("label rank (most videos first)")
    tail.set_ylabel("videos (log scale)")
    tail.set_title("Every label by rank", fontsize=11)
    tail.grid(alpha=0.3, which="both")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI)
    return width, height


# --------------------------------------------------------------------------- the card


def _front_matter(title: str, n: int, licences: list[str]) -> list[str]:
    lines = ["---", f"pretty_name: {_yaml(title)}", "license:"]
    lines += [f"- {_yaml(x)}" for x in licences]
    lines += ["task_categories:", "- video-classification", "size_categories:", f"- {_yaml(size_category(n))}"]
    lines += ["tags:", "- weakly-supervised", "- hashtags", "- video", "- weaksup", "---", ""]
    return lines


def _licence_ids(counts: _Counts) -> list[str]:
    if counts.licence_column is None:
        return ["unknown"]
    ids = Counter()
    for value, n in counts.licences.items():
        ids[license_id(None if value == "(not recorded)" else value)] += n
    return [x for x, _ in sorted(ids.items(), key=lambda kv: (-kv[1], kv[0]))] or ["unknown"]


def _labels_section(counts: _Counts, ids: np.ndarray, per_label: np.ndarray, cfg: CardConfig, png: str) -> list[str]:
    n, n_labels = counts.rows, len(ids)
    lines = ["## Labels", ""]
    if not n_labels:
        return lines + ["The manifest holds no labelled videos.", ""]
    sorted_counts = np.sort(per_label)[::-1]
    head = max(1, math.ceil(0.2 * n_labels))
    lines += [
        f"{n_labels:,} labels. Videos per label: {int(sorted_counts[-1]):,} at least, "
        f"{float(np.median(sorted_counts)):,.4g} median, {int(sorted_counts[0]):,} at most; the "
        f"{head:,} largest labels (20%) hold {_share(int(sorted_counts[:head].sum()), n)} of the videos.",
        "",
        f"![Videos per label]({png})",
        "",
    ]
    order = np.lexsort((ids, -per_label))
    rank_rows = [
        (rank + 1, counts.names.get(int(ids[i]), ""), int(ids[i]), int(per_label[i]), _share(int(per_label[i]), n))
        for rank, i in enumerate(order)
    ]
    header = ("rank", "label", "label_id", "videos", "share")
    if n_labels <= cfg.top + cfg.bottom:
        lines += ["Every label:", ""] + _table(header, rank_rows) + [""]
    else:
        lines += [f"Top {cfg.top} labels:", ""] + _table(header, rank_rows[: cfg.top]) + [""]
        if cfg.bottom > 0:
            lines += [f"Bottom {cfg.bottom} labels:", ""] + _table(header, rank_rows[-cfg.bottom :]) + [""]
    return lines


def _sources_section(counts: _Counts) -> list[str]:
    lines = ["## Sources", ""]
    if counts.url_column is None:
        lines += [
            "Not recorded: the manifest has no `url` column (carry it from fetch's table with "
            "`weaksup match --keep-columns url`).",
            "",
        ]
    else:
        lines += [f"Videos by the host of their `{counts.url_column}` ({len(counts.hosts):,} hosts):", ""]
        lines += _table(
            ("#", "host", "videos", "share"),
            [(i + 1, *r) for i, r in enumerate(_counted(counts.hosts, counts.rows, "hosts"))],
        )
        lines.append("")
    lines += ["## Licences", ""]
    if counts.licence_column is None:
        lines += [
            "Not recorded: the manifest has no `licence` or `license` column (carry it with "
            "`weaksup match --keep-columns licence`). Check the terms of every source before use.",
            "",
        ]
    else:
        rows = [
            (i + 1, value, n, share, license_id(None if value == "(not recorded)" else value))
            for i, (value, n, share) in enumerate(_counted(counts.licences, counts.rows, "licences"))
        ]
        lines += [f"Videos by their `{counts.licence_column}` column (with the hub licence id it maps to):", ""]
        lines += _table(("#", "licence", "videos", "share", "id"), rows) + [""]
    return lines


def _rejects_section(
    summaries: list[dict], fetched: dict | None, report: dict | None, cfg: CardConfig, counts: _Counts
) -> list[str]:
    lines = ["## Rejected and filtered", ""]
    if fetched is None:
        lines += ["Fetch: no fetch table given (`--fetched`).", ""]
    else:
        rejected = fetched["rows"] - fetched["ok"]
        lines += [
            f"Fetch (`{Path(cfg.fetched).name}`): {fetched['rows']:,} rows, {fetched['ok']:,} fetched "
            f"({_bytes(fetched['bytes'])}), {rejected:,} rejected ({fetched['retryable']:,} of them retryable).",
            "",
        ]
        if rejected:
            lines += _table(
                ("#", "reason", "rows", "share"),
                [(i + 1, *r) for i, r in enumerate(_counted(fetched["reasons"], fetched["rows"], "reasons"))],
            ) + [""]
    found = False
    for s in summaries:
        data, stage = s["data"], s["stage"]
        rows: list[tuple] = []
        reasons = data.get("rejected_by_reason") if isinstance(data.get("rejected_by_reason"), dict) else None
        if stage == "fetch" and fetched is None and isinstance(data.get("reasons"), dict):
            reasons = data["reasons"]
        for reason, n in (reasons or {}).items():
            rows.append((f"rejected: {reason}", n))
        for key, meaning in STAGE_FILTERS.get(stage or "", ()):
            if isinstance(data.get(key), int):
                rows.append((f"{key.replace('_', ' ')} ({meaning})", data[key]))
        rows = [r for r in rows if isinstance(r[1], int) and r[1] > 0]
        read = data.get("videos_read", data.get("rows", data.get("manifest_rows", data.get("sources"))))
        where = f"{stage or 'a stage'} (`{s['file']}`)" + (f", {read:,} rows read" if isinstance(read, int) else "")
        where = where[0].upper() + where[1:]
        if stage in STAGE_FILTERS or reasons is not None:
            found = True
            if not rows:
                lines += [f"{where}: nothing rejected or filtered.", ""]
                continue
            table = _table(("#", "reason", "rows"), [(i + 1, *r) for i, r in enumerate(rows)])
            lines += [f"{where}:", "", *table, ""]
    if not found:
        lines += ["No stage summary with reject counts was found beside the manifest.", ""]
    if report is None:
        lines += ["Dedupe: no overlaps report given (`--dedupe-report`).", ""]
    else:
        lines += [
            f"Dedupe (`{Path(cfg.dedupe_report).name}`): {report['pairs']:,} overlapping pairs reported between "
            f"{report['sources_reported']:,} training videos and {report['targets_matched']:,} benchmark videos; "
            f"{report['removed']:,} training videos removed ({report['removed_mirrored']:,} as mirrored copies).",
            "",
        ]
        if report["removed_by_variant"]:
            lines += _table(
                ("#", "reason", "videos"),
                [(i + 1, f"removed: {v} codes", n) for i, (v, n) in enumerate(report["removed_by_variant"].items())],
            ) + [""]
        if counts.flagged:
            lines += [
                f"**Warning:** {counts.flagged:,} videos of this manifest are marked removed in the report "
                "(this is not the cleaned manifest).",
                "",
            ]
    return lines


def _built_section(summaries: list[dict], skipped: list[str], cfg: CardConfig) -> list[str]:
    command = ["weaksup card", f"--manifest {Path(cfg.manifest).name}", f"--out {Path(cfg.out).name}"]
    if cfg.fetched is not None:
        command.append(f"--fetched {Path(cfg.fetched).name}")
    if cfg.dedupe_report is not None:
        command.append(f"--dedupe-report {Path(cfg.dedupe_report).name}")
    lines = ["## How it was built", ""]
    lines += ["Versions (of this card's run):", ""]
    lines += _table(("#", "package", "version"), [(i + 1, k, v) for i, (k, v) in enumerate(versions().items())]) + [""]
    lines += ["This card: `" + " ".join(command) + "`.", ""]
    if not summaries:
        lines += [
            "No stage summaries (`*.summary.json`) were found beside the manifest; the settings are not recorded.",
            "",
        ]
    for s in summaries:
        data, stage = s["data"], s["stage"]
        settings = [(k, data[k]) for k in STAGE_SETTINGS.get(stage or "", ()) if k in data and data[k] is not None]
        lines += [f"### {stage or 'Unrecognised summary'} (`{s['file']}`)", ""]
        if settings:
            lines += _table(("#", "setting", "value"), [(i + 1, k, v) for i, (k, v) in enumerate(settings)]) + [""]
        lines += [
            "<details><summary>the whole summary</summary>",
            "",
            "```json",
            json.dumps(data, indent=2, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    for line in skipped:
        lines += [f"Skipped {line}.", ""]
    return lines


@output_set()  # the card and its plot: both or neither
def write_card(cfg: CardConfig) -> dict[str, Any]:
    """Write the dataset card ``cfg.out`` (Markdown) and its label plot beside it; returns a summary.

    Reads the manifest (a local ``.parquet`` or a folder of parts: ``video_id``, ``label_id``,
    ``label``, and ``duration_s``, ``url``, ``licence``/``license`` when present), the
    ``*.summary.json`` files beside it (and beside ``cfg.fetched``), the fetch table's
    ``status``/``error``/``retryable``/``bytes`` and dedupe's overlaps report when given.
    """
    require_local_output(cfg.out)
    if cfg.top < 1 or cfg.bottom < 0:
        raise InputError(f"--top {cfg.top} / --bottom {cfg.bottom}: top must be at least 1, bottom 0 or more")
    out = Path(cfg.out)
    if out.is_dir():
        raise InputError(f"{out}: is a directory, expected the card's file path (e.g. DATASET_CARD.md)")
    files = _manifest_files(cfg.manifest)
    report = _read_report(Path(cfg.dedupe_report)) if cfg.dedupe_report is not None else None
    fetched = _read_fetched(Path(cfg.fetched)) if cfg.fetched is not None else None
    counts = _count_manifest(files, report["removed_ids"] if report is not None else None)
    summaries, skipped = _read_summaries(*_summary_files(Path(cfg.manifest), cfg.fetched))

    ids = np.array(sorted(counts.label_rows), np.int64)
    per_label = np.array([counts.label_rows[i] for i in ids.tolist()], np.int64)
    png = plot_path(out)
    size = plot_labels(ids, per_label, counts.names, cfg.top, png)
    manifest = Path(cfg.manifest)
    title = (
        cfg.title
        or (manifest.parent.name if manifest.stem in ("manifest", "") or manifest.is_dir() else manifest.stem)
        or "weaksup dataset"
    )
    licences = _licence_ids(counts)

    lines = _front_matter(title, counts.rows, licences)
    lines += [f"# {title}", ""]
    lines += [
        f"A weakly-supervised video classification dataset built with weaksup from the hashtags of web videos: "
        f"{counts.rows:,} videos, {len(ids):,} labels. Each video has one label, drawn from the labels whose hashtags "
        "it carries; such labels are noisy (a hashtag is not an annotation).",
        "",
        "## Summary",
        "",
    ]
    facts = [
        ("videos", counts.rows),
        ("labels", len(ids)),
        ("manifest", f"`{manifest.name}`" + (f" ({len(files)} parts)" if len(files) > 1 else "")),
    ]
    if counts.with_duration:
        facts.append(("hours of video (known durations)", round(counts.seconds / 3600, 2)))
        facts.append(("videos with a known duration", counts.with_duration))
    facts.append(("columns", ", ".join(f"`{c}`" for c in counts.columns)))
    lines += ["| what | value |", "|---|---|"] + [
        f"| {k} | {v if isinstance(v, str) else _cell(v)} |" for k, v in facts
    ]
    lines.append("")
    lines += _labels_section(counts, ids, per_label, cfg, png.name)
    lines += _sources_section(counts)
    lines += _rejects_section(summaries, fetched, report, cfg, counts)
    lines += _built_section(summaries, skipped, cfg)
    lines += [
        "## Intended use and limitations",
        "",
        "Pre-training of video models (one label per video, or multi-label from `matched_label_ids`). Labels come "
        "from hashtags and are noisy; the label distribution has a long tail (see above). The videos remain their "
        "authors' works: use them only under their licences and the terms of their sources, and honour removal "
        "requests.",
        "",
    ]
    text = "\n".join(lines)
    with atomic_output(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return {
        "card": str(out),
        "plot": str(png),
        "plot_size": f"{size[0]}x{size[1]}",
        "videos": counts.rows,
        "labels": len(ids),
        "licences": dict(counts.licences) if counts.licence_column else "not recorded",
        "hosts": len(counts.hosts) if counts.url_column else "not recorded",
        "fetched": fetched is not None,
        "dedupe_report": report is not None,
        "summaries": [s["file"] for s in summaries],
    }
