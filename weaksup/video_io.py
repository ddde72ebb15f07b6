"""Video I/O shared by every stage: open a video (local path or fsspec uri), pick its video
stream, read rotation and truncation from the container's own structure, and the errors
whose class names are the rejection kinds (one line each, naming the uri).

Used by probe (metadata), fingerprint decoding (dedupe), clip loading (data), clip cutting
(splits) and the synthetic corpus's resume check, so a bad file gets the same reason and
rejects the same way in every stage, and every reader picks the same stream (cover art is
skipped). Only writers (``synth.video``, the cut clips of splits) call ``av.open`` themselves.

* rotation: FFmpeg keeps the display matrix as stream side data that PyAV only shows on
  decoded frames, so it is read from the MP4/MOV track header (``tkhd``, times the movie
  header's ``mvhd``) or the Matroska ``Projection`` element, with FFmpeg's own formula.
* truncation: an MP4 box or Matroska segment that runs past the end of the file means
  the file was cut short (for an ``mdat`` sized "to the end of the file", a sample past it).
* remote files: :func:`open_video_file` hands PyAV an fsspec file object, and the structure
  parsers read the same object, fetching only the byte ranges they need.
"""

from __future__ import annotations

import math
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import av

from weaksup import uris
from weaksup.errors import one_line

MOV_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})
MATROSKA_FORMATS = frozenset({"matroska", "webm"})
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
                    rot = (
                        _projection_rotation(pose[_PROJ_YAW], pose[_PROJ_PITCH], pose[_PROJ_ROLL])
                        if proj_type == 0
                        else 0
                    )
                    return rot, truncated
                return 0, truncated
            return None, truncated
    return None, truncated


def video_stream(container: av.container.InputContainer, uri: str) -> tuple[av.video.stream.VideoStream, int]:
    """The first real video stream (cover art is skipped) and its position among video streams."""
    for k, stream in enumerate(container.streams.video):
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream, k
    raise NoVideoStream(f"{uri}: the container has no video stream")


def seek_keyframe(container: av.container.InputContainer, stream: av.video.stream.VideoStream, seconds: float) -> None:
    """Seek ``stream`` to the keyframe at or before ``seconds`` of stream time (rounded to the
    nearest time-base tick, so a time that is a frame's own lands on that frame)."""
    container.seek(int(round(seconds / stream.time_base)), backward=True, any_frame=False, stream=stream)


class UndecodableVideo(ProbeError):
    """The container opens but not one frame of its video stream decodes."""


class FrameClock:
    """Frame times in seconds: FFmpeg's pts/dts choice, monotonic.

    Times count from ``origin_ts`` (the stream's start time, in time_base units) when
    given, else from the first frame. Shared by fingerprint sampling and clip loading.
    """

    def __init__(self, time_base: float | None, interval: float, origin_ts: int | None = None) -> None:
        self.time_base = time_base
        self.interval = interval  # seconds per frame, for frames without a timestamp
        self.faulty_pts = self.faulty_dts = 0
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self.origin: float | None = origin_ts
        self.previous: float | None = None

    def _best_effort(self, pts: int | None, dts: int | None) -> int | None:
        """libavcodec's ``guess_correct_pts``: trust whichever of pts/dts is less often out of order."""
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        elif pts is not None:
            self.last_dts = pts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        elif dts is not None:
            self.last_pts = dts
        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            return pts
        return dts

    def time(self, frame: av.VideoFrame) -> float:
        ts = self._best_effort(frame.pts, frame.dts)
        if ts is None or self.time_base is None:
            t = 0.0 if self.previous is None else self.previous + self.interval
        else:
            if self.origin is None:  # the first timestamp; earlier frames had none
                expected = 0.0 if self.previous is None else self.previous + self.interval
                self.origin = ts - expected / self.time_base
            t = (ts - self.origin) * self.time_base
        if self.previous is not None and t < self.previous:
            t = self.previous  # never move the timeline back; the earlier frame is superseded
        self.previous = t
        return t


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


def failure_reason(exc: BaseException, *, with_type: bool = True) -> str:
    """:func:`weaksup.errors.one_line` for a failure to open or decode a video. PyAV's
    ``FFmpegError`` is no ``OSError``, and its text adds the errno, the file name and the
    last log line to FFmpeg's message, so an FFmpeg error reads as that message (``strerror``)."""
    message = getattr(exc, "strerror", None) if isinstance(exc, av.error.FFmpegError) else None
    if not message or isinstance(exc, OSError):  # an OSError's strerror is one_line's own choice
        return one_line(exc, with_type=with_type)
    text = one_line(ValueError(message), with_type=False)
    return f"{type(exc).__name__}: {text}" if with_type else text


def _open_container(uri: str, source: VideoSource) -> av.container.InputContainer:
    """``av.open`` on a local path or a file object, with one-line reasons for failures."""
    try:
        return av.open(str(source.path) if source.path is not None else source.file, mode="r")
    except av.error.FFmpegError as exc:
        if isinstance(exc, PermissionError):
            raise PermissionError(f"{uri}: permission denied") from None
        reason = failure_reason(exc, with_type=False)
        try:
            with source.reader() as f:
                cut = mov_structure(f, -1)[1] if looks_mov(f) else None
        except Exception:  # noqa: BLE001 - only a better reason is at stake
            cut = None
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
        raise StoreError(f"{uri}: cannot read from the store ({one_line(exc)})") from None
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
        raise StoreError(f"{uri}: cannot read from the store ({one_line(exc)})") from None
    if size is None:
        size = _file_size(f)
        f.seek(0)
        if size == 0:
            raise EmptyFile(f"{uri}: empty file (0 bytes)")
    return VideoSource(uri, int(size), None, f)


def open_video_file(uri: str | BinaryIO) -> tuple[VideoSource, av.container.InputContainer]:
    """Open a video at a local path, any uri or in a seekable binary file object; a missing,
    empty, unreadable or cut file raises a one-line error.

    Local paths and ``file://`` are opened by path. Other uris (``s3://``, ``gs://``,
    ``memory://``, ...) are opened with fsspec and PyAV reads the file object (only the
    byte ranges it seeks to). A file object (``io.BytesIO`` of a tar shard member) is read
    from its start and named by its ``name`` in errors; it stays the caller's (never closed
    here). Shared by probe, fingerprint decoding, clip loading and clip cutting, so a bad
    file gets the same reason (and rejects the same way) in every stage.
    """
    if not isinstance(uri, str):
        name = str(getattr(uri, "name", None) or "in-memory file")
        size = _file_size(uri)
        uri.seek(0)
        if size == 0:
            raise EmptyFile(f"{name}: empty file (0 bytes)")
        source = VideoSource(name, size, None, uri)
        return source, _open_container(name, source)
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
        return source, _open_container(uri, source)
    source = _remote_source(uri)
    try:
        return source, _open_container(uri, source)
    except BaseException:
        source.file.close()  # type: ignore[union-attr] - opened here, so closed here
        raise


def open_video_stream(
    uri: str | BinaryIO,
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """:func:`open_video_file` and :func:`video_stream` in one: the container and its first real
    video stream (cover art skipped); the container is closed when it has no video stream."""
    source, container = open_video_file(uri)
    try:
        stream, _ = video_stream(container, source.uri)
    except BaseException:
        container.close()
        raise
    return container, stream


def looks_mov(f: BinaryIO) -> bool:
    """ISO-BMFF files start with an ``ftyp`` (or ``moov``/``mdat``/``free``/``wide``) box."""
    f.seek(0)
    head = f.read(8)
    return len(head) == 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
