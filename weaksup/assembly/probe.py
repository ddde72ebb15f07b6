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
``gs://``, ``memory://``: :func:`open_video_file` hands PyAV an fsspec file object, and the
structure parsers above read the same object, so rotation and truncation checks work on
remote files and fetch only the byte ranges they need).

A bad file raises a :class:`ProbeError` subclass whose class name is the reason kind
(``EmptyFile``, ``NotAVideo``, ``NoVideoStream``, ``TruncatedVideo``, ...); the bulk job
turns it into a rejected row, so one broken file never stops a run.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import av
import pyarrow as pa

from weaksup import uris
from weaksup.assembly.videos import read_id_uri
from weaksup.bulk import BulkConfig, run_bulk, safe_call
from weaksup.bulk import summary_path as bulk_summary_path
from weaksup.ray_engine import check_engine
from weaksup.errors import InputError
from weaksup.tables import write_json

MOV_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})
MATROSKA_FORMATS = frozenset({"matroska", "webm"})
TAIL_SECONDS = 2.0  # how far before the stated end the truncation check starts demuxing
# Bytes fetched per remote read-ahead: s3fs's default (50 MiB) would download most of a
# video to probe its headers; 4 MiB keeps probes cheap and sequential decoding at few requests.
REMOTE_BLOCK_SIZE = 4 << 20


class ProbeError(ValueError):
    """A video that cannot be probed; the subclass name is the rejection kind."""


class UnsupportedUri(ProbeError, uris.UnsupportedUri):
    """No installed filesystem reads the uri's scheme (or the store's optional package is missing)."""


class StoreError(ProbeError):
    """The object store holding a remote uri could not be read (credentials, network, ...)."""


class EmptyFile(ProbeError):
    """The file has zero bytes."""


class NotAVideo(ProbeError):
    """FFmpeg cannot open the file as a media container."""


class NoVideoStream(ProbeError):
    """The container opens but holds no usable video stream."""


class TruncatedVideo(ProbeError):
    """The file ends before the data its headers describe."""


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


def local_path(uri: str) -> Path:
    """The local file a uri names: a plain path or ``file://`` (:func:`weaksup.uris.local_path`).

    Any other scheme raises :class:`UnsupportedUri`; :func:`open_video_file` opens those
    through fsspec instead.
    """
    try:
        return uris.local_path(uri)
    except uris.UnsupportedUri as exc:
        raise UnsupportedUri(str(exc)) from None


# --- display rotation, the way FFmpeg computes it -------------------------------------


