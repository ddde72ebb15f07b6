"""`weaksup label-audit`: which hashtags brought each label its videos, and what those videos show.

Hashtag labels over-generate: ``#bowl`` puts salad bowls into "bowling", ``#crawl`` puts
pub crawls into "crawling baby". The manifest's ``matched_hashtags`` (written by
``match``: a video's tags that are relevant hashtags of its drawn label) say why each video
got its label; this stage turns them into something a person can check in minutes:

* ``tag_shares.parquet``: per (label, hashtag) the videos of the label carrying the tag and
  their share of the label's videos, ranked: a tag with a large share that does not mean
  the label is the one to drop or qualify;
* ``contact_sheets/<label_id>_<slug>.png``: per label the middle frame of up to N of its
  videos, a reproducible sample (the N smallest hashes of ``(seed, video_id)``, so the
  sample does not depend on row order and N=6 is part of N=12), each captioned with its
  video id and matched hashtags, titled with the label's video count and top tags;
* ``summary.json``: counts, each label's top-3 tags with shares, unreadable videos, paths.

The manifest is streamed in record batches (tag counts and the per-label samples are the
only state), so a 65M-row manifest needs memory for its (label, tag) pairs and N videos
per label, not for its rows. Frames come from the project's clip decoder
(:func:`weaksup.data.decode_clip.read_clip`: one frame at mid-duration, seek with
fallback, display rotation applied); a video that does not decode becomes a grey tile
captioned with the reason, never an error.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weaksup import uris
from weaksup.errors import InputError, first_line, one_line
from weaksup.hashing import stable_hash64
from weaksup.outputs import atomic_output, output_set, require_local_output
from weaksup.tables import check_table, load_schema, not_parquet, write_json, write_table

TAG_SHARES_FILE = "tag_shares.parquet"
SHEETS_DIR = "contact_sheets"
SUMMARY_FILE = "summary.json"
SAMPLE_SALT = "label-audit"  # keeps the audit sample apart from other (seed, video_id) draws
SUMMARY_TOP_TAGS = 3  # tags per label in summary.json
TITLE_TOP_TAGS = 8  # tags per label in a contact sheet's title
UNREADABLE_GREY = (0.5, 0.5, 0.5)  # an unreadable video's tile
COLUMNS = 4  # tiles per row of a contact sheet
TILE_W_IN, TILE_H_IN = 4.0, 3.0  # one tile's box (the frame keeps its aspect ratio inside it)
DPI = 100
MIN_WIDTH_IN = 12.5  # sheets are at least 1250 px wide
CAPTION_PT, TITLE_PT, TAGS_PT = 9, 15, 11
CAPTION_CHARS = 44  # characters per caption line at CAPTION_PT in a TILE_W_IN-wide tile
CAPTION_TAG_LINES = 3  # lines of hashtags under a tile before "(+k more)"
FRAME_SHORT_SIDE = 288  # decoded frames' short side in pixels (a tile is 300 px high)


@dataclass(frozen=True)
class LabelAuditConfig:
    """One ``weaksup label-audit`` job."""

    manifest: Path  # manifest from match (a .parquet file or a folder of parts) with matched_hashtags
    out: Path  # output folder: tag_shares.parquet, contact_sheets/, summary.json
    videos_per_label: int = 12  # videos sampled per label for its contact sheet
    labels: Path | None = None  # labels table (build-labels): count only tags that are hashtags of the video's label
    seed: int = 0  # seed of the per-label sample (a function of (seed, video_id) only)
    progress: bool = True  # progress bars on the terminal
    batch_size: int = 1 << 18  # manifest rows per streamed batch


@dataclass(frozen=True)
class LabelAuditResult:
    """What a label audit wrote."""

    summary: dict[str, Any]  # the content of summary.json
    tag_shares: Path
    sheets: dict[int, Path]  # label_id -> its contact sheet
    summary_path: Path


@dataclass
class _Scan:
    """What one pass over the manifest keeps: per-label counts, (label, tag) counts, samples."""

    videos: int = 0
    without_tags: int = 0  # videos none of whose matched hashtags count (empty, null, or another label's)
    null_tags: int = 0  # videos whose matched_hashtags is null
    label_videos: dict[int, int] | None = None
    names: dict[int, str] | None = None
    pairs: pa.Table | None = None  # label_id, hashtag, videos
    sample: pa.Table | None = None  # label_id, hash, video_id, uri, tags: the N smallest hashes per label


def slug(label: str, limit: int = 60) -> str:
    """A file-name-safe form of a label name: ASCII letters and digits joined by ``_``."""
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^0-9a-z]+", "_", text).strip("_")[:limit].rstrip("_")
    return text or "label"


def format_share(share: float) -> str:
    """A share as a short percentage: 62%, 4.5%, <0.1%."""
    pct = 100.0 * share
    if pct >= 10 or pct == 0:
        return f"{pct:.0f}%"
    return f"{pct:.1f}%" if pct >= 0.1 else "<0.1%"


def _check(cfg: LabelAuditConfig) -> tuple[Any, list[str]]:
    """Refuse bad options and inputs before any work; the manifest's dataset and columns to read."""
    import pyarrow.dataset as ds

    if cfg.videos_per_label < 1:
        raise InputError(f"--videos-per-label {cfg.videos_per_label}: must be at least 1")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size {cfg.batch_size}: must be at least 1")
    require_local_output(cfg.out)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory (label-audit writes a directory)")
    uris.check_input_file(cfg.manifest, "manifest .parquet", folder_ok=True)
    label = uris.display(cfg.manifest)
    try:
        dataset = ds.dataset(
            str(uris.local_path(cfg.manifest)) if uris.is_local(cfg.manifest) else str(cfg.manifest), format="parquet"
        )
        schema = dataset.schema
    except Exception as exc:  # pyarrow raises several types for non-Parquet files
        raise not_parquet(label, exc) from None
    if "matched_hashtags" not in schema.names:
        raise InputError(f"{label}: manifest has no matched_hashtags column: rerun match to get matched_hashtags")
    columns = ["video_id", "uri", "label_id", "label", "matched_hashtags"]
    check_table(schema.empty_table(), load_schema("manifest").subset(columns), label)
    return dataset, columns


