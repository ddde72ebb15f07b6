"""Temporal splits (paper Sec. 4.3.1, Table 3): short, long and long-center clip datasets.

``make_splits`` joins the manifest with the probe table and keeps the videos whose
duration lies in the kind's bounds: *short* = videos of 1-5 s, *long* = 55-60 s, both
used whole; *long-center* = the same videos as *long* but only their central 4 s. The
clips are virtual (a window into the source), so no video is touched; two budgets
reproduce the paper's comparisons: a fixed number of videos (F1) or a fixed total clip
duration (F2), both filled in the stable ``(seed, video_id)`` priority order so every
kind with the same candidates takes the same videos.

``materialize_clips`` optionally cuts each window into its own small file (short side
rescaled, short GOP, no audio) so training decodes fast; it is a resumable bulk job.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris
from weaksup.assembly.videos import iter_video_ids, open_table, videos_input
from weaksup.blocks import PartStore, TableInput
from weaksup.bulk import BulkConfig, part_store, run_bulk
from weaksup.duplicate_ids import id_hashes, repeated_id_hashes, repeated_values
from weaksup.errors import InputError
from weaksup.hashing import stable_hash64, stable_uniform
from weaksup.outputs import atomic_output, atomic_path, output_set, require_local_output, side_path
from weaksup.ray_engine import check_engine, ray_session
from weaksup.tables import RowGroupWriter, conform, load_schema, open_parquet, read_table, write_json, write_table

KINDS: tuple[str, ...] = ("short", "long", "long-center")
# Paper Table 3 duration bounds in seconds, inclusive.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "short": (1.0, 5.0),
    "long": (55.0, 60.0),
    "long-center": (55.0, 60.0),
}
PRIORITY_SALT = "splits"

MATERIALIZED_TABLE = "materialized.parquet"
MATERIALIZED_CLIPS = "clips.parquet"
MATERIALIZED_SUMMARY = "materialized.summary.json"


@dataclass(frozen=True)
class SplitsConfig:
    """One temporal split: inputs, kind, duration bounds and an optional F1/F2 budget.

    ``min_s``/``max_s`` default to the paper's bounds for ``kind``; ``center_s`` is the
    long-center window; ``max_videos`` fixes the number of videos (F1) and
    ``total_duration_s`` the summed clip duration (F2).
    """

    manifest: Path
    probe: Path | None
    kind: str
    out: Path
    min_s: float | None = None
    max_s: float | None = None
    center_s: float = 4.0
    total_duration_s: float | None = None
    max_videos: int | None = None
    seed: int = 0

    def bounds(self) -> tuple[float, float]:
        lo, hi = DEFAULT_BOUNDS[self.kind]
        return (lo if self.min_s is None else float(self.min_s), hi if self.max_s is None else float(self.max_s))

    def validate(self) -> None:
        """Raise InputError for options that cannot give a meaningful split."""
        if self.kind not in KINDS:
            raise InputError(f"unknown split kind {self.kind!r}; known: {', '.join(KINDS)}")
        lo, hi = self.bounds()
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or lo > hi:
            raise InputError(f"duration bounds must satisfy 0 <= min-s <= max-s (got min-s {lo:g}, max-s {hi:g})")
        if not (math.isfinite(self.center_s) and self.center_s > 0):
            raise InputError(f"center-s must be a positive number of seconds (got {self.center_s:g})")
        if self.kind == "long-center" and lo < self.center_s:
            raise InputError(
                f"long-center needs min-s >= center-s so every video holds the whole window (min-s {lo:g}, "
                f"center-s {self.center_s:g})"
            )
        if self.max_videos is not None and self.max_videos < 0:
            raise InputError(f"max-videos must be >= 0 (got {self.max_videos})")
        if self.total_duration_s is not None and not (
            self.total_duration_s >= 0 and math.isfinite(self.total_duration_s)
        ):
            raise InputError(f"total-duration-s must be a finite number >= 0 (got {self.total_duration_s})")


def summary_path(out: Path) -> Path | str:
    """The JSON summary written beside the clips table."""
    return side_path(out, ".summary.json")


def _float_numpy(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy array with NaN for nulls."""
    arr = pc.fill_null(pc.cast(arr, pa.float64()), float("nan"))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.float64())
    return arr.to_numpy(zero_copy_only=False)