def rotation_from_matrix(m00: float, m01: float, m10: float, m11: float) -> int:
    """``av_display_rotation_get`` on a display matrix's 2x2 part: counter-clockwise degrees.

    Rounded to whole degrees and folded into (-180, 180], so 180 is never reported as -180.
    """
    scale0, scale1 = math.hypot(m00, m10), math.hypot(m01, m11)
    if scale0 == 0.0 or scale1 == 0.0:
        return 0
    deg = -math.degrees(math.atan2(m01 / scale1, m00 / scale0))
    rot = int(round(deg))
    if rot <= -180:
        rot += 360
    return 0 if rot == 0 else rot


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int, bool]]:
    """ISO-BMFF boxes in [start, end): (type, payload offset, box end, whether its size is
    "to the end of the file"). Stops at a bad header."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        payload = pos + 8
        if size == 1:
            large = f.read(8)
            if len(large) < 8:
                return
            size = struct.unpack(">Q", large)[0]
            payload = pos + 16
        to_eof = size == 0
        if to_eof:
            size = end - pos
        if size < payload - pos:
            return
        yield kind, payload, pos + size, to_eof
        pos += size


BinarySource = Union[BinaryIO, str, Path]


@contextmanager
def _binary(source: BinarySource) -> Iterator[BinaryIO]:
    """A binary file for the structure parsers: an open file object as it is (its position
    restored afterwards, so a PyAV container reading it is not disturbed), or a path/uri
    opened for the duration."""
    if hasattr(source, "read") and hasattr(source, "seek"):
        pos = source.tell()
        try:
            yield source  # type: ignore[misc]
        finally:
            source.seek(pos)
        return
    with uris.open_input(source, "rb") as f:
        yield f


def _file_size(f: BinaryIO) -> int:
    f.seek(0, 2)
    return f.tell()


def _matrix(raw: bytes) -> list[list[float]]:
    """A 3x3 ISO-BMFF matrix: a, b, c, d, x, y are 16.16 fixed point, u, v, w are 2.30."""
    v = struct.unpack(">9i", raw)
    return [[v[3 * i] / 65536.0, v[3 * i + 1] / 65536.0, v[3 * i + 2] / float(1 << 30)] for i in range(3)]


def _matmul(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def mov_structure(source: BinarySource, track_id: int) -> tuple[int | None, str | None, bool]:
    """(rotation of track ``track_id`` or None if unreadable, truncation message or None,
    whether a box runs "to the end of the file" so its size proves nothing).

    ``source`` is a seekable binary file object (local or remote; its position is restored)
    or a path/uri. Reads only box headers plus ``mvhd`` and each ``tkhd``, as FFmpeg's
    mov demuxer does: the rotation is that of the track matrix times the movie matrix.
    """
    rotation: int | None = None
    truncated: str | None = None
    open_ended = False
    with _binary(source) as f:
        size = _file_size(f)
        for kind, payload, end, to_eof in _boxes(f, 0, size):
            open_ended = open_ended or to_eof
            if end > size:
                truncated = f"box {kind.decode('latin-1')!r} needs {end} bytes, the file has {size}"
            if kind != b"moov" or end > size:
                continue
            movie = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
            for child, cpay, cend, _ in _boxes(f, payload, end):
                if child == b"mvhd":
                    f.seek(cpay)
                    version = f.read(1)
                    skip = 3 + (28 if version == b"\x01" else 16) + 4 + 2 + 10
                    f.seek(cpay + 1 + skip)
                    raw = f.read(36)
                    if len(raw) == 36:
                        movie = _matrix(raw)
                elif child == b"trak":
                    for sub, spay, _, _ in _boxes(f, cpay, cend):
                        if sub != b"tkhd":
                            continue
                        f.seek(spay)
                        version = f.read(1)
                        times = 16 if version == b"\x01" else 8
                        f.seek(spay + 4 + times)
                        raw_id = f.read(4)
                        if len(raw_id) < 4 or struct.unpack(">I", raw_id)[0] != track_id:
                            break
                        f.seek(spay + 4 + times + 4 + 4 + (8 if version == b"\x01" else 4) + 8 + 8)
                        raw = f.read(36)
                        if len(raw) == 36:
                            m = _matmul(_matrix(raw), movie)
                            rotation = rotation_from_matrix(m[0][0], m[0][1], m[1][0], m[1][1])
                        break
    return rotation, truncated, open_ended


# --- Matroska (EBML) -------------------------------------------------------------------

_SEGMENT, _CLUSTER, _TRACKS, _TRACK_ENTRY = 0x18538067, 0x1F43B675, 0x1654AE6B, 0xAE
_TRACK_TYPE, _VIDEO, _PROJECTION = 0x83, 0xE0, 0x7670
_PROJ_TYPE, _PROJ_YAW, _PROJ_PITCH, _PROJ_ROLL = 0x7671, 0x7673, 0x7674, 0x7675


def _vint(f: BinaryIO, *, marker: bool) -> tuple[int, int] | None:
    """One EBML variable-length integer: (value, length); ``marker`` keeps the length bit (ids)."""
    first = f.read(1)
    if not first or first[0] == 0:
        return None
    length = 9 - first[0].bit_length()
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        return None
    value = first[0] if marker else first[0] & (0xFF >> length)
    for byte in rest:
        value = (value << 8) | byte
    return value, length


def _elements(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int, int | None]]:
    """EBML elements in [start, end): (id, data offset, data end or None for unknown size)."""
    pos = start
    while pos < end:
        f.seek(pos)
        eid = _vint(f, marker=True)
        size = _vint(f, marker=False)
        if eid is None or size is None:
            return
        data = pos + eid[1] + size[1]
        unknown = size[0] == (1 << (7 * size[1])) - 1
        yield eid[0], data, None if unknown else data + size[0]
        if unknown:
            return
        pos = data + size[0]


def _uint(f: BinaryIO, start: int, end: int) -> int:
    f.seek(start)
    return int.from_bytes(f.read(end - start), "big")


def _float(f: BinaryIO, start: int, end: int) -> float:
    f.seek(start)
    raw = f.read(end - start)
    return struct.unpack(">f", raw)[0] if len(raw) == 4 else struct.unpack(">d", raw)[0] if len(raw) == 8 else 0.0


def _projection_rotation(yaw: float, pitch: float, roll: float) -> int:
    """FFmpeg's ``mkv_create_display_matrix``: only flat 2-D poses become a display matrix."""
    if (pitch == 0.0 and yaw == 0.0 and roll == 0.0) or math.isnan(roll):
        return 0
    if pitch != 0.0 or yaw not in (0.0, 180.0, -180.0):
        return 0
    hflip = yaw != 0.0
    rad = -math.radians(roll * (2 * hflip - 1))
    m00, m01, m10, m11 = math.cos(rad), -math.sin(rad), math.sin(rad), math.cos(rad)
    if hflip:
        m00, m10 = -m00, -m10
    return rotation_from_matrix(m00, m01, m10, m11)


