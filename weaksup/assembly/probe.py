"""Probe: the container metadata of every video, read without decoding it.

Clip sampling and materialisation need each video's duration, frame rate, frame count,
size and rotation before they touch a pixel. All of it is in the container headers, so
probing costs about as much as opening the file (see ``benchmarks/probe_bench.py``):
PyAV opens the container, and the few things PyAV 18 does not expose are read from the
file's own structure:

* rotation: FFmpeg keeps the display matrix as stream side data that PyAV only shows on
  decoded frames, so it is read from the MP4/MOV track header (``tkhd``, times the movie
  header's ``mvhd``) or the Matroska ``Projection`` element, with FFmpeg's own formula.
  A decoded first frame is the last resort (compressed ``cmov`` headers).
* truncation: an MP4 box or Matroska segment that runs past the end of the file means
  the file was cut short (for an ``mdat`` sized "to the end of the file", a sample past
  it). Other formats (AVI, ...) have their last video packets checked against the stated
  duration and frame count. A live WebM (segment of unknown size, no duration) states
  nothing to check against: what is left of it is probed as it is.
* duration, when the container states none (live WebM recordings): the end of the last
  video packet, found by demuxing packets only.

Videos are local paths (opened by path, at full speed) or any fsspec uri (``s3://``,
``gs://``, ``memory://``: :func:`weaksup.video_io.open_video_file` hands PyAV an fsspec file object, and the
structure parsers above read the same object, so rotation and truncation checks work on
remote files and fetch only the byte ranges they need).

A bad file raises a :class:`weaksup.video_io.ProbeError` subclass whose class name is the reason kind
(``EmptyFile``, ``NotAVideo``, ``NoVideoStream``, ``TruncatedVideo``, ...); the bulk job
turns it into a rejected row, so one broken file never stops a run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.compute as pc

from weaksup import uris as uri_paths
from weaksup.assembly.videos import id_uri_lists, read_id_uri, videos_input
from weaksup.bulk import BulkConfig, BulkResult, run_bulk, safe_call
from weaksup.bulk import summary_path as bulk_summary_path
from weaksup.errors import InputError
from weaksup.ray_engine import check_engine
from weaksup.tables import write_json
from weaksup.video_io import (
    MATROSKA_FORMATS,
    MOV_FORMATS,
    NoVideoStream,
    TruncatedVideo,
    matroska_structure,
    mov_structure,
    open_video_file,
    video_stream,
)

TAIL_SECONDS = 2.0  # how far before the stated end the truncation check starts demuxing


@dataclass(frozen=True)
class ProbeConfig:
    """A probe run: the videos table in, the probe table out, and how the bulk job runs."""

    videos: Path
    out: Path
    workers: int = 2
    chunk_size: int = 64
    progress: bool = True
    count_frames: bool = False
    engine: str = "local"  # "local" or "ray" (weaksup.ray_engine)
    ray_address: str | None = None
    resume: bool = True  # False: delete an earlier run's parts first (--no-resume)
    resume_strict: bool = False  # stop on parts of an earlier run that do not match (--resume-strict)


# --- the probe -------------------------------------------------------------------------


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def _tag_seconds(text: str | None) -> float | None:
    """A Matroska per-track DURATION tag, ``HH:MM:SS.nnnnnnnnn``, in seconds."""
    if not text:
        return None
    try:
        h, m, s = text.strip().split(":")
        value = int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None
    return value if value > 0 else None


def _stated_duration(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[float | None, bool]:
    """(duration in seconds or None, whether it is the video stream's own rather than the container's)."""
    tb = stream.time_base
    if stream.duration and stream.duration > 0 and tb:
        return float(stream.duration * tb), True
    tagged = _tag_seconds(stream.metadata.get("DURATION"))
    if tagged is not None:
        return tagged, True
    if container.duration and container.duration > 0:
        return container.duration / av.time_base, False
    return None, False


def _check_tail(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    duration: float,
    rate: Fraction | None,
    uri: str,
) -> None:
    """Formats without byte-exact structure (AVI, ...): the video packets must reach the stated end.

    An AVI cut short recomputes its duration from what is left but keeps the header's
    frame count, so a stated count is the end to reach, within 3 frames; a duration
    alone may include a longer audio track, so it gets 1 s of slack.
    """
    tb = stream.time_base
    start = stream.start_time or 0
    stated = stream.frames if stream.frames and stream.frames > 0 and rate else 0
    if stated:
        expected, slack = max(duration, stated / float(rate)), 3 / float(rate)
    else:
        expected, slack = duration, max(1.0, 3 / float(rate)) if rate else 1.0
    try:
        container.seek(start + int(max(0.0, expected - TAIL_SECONDS) / tb), stream=stream)
    except av.error.FFmpegError:
        pass  # demux from where we are: slower, same answer
    _, _, end = _packet_span(container, stream)
    got = 0.0 if end is None else float((end - start) * tb)
    if got < expected - slack:
        raise TruncatedVideo(f"{uri}: truncated (video packets end at {got:.2f} s of {expected:.2f} s)")


def _packet_span(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[int, int | None, int | None]:
    """Demux (no decode) the video packets from the current position: (count, first pts, end pts)."""
    count, first, end = 0, None, None
    for packet in container.demux(stream):
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            continue
        count += 1
        first = ts if first is None else min(first, ts)
        stop = ts + (packet.duration or 0)
        end = stop if end is None else max(end, stop)
    return count, first, end


def _decoded_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """The last resort: decode one frame and read its display matrix."""
    container.seek(0)
    for frame in container.decode(stream):
        return _fold(frame.rotation)
    return 0


def _fold(deg: float) -> int:
    """Whole degrees in (-180, 180]."""
    rot = int(round(deg)) % 360
    return rot - 360 if rot > 180 else rot


def probe_video(uri: str, *, count_frames: bool = False) -> dict:
    """Container metadata of one video: duration_s, fps, n_frames, size, rotation, codec, audio, bytes.

    Reads headers and, at most, packets (never decoded frames, except the one-frame
    rotation fallback). Where the container states no frame count (Matroska/WebM),
    n_frames is duration x average fps, which is far off for variable-rate video;
    ``count_frames`` demuxes every video packet instead (no decoding, but the whole file
    is read) and also measures the video's own duration. n_frames_estimated stays True
    whenever the container did not state the count. Raises :class:`ProbeError` (or
    ``FileNotFoundError``) with a one-line reason for a missing, empty, unreadable,
    video-less or truncated file.
    """
    source, container = open_video_file(uri)
    n_bytes = source.size
    with container:
        stream, video_index = video_stream(container, uri)
        fmt = set(container.format.name.split(","))
        if fmt & MOV_FORMATS:
            with source.reader() as f:
                rotation, cut, open_ended = mov_structure(f, stream.id)
            if open_ended and cut is None:
                # An mdat "to the end of the file" (streaming muxers): the samples must fit.
                last = max((e.pos + e.size for e in stream.index_entries), default=0)
                if last > n_bytes:
                    cut = f"samples reach byte {last}, the file has {n_bytes}"
        elif fmt & MATROSKA_FORMATS:
            with source.reader() as f:
                rotation, cut = matroska_structure(f, video_index)
        else:
            tag = stream.metadata.get("rotate")
            rotation, cut = (_fold(-float(tag)) if tag else 0), None
        if cut:
            raise TruncatedVideo(f"{uri}: truncated ({cut})")

        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width <= 0 or height <= 0:
            raise NoVideoStream(f"{uri}: the video stream has no frame size")
        rate = _rate(stream)
        tb = stream.time_base

        duration, per_stream = _stated_duration(container, stream)
        n_frames: int | None = stream.frames if stream.frames and stream.frames > 0 else None
        estimated = n_frames is None
        if duration is None or (count_frames and n_frames is None):
            count, first, end = _packet_span(container, stream)
            if not count or end is None or not tb:
                raise NoVideoStream(f"{uri}: the video stream has no packets")
            start = stream.start_time if stream.start_time is not None else first
            if duration is None or not per_stream:
                duration = float((end - start) * tb)
            n_frames = count
        elif not (fmt & (MOV_FORMATS | MATROSKA_FORMATS)) and tb:
            _check_tail(container, stream, duration, rate, uri)
        if n_frames is None and rate:
            n_frames = int(round(duration * rate))

        if rotation is None:
            rotation = _decoded_rotation(container, stream)

        return {
            "duration_s": duration,
            "fps": float(rate) if rate else None,
            "n_frames": n_frames,
            "n_frames_estimated": estimated,
            "width": width,
            "height": height,
            "rotation": rotation,
            "codec": ctx.codec.canonical_name if ctx.codec else ctx.name,
            "has_audio": len(container.streams.audio) > 0,
            "bytes": n_bytes,
        }


def _probe_item(item: dict) -> dict:
    """Bulk worker: the probe columns plus the row's own video_id and uri, also when rejected."""
    row = safe_call(lambda it: probe_video(it["uri"], count_frames=it["count_frames"]), item)
    row["video_id"], row["uri"] = item["video_id"], item["uri"]
    return row