def _label_tags(tags: pa.Array, label_id: np.ndarray, index: Any | None) -> pa.ListArray:
    """Per row, its matched hashtags that belong to its label: all of them (nulls and empty
    strings dropped) without a labels table; with one, those that are relevant hashtags of
    the row's label (a manifest whose matched_hashtags hold other labels' tags too)."""
    from weaksup.assembly.match import tags_of_label

    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks()
    flat = pc.list_flatten(tags)
    parents = pc.list_parent_indices(tags).to_numpy(zero_copy_only=False)
    ok = pc.and_(pc.is_valid(flat), pc.not_equal(pc.utf8_length(pc.fill_null(flat, "")), 0))
    if index is not None:
        pos = pc.index_in(flat, value_set=index.tags)
        ok = pc.and_(ok, pos.is_valid())
    ok_np = ok.to_numpy(zero_copy_only=False)
    counts = np.bincount(parents[ok_np], minlength=len(tags))
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    if index is None:
        return pa.ListArray.from_arrays(offsets, flat.filter(ok).cast(pa.string()))
    positions = pa.ListArray.from_arrays(offsets, pos.filter(ok).cast(pa.int64()))
    return tags_of_label(positions, label_id, index)


def _check_label_space(index: Any, labels: Path, manifest: Path, label_id: np.ndarray, names: pa.Array) -> None:
    """The manifest's (label_id, label) pairs must be those of the labels table."""
    bad = (label_id < 0) | (label_id >= len(index))
    if bad.any():
        raise InputError(
            f"{labels}: has no label_id {int(label_id[bad][0])} (used in {manifest}): "
            "not the label space of this manifest"
        )
    expected = pa.array(index.names, pa.string()).take(pa.array(label_id))
    differ = pc.fill_null(pc.not_equal(expected, names.cast(pa.string())), True).to_numpy(zero_copy_only=False)
    if differ.any():
        i = int(np.flatnonzero(differ)[0])
        raise InputError(
            f"{labels}: label_id {int(label_id[i])} is {expected[i].as_py()!r} there but "
            f"{names[i].as_py()!r} in {manifest}: not the label space of this manifest"
        )