def matroska_structure(source: BinarySource, video_index: int) -> tuple[int | None, str | None]:
    """(rotation of the ``video_index``-th video track or None, truncation message or None).

    ``source``: a seekable binary file object (its position is restored) or a path/uri.
    """
    truncated: str | None = None
    with _binary(source) as f:
        size = _file_size(f)
        for eid, data, end in _elements(f, 0, size):
            if eid != _SEGMENT:
                continue
            if end is not None and end > size:
                truncated = f"Matroska segment needs {end} bytes, the file has {size}"
            for child, cdata, cend in _elements(f, data, min(end or size, size)):
                if child == _CLUSTER or cend is None:
                    break
                if child != _TRACKS:
                    continue
                videos = 0
                for entry, edata, eend in _elements(f, cdata, min(cend, size)):
                    if entry != _TRACK_ENTRY or eend is None:
                        continue
                    fields = {e: (d, x) for e, d, x in _elements(f, edata, min(eend, size)) if x is not None}
                    if _TRACK_TYPE not in fields or _uint(f, *fields[_TRACK_TYPE]) != 1:
                        continue
                    if videos < video_index:
                        videos += 1
                        continue
                    pose = {_PROJ_YAW: 0.0, _PROJ_PITCH: 0.0, _PROJ_ROLL: 0.0}
                    proj_type = 0
                    if _VIDEO in fields:
                        for v, vdata, vend in _elements(f, *fields[_VIDEO]):
                            if v == _PROJECTION and vend is not None:
                                for p, pdata, pend in _elements(f, vdata, vend):
                                    if pend is None:
                                        continue
                                    if p == _PROJ_TYPE:
                                        proj_type = _uint(f, pdata, pend)
                                    elif p in pose:
                                        pose[p] = _float(f, pdata, pend)
                    rot = _projection_rotation(pose[_PROJ_YAW], pose[_PROJ_PITCH], pose[_PROJ_ROLL]) if proj_type == 0 else 0
                    return rot, truncated
                return 0, truncated
            return None, truncated
    return None, truncated


# --- the probe -------------------------------------------------------------------------


def _video_stream(container: av.container.InputContainer, uri: str) -> tuple[av.video.stream.VideoStream, int]:
    """The first real video stream (cover art is skipped) and its position among video streams."""
    for k, stream in enumerate(container.streams.video):
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream, k
    raise NoVideoStream(f"{uri}: the container has no video stream")


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


def _stated_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[float | None, bool]:
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


def _packet_span(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, int | None, int | None]:
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


@dataclass(frozen=True)
class VideoSource:
    """Where an opened video's bytes come from: a local file (PyAV opened it by path, at
    full speed) or a remote file object that PyAV reads through (PyAV's container keeps a
    reference to it, so it lives as long as the container)."""

    uri: str
    size: int
    path: Path | None = None
    file: BinaryIO | None = None

    @contextmanager
    def reader(self) -> Iterator[BinaryIO]:
        """A binary file for header parsing: the local file opened anew, or the shared remote
        file object with its position restored afterwards (PyAV's reads stay in place, and
        the bytes already fetched are reused)."""
        with _binary(self.path if self.path is not None else self.file) as f:  # type: ignore[arg-type]
            yield f


def _open_container(uri: str, source: VideoSource) -> av.container.InputContainer:
    """``av.open`` on a local path or a file object, with one-line reasons for failures."""
    try:
        return av.open(str(source.path) if source.path is not None else source.file, mode="r")
    except av.error.FFmpegError as exc:
        if isinstance(exc, PermissionError):
            raise PermissionError(f"{uri}: permission denied") from None
        reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())[:200]
        try:
            with source.reader() as f:
                cut = mov_structure(f, -1)[1] if _looks_mov(f) else None
        except Exception:  # noqa: BLE001 - only a better reason is at stake
            cut = None
        if source.file is not None:
            source.file.close()
        if cut:
            raise TruncatedVideo(f"{uri}: truncated ({cut})") from None
        raise NotAVideo(f"{uri}: not a readable video ({reason})") from None