def _tally(part: pa.Table) -> dict[str, float]:
    """What a part adds to the summary beyond its statuses: the seconds of its ok videos."""
    ok = pc.equal(part.column("status"), "ok")
    return {"ok_seconds": pc.sum(pc.filter(part.column("duration_s"), ok)).as_py() or 0.0}


def summarize(result: BulkResult) -> dict:
    """Counts of ok and rejected rows, rejection reasons by kind, and the total ok duration."""
    ok = result.status("ok")
    return {
        "videos": result.rows,
        "ok": ok,
        "rejected": result.rows - ok,
        "reasons": result.reasons(),
        "total_duration_s": round(float(result.counts.get("ok_seconds", 0.0)), 3),
    }


def probe_items(table: pa.Table, first_row: int, *, count_frames: bool, label: str) -> list[dict]:
    """A block of the videos table as the probe job's items."""
    ids, uris = id_uri_lists(table, first_row, label)
    return [{"video_id": v, "uri": u, "count_frames": count_frames} for v, u in zip(ids, uris)]


def summary_path(out: Path | str) -> Path | str:
    return bulk_summary_path(out)


def probe_videos(cfg: ProbeConfig) -> tuple[BulkResult, dict]:
    """Probe every row of the videos table into ``cfg.out`` (one row each, resumable).

    Duplicate video_ids stay separate rows: the bulk job keys on the row number. A rerun
    reuses only the parts whose stamp (count_frames, and the video_id/uri of their rows)
    matches this job. The summary is also written beside the table as ``OUT-stem.summary.json``.
    """
    if cfg.chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {cfg.chunk_size}")
    check_engine(cfg.engine, cfg.ray_address)
    to_items = functools.partial(probe_items, count_frames=cfg.count_frames, label=uri_paths.display(cfg.videos))
    source = videos_input(cfg.videos, ("video_id", "uri"), to_items)
    result = run_bulk(
        source if source is not None else to_items(read_id_uri(cfg.videos), 0),
        _probe_item,
        schema_name="probe",
        out=cfg.out,
        config=BulkConfig.of(cfg, "probe"),
        settings={"count_frames": bool(cfg.count_frames)},
        tally=_tally,
    )
    summary = summarize(result)
    write_json(summary, summary_path(cfg.out))
    return result, summary