def _durations(manifest: pa.Table, probe: pa.Table | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per manifest row: duration (NaN if unknown), probe-rejected flag, duration-from-probe flag.

    A probe ``ok`` row wins over rejected rows of the same video (a re-probe that
    succeeded); an ``ok`` row without a duration falls back to the manifest's.
    """
    n = manifest.num_rows
    manifest_dur = _float_numpy(manifest.column("duration_s"))
    if probe is None or probe.num_rows == 0:
        return manifest_dur, np.zeros(n, bool), np.zeros(n, bool)
    ids = manifest.column("video_id")
    probe_ids = pc.cast(probe.column("video_id"), ids.type)
    is_ok = pc.fill_null(pc.equal(probe.column("status"), "ok"), False)
    ok_ids = pc.filter(probe_ids, is_ok)
    bad_ids = pc.filter(probe_ids, pc.invert(is_ok))
    idx = pc.index_in(ids, value_set=ok_ids.combine_chunks() if isinstance(ok_ids, pa.ChunkedArray) else ok_ids)
    has_ok = pc.fill_null(pc.is_valid(idx), False).to_numpy(zero_copy_only=False)
    ok_dur = pc.filter(probe.column("duration_s"), is_ok)
    probe_dur = _float_numpy(pc.take(ok_dur, idx)) if len(ok_dur) else np.full(n, np.nan)
    bad_values = bad_ids.combine_chunks() if isinstance(bad_ids, pa.ChunkedArray) else bad_ids
    in_bad = (
        pc.is_in(ids, value_set=bad_values).to_numpy(zero_copy_only=False) if len(bad_values) else np.zeros(n, bool)
    )
    rejected = in_bad & ~has_ok
    from_probe = has_ok & np.isfinite(probe_dur)
    duration = np.where(from_probe, probe_dur, manifest_dur)
    duration[rejected] = np.nan
    return duration, rejected, from_probe


def extra_columns(path: uris.PathOrUri, *schemas: str) -> list[str]:
    """The columns of a Parquet table that none of the tables ``schemas`` declares: provenance
    such as ``match --keep-columns`` added, carried along."""
    declared = {name for schema in schemas for name in load_schema(schema).names}
    return [name for name in open_parquet(path).schema_arrow.names if name not in declared]


def _read_split_inputs(cfg: SplitsConfig) -> tuple[pa.Table, pa.Table | None]:
    """The manifest (refused unless it holds each video once) and the optional probe table, with the
    columns used and the manifest's extra columns (carried into the clips after theirs)."""
    manifest = read_table("manifest", cfg.manifest, columns=["video_id", "uri", "label_id", "label", "duration_s"])
    extras = extra_columns(cfg.manifest, "manifest", "clips")
    if extras:
        carried = read_table("manifest", cfg.manifest, columns=extras)
        for name in extras:
            manifest = manifest.append_column(carried.schema.field(name), carried.column(name))
    probe = None
    if cfg.probe is not None:
        probe = read_table("probe", cfg.probe, columns=["video_id", "status", "duration_s"])
    n = manifest.num_rows
    n_unique = pc.count_distinct(manifest.column("video_id")).as_py() if n else 0
    if n_unique != n:
        raise InputError(
            f"{cfg.manifest}: {n - n_unique} duplicate video_id value(s); a manifest holds each video once"
        )
    return manifest, probe


def _budget_keep(cfg: SplitsConfig, manifest: pa.Table, cand_idx: np.ndarray, clip_len: np.ndarray) -> np.ndarray:
    """Which candidates the F1/F2 budgets keep, filled in a priority order that depends only on (seed, video_id).

    So short, long and long-center with the same seed rank a video the same everywhere.
    """
    keep = np.ones(len(cand_idx), bool)
    if cfg.max_videos is not None or cfg.total_duration_s is not None:
        ids = manifest.column("video_id").take(pa.array(cand_idx, pa.int64()))
        order = np.argsort(stable_uniform(ids, cfg.seed, PRIORITY_SALT), kind="stable")
        keep_sorted = np.ones(len(order), bool)
        if cfg.max_videos is not None:
            keep_sorted[cfg.max_videos :] = False
        if cfg.total_duration_s is not None:
            # never exceed the budget; the small tolerance absorbs float summation error
            keep_sorted &= np.cumsum(clip_len[order]) <= cfg.total_duration_s + 1e-6
        keep[order] = keep_sorted
    return keep


def _clip_windows(cfg: SplitsConfig, sel_dur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each selected video's window (start, end) in seconds: the central ``center_s`` for long-center, else whole."""
    if cfg.kind == "long-center":
        start = (sel_dur - cfg.center_s) / 2.0
        end = start + cfg.center_s
    else:
        start = np.zeros(len(sel_dur))
        end = sel_dur.copy()
    return start, end


def _write_clips(
    kind: str, taken: pa.Table, start: np.ndarray, end: np.ndarray, sel_dur: np.ndarray, out: Path
) -> None:
    """Write the clips table of the selected manifest rows (virtual windows into the sources)."""
    clips = {
        "video_id": taken.column("video_id"),
        "uri": taken.column("uri"),
        "label_id": taken.column("label_id"),
        "label": taken.column("label"),
        "split": pa.repeat(pa.scalar(kind, pa.string()), taken.num_rows),
        "clip_start_s": pa.array(start, pa.float64()),
        "clip_end_s": pa.array(end, pa.float64()),
        "duration_s": pa.array(sel_dur, pa.float64()),
    }
    clips.update({name: taken.column(name) for name in taken.column_names if name not in clips})  # provenance
    write_table("clips", clips, out)


def _split_summary(
    cfg: SplitsConfig,
    n: int,
    counts: dict[str, int],
    taken: pa.Table,
    sel_len: np.ndarray,
    known: np.ndarray,
    from_probe: np.ndarray,
    out: Path,
) -> dict[str, Any]:
    """The summary of one split: bounds, the accounting of every manifest row, the clips' seconds and labels."""
    lo, hi = cfg.bounds()
    labels = taken.column("label_id")
    summary: dict[str, Any] = {
        "kind": cfg.kind,
        "min_s": lo,
        "max_s": hi,
        "manifest_rows": n,
        **counts,
        "duration_from_probe": int(from_probe.sum()),
        "duration_from_manifest": int((known & ~from_probe).sum()),
        "clip_seconds": float(sel_len.sum()),
        "labels": int(pc.count_distinct(labels).as_py()) if taken.num_rows else 0,
        "seed": cfg.seed,
        "out": str(out),
    }
    if cfg.kind == "long-center":
        summary["center_s"] = cfg.center_s
    if cfg.max_videos is not None:
        summary["max_videos"] = cfg.max_videos
    if cfg.total_duration_s is not None:
        summary["total_duration_s"] = cfg.total_duration_s
    return summary


@output_set()  # clips table and summary: both or neither
def make_splits(cfg: SplitsConfig) -> dict[str, Any]:
    """Select the videos of ``cfg.kind``, write their clip windows (table ``clips``) and a summary.

    Every manifest row is accounted for in exactly one of: selected, over_budget,
    too_short, too_long, no_duration, probe_rejected.
    """
    require_local_output(cfg.out)
    cfg.validate()
    out = Path(cfg.out)
    manifest, probe = _read_split_inputs(cfg)
    n = manifest.num_rows

    duration, rejected, from_probe = _durations(manifest, probe)
    lo, hi = cfg.bounds()
    known = np.isfinite(duration)
    no_duration = ~known & ~rejected
    too_short = known & (duration < lo)
    too_long = known & (duration > hi)
    candidate = known & ~too_short & ~too_long

    cand_idx = np.flatnonzero(candidate)
    cand_dur = duration[cand_idx]
    clip_len = np.full(len(cand_idx), cfg.center_s) if cfg.kind == "long-center" else cand_dur
    keep = _budget_keep(cfg, manifest, cand_idx, clip_len)
    sel = cand_idx[keep]
    sel_dur = cand_dur[keep]
    sel_len = clip_len[keep]
    start, end = _clip_windows(cfg, sel_dur)

    taken = manifest.take(pa.array(sel, pa.int64()))
    _write_clips(cfg.kind, taken, start, end, sel_dur, out)

    counts = {
        "selected": int(len(sel)),
        "over_budget": int(len(cand_idx) - len(sel)),
        "too_short": int(too_short.sum()),
        "too_long": int(too_long.sum()),
        "no_duration": int(no_duration.sum()),
        "probe_rejected": int(rejected.sum()),
    }
    if sum(counts.values()) != n:  # the categories are exclusive by construction
        raise RuntimeError(f"splits accounting mismatch: {counts} for {n} manifest rows")
    summary = _split_summary(cfg, n, counts, taken, sel_len, known, from_probe, out)
    write_json(summary, summary_path(out))
    return summary


# --------------------------------------------------------------------------- materialize

_TIME_EPS = 1e-3  # seconds; absorbs container time-base rounding of frame timestamps
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")


@dataclass(frozen=True)
class CutSettings:
    """Encoder settings for cut clips (picklable, sent to the bulk workers)."""

    short_side: int = 128
    gop: int = 16
    codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"


def clip_file_name(video_id: str) -> str:
    """``{video_id}.mp4``, or a sanitised name plus a hash when the id is not a safe file name."""
    if _SAFE_NAME.fullmatch(video_id) and not video_id.endswith("."):
        return f"{video_id}.mp4"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._")[:100] or "video"
    digest = int(stable_hash64([video_id], 0, "clip-file")[0])
    return f"{cleaned}-{digest:016x}.mp4"


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side = ``short_side``, aspect kept, both even."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    if width <= height:
        w = short_side
        h = max(2, int(round(height * short_side / width / 2.0)) * 2)
    else:
        h = short_side
        w = max(2, int(round(width * short_side / height / 2.0)) * 2)
    return w, h


class _Reject(Exception):
    """Why one clip is rejected, as ``category: detail`` (the summary counts categories)."""

    def __init__(self, category: str, detail: str = "") -> None:
        super().__init__(f"{category}: {detail}" if detail else category)


def _open_video(path: str) -> tuple[Any, Any]:
    """Open ``path`` and its video stream (cover art skipped) the way every stage does
    (:func:`weaksup.video_io.open_video_stream`); unreadable files become a _Reject."""
    from weaksup.video_io import NoVideoStream, failure_reason, open_video_stream

    try:
        container, stream = open_video_stream(path)
    except FileNotFoundError:
        raise _Reject("source not found", path) from None
    except NoVideoStream:
        raise _Reject("no video stream", path) from None
    except Exception as exc:  # noqa: BLE001 - empty, not a video, truncated, unreachable store, ...
        raise _Reject("unreadable source", failure_reason(exc)) from exc
    stream.thread_type = "AUTO"
    return container, stream


def _seek(container: Any, stream: Any, seconds: float) -> None:
    """Seek to the keyframe at or before ``seconds`` (a module-level hook so tests can break it)."""
    from weaksup.video_io import seek_keyframe

    seek_keyframe(container, stream, seconds)


def _timed(container: Any, stream: Any) -> Iterator[tuple[float, Any]]:
    """(seconds since the stream's first frame, frame) in presentation order.

    Windows are relative to the video's start, whatever the container's first timestamp
    (MPEG-TS starts near 1.4 s); a frame without a timestamp gets the previous one plus a frame.
    """
    origin = _origin(stream)
    step = 1.0 / float(stream.average_rate or 25)
    prev: float | None = None
    for frame in container.decode(stream):
        t = frame.time
        t = (0.0 if prev is None else prev + step) if t is None else t - origin
        prev = t
        yield t, frame


def _origin(stream: Any) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _seek_to_window(
    container: Any, stream: Any, start: float
) -> tuple[tuple[float, Any], Iterator[tuple[float, Any]]] | None:
    """Seek before ``start`` and decode the pre-roll; the first in-window frame and the rest.

    None when the seek raised, decoding failed, or it landed after ``start`` (a broken
    index), so the caller decodes linearly instead.
    """
    try:
        _seek(container, stream, start + _origin(stream))
        timed = _timed(container, stream)
        landed = False
        for t, frame in timed:
            if not landed and t > start + _TIME_EPS:
                return None
            landed = True
            if t >= start - _TIME_EPS:
                return (t, frame), timed
    except Exception:  # noqa: BLE001 - any trouble before the window: fall back
        return None
    return None


def _window_frames(path: str, start: float, end: float) -> Iterator[Any]:
    """Decoded frames with ``start <= t < end``: seek to the keyframe before ``start``, drop
    the pre-roll; if the seek fails, decode linearly from the beginning."""
    if start > _TIME_EPS:
        container, stream = _open_video(path)
        try:
            found = _seek_to_window(container, stream, start)
            if found is not None:
                (t, frame), rest = found
                if t < end - _TIME_EPS:
                    yield frame
                    for t, frame in rest:
                        if t >= end - _TIME_EPS:
                            break
                        yield frame
                return
        finally:
            container.close()
    container, stream = _open_video(path)
    try:
        for t, frame in _timed(container, stream):
            if t >= end - _TIME_EPS:
                break
            if t >= start - _TIME_EPS:
                yield frame
    finally:
        container.close()


def _source_rate(path: str) -> Fraction:
    container, stream = _open_video(path)
    try:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    finally:
        container.close()
    return Fraction(rate).limit_denominator(1001)


def _encode_window(source: str, dest: Path, start: float, end: float, settings: CutSettings) -> int:
    """Cut ``[start, end)`` of ``source`` into ``dest`` (temp name, then rename); frames written.

    Frames are re-timed at the source's average rate (constant frame rate output).
    """
    import av

    rate = _source_rate(source)
    tmp = atomic_path(dest)
    n = 0
    try:
        # faststart: the index goes first, so loaders streaming from remote storage start at once
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = None
            for frame in _window_frames(source, start, end):
                if stream is None:
                    stream = out.add_stream(settings.codec, rate=rate)
                    stream.width, stream.height = scaled_size(frame.width, frame.height, settings.short_side)
                    stream.pix_fmt = "yuv420p"
                    stream.codec_context.gop_size = settings.gop
                    if settings.codec in ("libx264", "libx265"):
                        stream.options = {"crf": str(settings.crf), "preset": settings.preset}
                scaled = frame.reformat(
                    width=stream.width, height=stream.height, format="yuv420p", interpolation="AREA"
                )
                scaled.pts = n
                scaled.time_base = 1 / rate
                scaled.pict_type = 0  # AV_PICTURE_TYPE_NONE: source I-frames must not force keyframes
                for packet in stream.encode(scaled):
                    out.mux(packet)
                n += 1
            if stream is None:
                raise _Reject("no frames in window", f"[{start:g}, {end:g}) s")
            for packet in stream.encode():
                out.mux(packet)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def _cut_one(item: dict, settings: CutSettings) -> dict:
    """Bulk worker: one clip -> one ``materialized`` row; never raises (rejects carry a reason)."""
    source, dest = str(item["uri"]), Path(item["dest"])
    row: dict[str, Any] = {
        "video_id": item["video_id"],
        "source_uri": source,
        "uri": None,
        "clip_start_s": item["clip_start_s"],
        "clip_end_s": item["clip_end_s"],
        "n_frames": None,
        "cut_s": None,
    }
    local = source[len("file://") :] if source.startswith("file://") else source
    try:
        if "://" not in local and not os.path.isfile(local):
            raise _Reject("source not found", local)
        n = _encode_window(local, dest, float(item["clip_start_s"]), float(item["clip_end_s"]), settings)
        cut_s = _cut_seconds(str(dest))  # here, where the file is: the driver never opens the cut files
    except Exception as exc:  # noqa: BLE001 - one bad file never kills the job
        if dest.exists():
            dest.unlink()  # a cut from an earlier run must not outlive this rejection
        if isinstance(exc, _Reject):
            error = str(exc)
        else:
            from weaksup.video_io import failure_reason

            error = f"cut failed: {failure_reason(exc)}"
        row.update(status="rejected", error=error)
        return row
    row.update(status="ok", error=None, uri=str(dest), n_frames=n, cut_s=cut_s)
    return row


def materialized_paths(out_dir: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """materialized table, clips table of the cut files and summary inside ``out_dir``."""
    out_dir = Path(out_dir)
    return out_dir / MATERIALIZED_TABLE, out_dir / MATERIALIZED_CLIPS, out_dir / MATERIALIZED_SUMMARY


def _cut_seconds(path: str) -> float:
    """Length of a cut file: frames / rate (exact for the constant-rate files written here)."""
    from weaksup.video_io import failure_reason, open_video_stream

    try:
        container, stream = open_video_stream(path)
    except Exception as exc:  # noqa: BLE001 - missing, empty, not a video, ...: one line either way
        raise InputError(
            f"{path}: cut file missing or unreadable ({failure_reason(exc)}); delete it and rerun to redo it"
        ) from None
    try:
        if stream.frames and stream.average_rate:
            return float(stream.frames / stream.average_rate)
        return float(stream.duration * stream.time_base) if stream.duration else 0.0
    finally:
        container.close()


def check_materialize_options(
    out_dir: str | os.PathLike[str],
    *,
    short_side: int,
    gop: int,
    codec: str,
    crf: int,
    workers: int,
    engine: str = "local",
    ray_address: str | None = None,
) -> None:
    """Refuse bad cut settings in one line, before any table is written (``splits --materialize``
    checks them before selecting)."""
    require_local_output(out_dir)
    if short_side < 2 or short_side % 2:
        raise InputError(f"short-side must be an even number >= 2 (got {short_side})")
    if gop < 1:
        raise InputError(f"gop must be >= 1 (got {gop})")
    if not 0 <= crf <= 63:
        raise InputError(f"crf must be in 0..63 (got {crf})")
    if workers < 0:
        raise InputError(f"workers must be >= 0 (got {workers})")
    check_engine(engine, ray_address)
    import av

    if codec not in av.codecs_available:
        raise InputError(f"unknown codec {codec!r} (no such encoder in PyAV {av.__version__})")


def _read_unique_clips(clips: pa.Table | str | os.PathLike[str]) -> pa.Table:
    """The clips table, refused when a video_id repeats (cut files are named by video_id)."""
    table = clips if isinstance(clips, pa.Table) else read_table("clips", clips)
    n_unique = pc.count_distinct(table.column("video_id")).as_py() if table.num_rows else 0
    if n_unique != table.num_rows:
        raise InputError(
            f"clips: {table.num_rows - n_unique} duplicate video_id value(s); cut files are named by video_id"
        )
    return table


def _check_clips_schema(path: str | os.PathLike[str]) -> None:
    """Every column a clips table must have, from its footer (the values are cast block by block)."""
    names = set(open_table(path).schema.names)
    need = [f.name for f in load_schema("clips").fields if not f.nullable and f.default is None]
    missing = [n for n in need if n not in names]
    if missing:
        raise InputError(f"{uris.display(path)}: missing column(s) {', '.join(missing)} (table 'clips')")


def _check_unique_ids(path: str | os.PathLike[str], source: TableInput, store: PartStore | None) -> None:
    """Refuse a clips table whose video_id repeats: the repeated 64-bit hashes of the ids,
    then the strings of the rare candidate rows. Locally the hashes are sorted here (8 bytes
    a row, transient); with a ``store`` (the Ray engine) Ray tasks sort them
    (:mod:`weaksup.duplicate_ids`) and only the repeated values come back."""
    if store is None:
        hashes = [id_hashes(ids, "video_id") for ids in iter_video_ids(path)]
        values = repeated_values(np.concatenate(hashes) if hashes else np.empty(0, np.uint64))
    else:
        rows = sum(n for *_, n in source.row_groups())
        values = repeated_id_hashes(source, "video_id", "video_id", store=store, rows=rows)
    repeated, seen = 0, set()
    for ids in iter_video_ids(path) if len(values) else ():  # confirm on the strings of the candidates only
        for v in ids.filter(pa.array(np.isin(id_hashes(ids, "video_id"), values))).to_pylist():
            repeated += v in seen
            seen.add(v)
    if repeated:
        raise InputError(f"clips: {repeated} duplicate video_id value(s); cut files are named by video_id")


def cut_items(table: pa.Table, first_row: int, *, out_dir: str) -> list[dict[str, Any]]:
    """A block of the clips table as the cut job's items (read where the work runs)."""
    return _cut_items(table, Path(out_dir))


def _cut_items(table: pa.Table, out_dir: Path) -> list[dict[str, Any]]:
    """One bulk item per clip: its id, source, window and the cut file it goes to."""
    return [
        {"video_id": vid, "uri": uri, "clip_start_s": s, "clip_end_s": e, "dest": str(out_dir / clip_file_name(vid))}
        for vid, uri, s, e in zip(
            table.column("video_id").to_pylist(),
            table.column("uri").to_pylist(),
            table.column("clip_start_s").to_pylist(),
            table.column("clip_end_s").to_pylist(),
        )
    ]


def _aligned(inputs: Iterator[pa.Table], results: Iterator[pa.Table]) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Batches of two tables with the same rows in the same order, cut to the same lengths."""
    buffered = pa.table({})
    for result in results:
        while buffered.num_rows < result.num_rows:
            more = next(inputs)
            buffered = more if buffered.num_columns == 0 else pa.concat_tables([buffered, more])
        yield buffered.slice(0, result.num_rows), result
        buffered = buffered.slice(result.num_rows)


def _cut_clips_block(cut: pa.Table, cut_uris: pa.Array, cut_s: pa.Array) -> tuple[pa.Table, float]:
    """The clips rows of one block's cut files (window = the whole cut, source window kept).
    ``cut_s``: each cut's length as its worker measured it; null only in the parts of an
    older weaksup, whose cut files are then opened here."""
    lengths = cut_s.to_pylist()
    cut_len = pa.array(
        [s if s is not None else _cut_seconds(u) for s, u in zip(lengths, cut_uris.to_pylist())], pa.float64()
    )
    clips = {
        "video_id": cut.column("video_id"),
        "uri": cut_uris,
        "label_id": cut.column("label_id"),
        "label": cut.column("label"),
        "split": cut.column("split"),
        "clip_start_s": pa.array(np.zeros(cut.num_rows), pa.float64()),
        "clip_end_s": cut_len,
        "duration_s": cut_len,
        "source_uri": cut.column("uri"),
        "source_clip_start_s": cut.column("clip_start_s"),
        "source_clip_end_s": cut.column("clip_end_s"),
    }
    clips.update({name: cut.column(name) for name in cut.column_names if name not in clips})  # provenance
    return conform(pa.table(clips), load_schema("clips")), float(pc.sum(cut_len).as_py() or 0.0)


def _write_cut_clips(clips: pa.Table | str | os.PathLike[str], result: Path, clips_path: Path) -> float:
    """Write the clips table of the cut files, block by block (memory: one block); the cut seconds."""
    if isinstance(clips, pa.Table):
        inputs: Iterator[pa.Table] = iter([clips])
    else:
        inputs = (pa.table(b) for b in pq.ParquetFile(clips).iter_batches(batch_size=1 << 16))
    results = (
        pa.table(b) for b in pq.ParquetFile(result).iter_batches(batch_size=1 << 16, columns=["status", "uri", "cut_s"])
    )
    seconds = 0.0
    with atomic_output(clips_path) as tmp:
        writer = RowGroupWriter(tmp)
        try:
            for rows, done in _aligned(inputs, results):
                ok = pc.equal(done.column("status"), "ok")
                block, n = _cut_clips_block(
                    rows.filter(ok), pc.filter(done.column("uri"), ok), pc.filter(done.column("cut_s"), ok)
                )
                seconds += n
                writer.add(block)
            if writer.empty:
                empty = clips.slice(0, 0) if isinstance(clips, pa.Table) else pq.read_schema(clips).empty_table()
                writer.add(_cut_clips_block(empty, pa.array([], pa.string()), pa.array([], pa.float64()))[0])
        finally:
            writer.close()
    return seconds


def _frames(part: pa.Table) -> dict[str, float]:
    """What a part adds to the summary beyond its statuses: the frames cut."""
    return {"frames": pc.sum(part.column("n_frames")).as_py() or 0}


def materialize_clips(
    clips: pa.Table | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    short_side: int = 128,
    gop: int = 16,
    codec: str = "libx264",
    crf: int = 23,
    preset: str = "veryfast",
    workers: int = 2,
    chunk_size: int = 16,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    resume: bool = True,
    resume_strict: bool = False,
) -> dict[str, Any]:
    """Cut every clip window into ``out_dir/{video_id}.mp4`` (a resumable bulk job).

    Writes the ``materialized`` table (one row per input clip; rejects carry a reason), a
    ``clips`` table of the cut files (``clip_start_s=0``, ``clip_end_s`` = cut length) and a
    summary, so training reads small short-GOP files instead of seeking into long sources.
    A rerun reuses only the parts whose stamp (the cut settings, and each row's video_id,
    source uri, window and cut file) matches; ``resume=False`` redoes every clip, and
    ``resume_strict`` stops on a stale part instead of recomputing it.
    """
    check_materialize_options(
        out_dir,
        short_side=short_side,
        gop=gop,
        codec=codec,
        crf=crf,
        workers=workers,
        engine=engine,
        ray_address=ray_address,
    )
    ray = engine == "ray"
    with ray_session(address=ray_address, workers=workers) if ray else contextlib.nullcontext():  # one Ray for all
        out_dir = Path(out_dir).absolute()  # Ray workers do not share this process's working folder
        mat_path, clips_path, sum_path = materialized_paths(out_dir)
        to_items = partial(cut_items, out_dir=str(out_dir))
        if isinstance(clips, pa.Table):
            table = _read_unique_clips(clips)
            source: TableInput | list[dict[str, Any]] | None = _cut_items(table, out_dir)
            clips_in: pa.Table | str | os.PathLike[str] = table
        else:
            source = videos_input(clips, ("video_id", "uri", "clip_start_s", "clip_end_s"), to_items)
            if source is None:  # not Parquet: read whole
                table = _read_unique_clips(clips)
                source, clips_in = _cut_items(table, out_dir), table
            else:
                _check_clips_schema(clips)
                _check_unique_ids(clips, source, part_store(mat_path, engine).child("id-hashes") if ray else None)
                clips_in = clips
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".*.mp4.tmp-*"):  # left by a killed run
            stale.unlink(missing_ok=True)

        settings = CutSettings(short_side=short_side, gop=gop, codec=codec, crf=crf, preset=preset)
        result = run_bulk(
            source,
            partial(_cut_one, settings=settings),
            schema_name="materialized",
            out=mat_path,
            config=BulkConfig(
                workers=workers,
                chunk_size=chunk_size,
                desc="materialize",
                progress=progress,
                engine=engine,
                ray_address=ray_address,
                resume=resume,
                resume_strict=resume_strict,
            ),
            settings=asdict(settings),
            key=("video_id", "uri", "clip_start_s", "clip_end_s", "dest"),
            tally=_frames,
        )
    cut_seconds = _write_cut_clips(clips_in, mat_path, clips_path)
    ok = result.status("ok")
    summary: dict[str, Any] = {
        "clips": result.rows,
        "ok": ok,
        "rejected": result.rows - ok,
        "rejected_by_reason": result.reasons(),
        "frames": int(result.counts.get("frames", 0)),
        "cut_seconds": cut_seconds,
        "short_side": short_side,
        "gop": gop,
        "codec": codec,
        "materialized": str(mat_path),
        "clips_table": str(clips_path),
    }
    write_json(summary, sum_path)
    return summary