def _remote_source(uri: str) -> VideoSource:
    """Open a non-local uri with fsspec; the same one-line errors as for a local file."""
    try:
        fs, inner = uris.url_to_fs(uri)
    except uris.UnsupportedUri as exc:
        raise UnsupportedUri(str(exc)) from None
    try:
        info = fs.info(inner)
    except FileNotFoundError as exc:
        reason = uris.unreachable_reason(exc)
        if reason is not None:
            raise StoreError(f"{uri}: cannot reach the store ({reason})") from None
        raise FileNotFoundError(f"{uri}: file not found") from None
    except PermissionError:
        raise PermissionError(f"{uri}: permission denied") from None
    except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the uri
        raise StoreError(f"{uri}: cannot read from the store ({_one_line(exc)})") from None
    if info.get("type") != "file":
        raise NotAVideo(f"{uri}: not a regular file")
    size = info.get("size")
    if size == 0:
        raise EmptyFile(f"{uri}: empty file (0 bytes)")
    try:
        f = fs.open(inner, "rb", block_size=REMOTE_BLOCK_SIZE)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: file not found") from None
    except PermissionError:
        raise PermissionError(f"{uri}: permission denied") from None
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"{uri}: cannot read from the store ({_one_line(exc)})") from None
    if size is None:
        size = _file_size(f)
        f.seek(0)
        if size == 0:
            raise EmptyFile(f"{uri}: empty file (0 bytes)")
    return VideoSource(uri, int(size), None, f)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_video_file(uri: str) -> tuple[VideoSource, av.container.InputContainer]:
    """Open a video at a local path or any uri; a missing, empty, unreadable or cut file raises
    a one-line error.

    Local paths and ``file://`` are opened by path. Other uris (``s3://``, ``gs://``,
    ``memory://``, ...) are opened with fsspec and PyAV reads the file object (only the
    byte ranges it seeks to). Shared by probe, fingerprint decoding and clip loading, so a
    bad file gets the same reason (and rejects the same way) in every stage.
    """
    if uris.is_local(uri):
        path = local_path(uri)
        if not path.exists():
            raise FileNotFoundError(f"{uri}: file not found")
        if not path.is_file():
            raise NotAVideo(f"{uri}: not a regular file")
        size = path.stat().st_size
        if size == 0:
            raise EmptyFile(f"{uri}: empty file (0 bytes)")
        source = VideoSource(uri, size, path, None)
    else:
        source = _remote_source(uri)
    return source, _open_container(uri, source)


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
        stream, video_index = _video_stream(container, uri)
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


def _looks_mov(f: BinaryIO) -> bool:
    """ISO-BMFF files start with an ``ftyp`` (or ``moov``/``mdat``/``free``/``wide``) box."""
    f.seek(0)
    head = f.read(8)
    return len(head) == 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def _probe_item(item: dict) -> dict:
    """Bulk worker: the probe columns plus the row's own video_id and uri, also when rejected."""
    row = safe_call(lambda it: probe_video(it["uri"], count_frames=it["count_frames"]), item)
    row["video_id"], row["uri"] = item["video_id"], item["uri"]
    return row


def summarize(table: pa.Table) -> dict:
    """Counts of ok and rejected rows, rejection reasons by kind, and the total ok duration."""
    status = table.column("status").to_pylist()
    errors = table.column("error").to_pylist()
    durations = table.column("duration_s").to_pylist()
    reasons = Counter((e or "").split(":", 1)[0] or "unknown" for s, e in zip(status, errors) if s != "ok")
    return {
        "videos": table.num_rows,
        "ok": sum(s == "ok" for s in status),
        "rejected": sum(s != "ok" for s in status),
        "reasons": dict(reasons.most_common()),
        "total_duration_s": round(sum(d for s, d in zip(status, durations) if s == "ok" and d is not None), 3),
    }


def summary_path(out: Path | str) -> Path | str:
    return bulk_summary_path(out)


def probe_videos(cfg: ProbeConfig) -> tuple[pa.Table, dict]:
    """Probe every row of the videos table into ``cfg.out`` (one row each, resumable).

    Duplicate video_ids stay separate rows: the bulk job keys on the row number. A rerun
    reuses only the parts whose stamp (count_frames, and the video_id/uri of their rows)
    matches this job. The summary is also written beside the table as ``OUT-stem.summary.json``.
    """
    if cfg.chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {cfg.chunk_size}")
    check_engine(cfg.engine, cfg.ray_address)
    videos = read_id_uri(cfg.videos)
    ids, uris = videos.column("video_id").to_pylist(), videos.column("uri").to_pylist()
    items = [{"video_id": v, "uri": u, "count_frames": cfg.count_frames} for v, u in zip(ids, uris)]
    table = run_bulk(
        items,
        _probe_item,
        schema_name="probe",
        out=cfg.out,
        config=BulkConfig(workers=cfg.workers, chunk_size=cfg.chunk_size, desc="probe", progress=cfg.progress,
                          engine=cfg.engine, ray_address=cfg.ray_address, resume=cfg.resume,
                          resume_strict=cfg.resume_strict),
        settings={"count_frames": bool(cfg.count_frames)},
    )
    summary = summarize(table)
    write_json(summary, summary_path(cfg.out))
    return table, summary