def _smallest_per_label(label_id: np.ndarray, hashes: np.ndarray, n: int) -> np.ndarray:
    """Row indices of the ``n`` smallest hashes of each label, grouped by label, by hash."""
    if label_id.size == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((hashes, label_id))
    ordered = label_id[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    sizes = np.diff(np.append(starts, ordered.size))
    rank = np.arange(ordered.size) - np.repeat(starts, sizes)
    return order[rank < n]


def _merge_pairs(pairs: pa.Table | None, new: pa.Table) -> pa.Table:
    """Sum (label_id, hashtag) video counts."""
    table = new if pairs is None else pa.concat_tables([pairs, new])
    summed = table.group_by(["label_id", "hashtag"]).aggregate([("videos", "sum")])
    return summed.rename_columns({"videos_sum": "videos"}).select(["label_id", "hashtag", "videos"])


def _scan(cfg: LabelAuditConfig, dataset: Any, columns: list[str], index: Any | None) -> _Scan:
    """One streamed pass: videos per label, (label, tag) counts, each label's sample."""
    from weaksup.progress import count_progress

    schema = load_schema("manifest").subset(columns)
    label = uris.display(cfg.manifest)
    scan = _Scan(label_videos={}, names={})
    n = cfg.videos_per_label
    total = dataset.count_rows()
    with count_progress(cfg.progress, "label-audit: read manifest") as bar:
        task = bar.add_task("read", total=total)
        for batch in dataset.to_batches(columns=columns, batch_size=cfg.batch_size):
            if batch.num_rows == 0:
                continue
            table = check_table(pa.Table.from_batches([batch]), schema, label).combine_chunks()
            label_id = table.column("label_id").to_numpy().astype(np.int64)
            names = table.column("label").combine_chunks()
            if index is not None:
                _check_label_space(index, cfg.labels, cfg.manifest, label_id, names)
            ids, first, counts = np.unique(label_id, return_index=True, return_counts=True)
            first_names = names.take(pa.array(first)).to_pylist()
            for i, f_name, c in zip(ids.tolist(), first_names, counts.tolist()):
                scan.label_videos[i] = scan.label_videos.get(i, 0) + c
                scan.names.setdefault(i, f_name)
            scan.videos += table.num_rows

            matched = table.column("matched_hashtags").combine_chunks()
            scan.null_tags += matched.null_count
            tags = _label_tags(matched, label_id, index)
            lengths = pc.list_value_length(tags).to_numpy(zero_copy_only=False)
            scan.without_tags += int((lengths == 0).sum())
            parents = pc.list_parent_indices(tags).to_numpy(zero_copy_only=False)
            if parents.size:
                flat = pc.list_flatten(tags)
                pairs = pa.table(
                    {
                        "label_id": pa.array(label_id[parents], pa.int32()),
                        "hashtag": flat,
                        "row": pa.array(parents, pa.int64()),
                    }
                )
                counted = pairs.group_by(["label_id", "hashtag"]).aggregate([("row", "count_distinct")])
                counted = counted.rename_columns({"row_count_distinct": "videos"}).select(
                    ["label_id", "hashtag", "videos"]
                )
                scan.pairs = _merge_pairs(
                    scan.pairs,
                    counted.cast(
                        pa.schema([("label_id", pa.int32()), ("hashtag", pa.string()), ("videos", pa.int64())])
                    ),
                )

            vid = table.column("video_id").combine_chunks()
            hashes = stable_hash64(vid, cfg.seed, SAMPLE_SALT)
            keep = pa.array(_smallest_per_label(label_id, hashes, n))
            candidates = pa.table(
                {
                    "label_id": pa.array(label_id, pa.int64()).take(keep),
                    "hash": pa.array(hashes, pa.uint64()).take(keep),
                    "video_id": vid.take(keep).cast(pa.string()),
                    "uri": table.column("uri").combine_chunks().take(keep).cast(pa.string()),
                    "tags": tags.take(keep),
                }
            )
            if scan.sample is not None:
                candidates = pa.concat_tables([scan.sample, candidates]).combine_chunks()
            keep = _smallest_per_label(
                candidates.column("label_id").to_numpy(), candidates.column("hash").to_numpy(), n
            )
            scan.sample = candidates.take(pa.array(keep))
            bar.advance(task, batch.num_rows)
    return scan


def tag_share_table(scan: _Scan) -> pa.Table:
    """The tag_shares rows: per label, its hashtags by videos (descending), then by name."""
    empty = {
        "label_id": pa.array([], pa.int32()),
        "label": pa.array([], pa.string()),
        "hashtag": pa.array([], pa.string()),
        "videos": pa.array([], pa.int64()),
        "share": pa.array([], pa.float64()),
        "rank": pa.array([], pa.int32()),
    }
    if scan.pairs is None or scan.pairs.num_rows == 0:
        return pa.table(empty)
    pairs = scan.pairs.sort_by([("label_id", "ascending"), ("videos", "descending"), ("hashtag", "ascending")])
    label_id = pairs.column("label_id").to_numpy().astype(np.int64)
    videos = pairs.column("videos").to_numpy()
    starts = np.flatnonzero(np.concatenate([[True], label_id[1:] != label_id[:-1]]))
    rank = np.arange(label_id.size) - np.repeat(starts, np.diff(np.append(starts, label_id.size))) + 1
    totals = np.array([scan.label_videos[i] for i in label_id.tolist()], np.float64)
    return pa.table(
        {
            "label_id": pa.array(label_id, pa.int32()),
            "label": pa.array([scan.names[i] for i in label_id.tolist()], pa.string()),
            "hashtag": pairs.column("hashtag"),
            "videos": pa.array(videos, pa.int64()),
            "share": pa.array(videos / totals, pa.float64()),
            "rank": pa.array(rank, pa.int32()),
        }
    )


def middle_frame(uri: str) -> np.ndarray:
    """RGB (H, W, 3) uint8 frame at mid-duration (the first frame when the duration is
    unknown; the last when the stated duration overstates the video), upright, short side
    :data:`FRAME_SHORT_SIDE`. Raises with a one-line reason when nothing decodes."""
    from weaksup.data.decode_clip import read_clip

    clip = read_clip(
        uri, start_s=lambda info: (info.duration_s or 0.0) / 2.0, num_frames=1, short_side=FRAME_SHORT_SIDE
    )
    return np.ascontiguousarray(clip.frames[0])


def unreadable_reason(uri: str, exc: BaseException) -> str:
    """One line: why the video did not decode, without the uri the message may start with."""
    text = first_line(exc) or type(exc).__name__
    for prefix in (f"{uri}: ", f"{uris.display(uri)}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _caption(video_id: str, tags: list[str], reason: str | None) -> str:
    """A tile's caption: the video id, then its matched hashtags (or why it is unreadable), wrapped."""
    head = video_id if len(video_id) <= CAPTION_CHARS else video_id[: CAPTION_CHARS - 1] + "…"
    if reason is not None:
        body = textwrap.wrap(f"unreadable: {reason}", CAPTION_CHARS)[:CAPTION_TAG_LINES]
    elif not tags:
        body = ["(no matched hashtags)"]
    else:
        words = [f"#{t}" for t in tags]
        body = textwrap.wrap(" ".join(words), CAPTION_CHARS)
        keep = len(words)
        while len(body) > CAPTION_TAG_LINES and keep > 1:  # as many tags as fit, then how many more
            keep -= 1
            body = textwrap.wrap(" ".join(words[:keep]) + f" … (+{len(words) - keep} more)", CAPTION_CHARS)
        body = body[:CAPTION_TAG_LINES]
    return "\n".join([head, *body])


@dataclass(frozen=True)
class Tile:
    """One video on a contact sheet: its frame, or the reason it has none."""

    video_id: str
    tags: tuple[str, ...]
    frame: np.ndarray | None
    reason: str | None = None  # set when the video did not decode


def draw_contact_sheet(path: Path, title: str, tag_line: str, tiles: list[Tile]) -> None:
    """A grid of captioned frames under a title, written atomically as PNG (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(1, min(COLUMNS, len(tiles)))
    rows = max(1, -(-len(tiles) // cols))
    width = max(MIN_WIDTH_IN, cols * TILE_W_IN + 0.5)
    tag_lines = textwrap.wrap(tag_line, int(width * 72 / (TAGS_PT * 0.6))) or [""]
    header = 0.35 + TITLE_PT / 72 * 1.5 + len(tag_lines) * TAGS_PT / 72 * 1.4 + 0.15
    captions = [_caption(t.video_id, list(t.tags), t.reason) for t in tiles]
    caption_h = max((c.count("\n") + 1 for c in captions), default=1) * CAPTION_PT / 72 * 1.3 + 0.25
    row_h = TILE_H_IN + caption_h
    height = header + rows * row_h + 0.2
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.text(0.5, 1 - 0.3 / height, title, ha="center", va="top", fontsize=TITLE_PT, fontweight="bold")
    fig.text(
        0.5,
        1 - (0.35 + TITLE_PT / 72 * 1.5) / height,
        "\n".join(tag_lines),
        ha="center",
        va="top",
        fontsize=TAGS_PT,
        linespacing=1.3,
    )
    left0 = (width - cols * TILE_W_IN) / 2
    pad = 0.08
    for k, (tile, caption) in enumerate(zip(tiles, captions)):
        r, c = divmod(k, cols)
        x = left0 + c * TILE_W_IN
        top = height - header - r * row_h
        ax = fig.add_axes(
            ((x + pad) / width, (top - TILE_H_IN) / height, (TILE_W_IN - 2 * pad) / width, (TILE_H_IN - pad) / height)
        )
        if tile.frame is not None:
            ax.imshow(tile.frame)
            ax.set_axis_off()
        else:
            ax.set_facecolor(UNREADABLE_GREY)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.text(
                0.5,
                0.5,
                "unreadable",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="white",
                fontsize=TITLE_PT,
                fontweight="bold",
            )
        fig.text(
            (x + TILE_W_IN / 2) / width,
            (top - TILE_H_IN - 0.05) / height,
            caption,
            ha="center",
            va="top",
            fontsize=CAPTION_PT,
            linespacing=1.2,
            color="darkred" if tile.reason is not None else "black",
        )
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")


def _ranges(label_id: np.ndarray, wanted: list[int]) -> dict[int, tuple[int, int]]:
    """Row range [start, end) of each wanted label in rows sorted by label_id."""
    starts = np.searchsorted(label_id, wanted, side="left")
    ends = np.searchsorted(label_id, wanted, side="right")
    return {w: (int(s), int(e)) for w, s, e in zip(wanted, starts.tolist(), ends.tolist())}


def _top_tags_lookup(shares: pa.Table, label_ids: list[int]) -> Callable[[int, int], list[dict[str, Any]]]:
    """``top_tags(label_id, k)``: a label's first k rows of the ranked tag_shares table, read once into lists."""
    share_at = _ranges(shares.column("label_id").to_numpy().astype(np.int64), label_ids)  # by label, then rank
    share_cols = {c: shares.column(c).to_pylist() for c in ("hashtag", "videos", "share")}

    def top_tags(label_id: int, k: int) -> list[dict[str, Any]]:
        start, end = share_at[label_id]
        return [
            {
                "hashtag": share_cols["hashtag"][i],
                "videos": share_cols["videos"][i],
                "share": round(share_cols["share"][i], 4),
            }
            for i in range(start, min(end, start + k))
        ]

    return top_tags


def _label_tiles(label_id: int, rows: list[dict[str, Any]], unreadable: list[dict[str, Any]]) -> list[Tile]:
    """A label's sampled videos as tiles; one that does not decode is a grey tile and is added to ``unreadable``."""
    tiles = []
    for row in rows:
        try:
            frame, reason = middle_frame(row["uri"]), None
        except Exception as exc:  # noqa: BLE001 - any decode failure is a grey tile, not a stop
            frame, reason = None, unreadable_reason(row["uri"], exc)
            unreadable.append({"label_id": label_id, "video_id": row["video_id"], "uri": row["uri"], "reason": reason})
        tiles.append(Tile(row["video_id"], tuple(dict.fromkeys(row["tags"] or ())), frame, reason))
    return tiles


def _draw_sheets(
    cfg: LabelAuditConfig, scan: _Scan, shares: pa.Table, out: Path
) -> tuple[dict[int, Path], list[dict[str, Any]], list[dict[str, Any]]]:
    """Draw every label's contact sheet; the sheets by label, the unreadable videos and the per-label summary rows."""
    from weaksup.progress import count_progress

    label_ids = sorted(scan.label_videos)
    sample = scan.sample  # grouped by label_id (ascending), then by hash
    sample_at = _ranges(sample.column("label_id").to_numpy(), label_ids)
    top_tags = _top_tags_lookup(shares, label_ids)
    sheets: dict[int, Path] = {}
    unreadable: list[dict[str, Any]] = []
    per_label: list[dict[str, Any]] = []
    with count_progress(cfg.progress, "label-audit: contact sheets") as bar:
        task = bar.add_task("sheets", total=len(label_ids))
        for label_id in label_ids:
            name, n_videos = scan.names[label_id], scan.label_videos[label_id]
            start, end = sample_at[label_id]
            tiles = _label_tiles(label_id, sample.slice(start, end - start).to_pylist(), unreadable)
            top_title = top_tags(label_id, TITLE_TOP_TAGS)
            tag_line = "top tags: " + (
                "  ·  ".join(f"#{t['hashtag']} {format_share(t['share'])}" for t in top_title)
                if top_title
                else "(no matched hashtags)"
            )
            title = f"{name} (label {label_id}): {n_videos} video{'s' if n_videos != 1 else ''}, {len(tiles)} shown"
            path = out / SHEETS_DIR / f"{label_id}_{slug(name)}.png"
            draw_contact_sheet(path, title, tag_line, tiles)
            sheets[label_id] = path
            per_label.append(
                {
                    "label_id": label_id,
                    "label": name,
                    "videos": n_videos,
                    "top_tags": top_tags(label_id, SUMMARY_TOP_TAGS),
                    "shown": len(tiles),
                    "unreadable": sum(t.reason is not None for t in tiles),
                    "sheet": str(path),
                }
            )
            bar.advance(task)
    return sheets, unreadable, per_label


def _audit_summary(
    cfg: LabelAuditConfig,
    scan: _Scan,
    shares: pa.Table,
    sheets: dict[int, Path],
    unreadable: list[dict[str, Any]],
    per_label: list[dict[str, Any]],
    out: Path,
) -> dict[str, Any]:
    """The content of summary.json: options, counts, the first unreadable videos, each label's row, the paths."""
    return {
        "manifest": str(cfg.manifest),
        "labels_table": str(cfg.labels) if cfg.labels is not None else None,
        "seed": cfg.seed,
        "videos_per_label": cfg.videos_per_label,
        "labels": len(scan.label_videos),
        "videos": scan.videos,
        "videos_without_matched_hashtags": scan.without_tags,
        "tags": int(pc.count_distinct(shares.column("hashtag")).as_py()) if shares.num_rows else 0,
        "label_tag_pairs": shares.num_rows,
        "sheets_written": len(sheets),
        "videos_shown": scan.sample.num_rows,
        "unreadable_videos": len(unreadable),
        "unreadable": unreadable[:100],  # the first 100; the count above is the total
        "per_label": per_label,
        "outputs": {
            "tag_shares": str(out / TAG_SHARES_FILE),
            "contact_sheets": str(out / SHEETS_DIR),
            "summary": str(out / SUMMARY_FILE),
        },
    }


@output_set()  # tag shares, every contact sheet and the summary: all or none
def audit_labels(cfg: LabelAuditConfig) -> LabelAuditResult:
    """Count each label's matched hashtags, draw its contact sheet, write the summary (see the module doc)."""
    from weaksup.assembly.match import HashtagIndex

    dataset, columns = _check(cfg)
    index = HashtagIndex.from_labels(Path(cfg.labels)) if cfg.labels is not None else None
    scan = _scan(cfg, dataset, columns, index)
    if scan.videos == 0:
        raise InputError(f"{uris.display(cfg.manifest)}: manifest has no rows")
    if scan.null_tags == scan.videos:  # a table conformed to the schema without them: nulls only
        raise InputError(
            f"{uris.display(cfg.manifest)}: matched_hashtags is null in every row: rerun match to get matched_hashtags"
        )

    out = Path(cfg.out)
    try:
        (out / SHEETS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({one_line(exc, with_type=False)})") from None
    shares = tag_share_table(scan)
    write_table("tag_shares", shares, out / TAG_SHARES_FILE)
    sheets, unreadable, per_label = _draw_sheets(cfg, scan, shares, out)
    summary_path = out / SUMMARY_FILE
    summary = _audit_summary(cfg, scan, shares, sheets, unreadable, per_label, out)
    write_json(summary, summary_path)
    return LabelAuditResult(summary, out / TAG_SHARES_FILE, sheets, summary_path)
