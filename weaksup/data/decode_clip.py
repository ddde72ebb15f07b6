"""Decoding one training clip: seek to the keyframe before it, decode only what it needs.

Training samples a few frames (8 or 32, paper Sec. 3.3) from somewhere inside each video,
so decoding whole files would waste almost all the work. :func:`read_clip` seeks by
timestamp to the keyframe at or before the clip start, decodes the pre-roll without
converting it, converts exactly the clip's frames and stops there: the cost is at most one
GOP plus the clip, whatever the video's length.

Conventions (shared with :mod:`weaksup.assembly.splits`, whose windows these clips index):

* Times are seconds from the video stream's ``start_time`` (an MPEG-TS starting at 1.4 s,
  or a WebM whose first frame is at 3 ms, still starts at 0). Frame timestamps are chosen
  like FFmpeg's ``best_effort_timestamp`` (pts unless they are more often out of order than
  dts: AVI with packed B-frames), frames without one follow the previous by one frame
  interval, and time never moves backwards.
* The clip's first frame is the first frame with ``time >= start_s`` (1 ms tolerance for
  container rounding); then every ``stride``-th source frame. With ``fps`` given, the
  video is first resampled by timestamp to ``fps`` (sample ``k`` is the first frame at or
  after ``start_s + k * stride / fps``), so a clip spans the same seconds whatever the
  source rate.
* Frames come out small, straight from the decoder's YUV via swscale: short side
  ``short_side`` (default 128) with the aspect ratio kept, so 4:3 gives the paper's
  128x171 and 16:9 gives 128x228. Display rotation (phone videos) is applied, so clips
  are upright.
* A seek that raises, lands after ``start_s`` (a broken index) or lands on a frame the
  decoder flags as corrupt (an index "keyframe" that is no IDR frame: after seeking,
  ``imageio__cockatoo.mp4`` decodes green garbage from 3.8 s) falls back to decoding
  linearly from the beginning. A ``start_s`` past the last frame (a duration that
  overstates the video) moves the clip back so that it ends on the last frame. A video
  that ends before the clip is complete repeats its last frame; a video of which no frame
  decodes raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO, Callable

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from weaksup.video_io import FrameClock, UndecodableVideo, failure_reason, open_video_stream, seek_keyframe

TIME_EPS_S = 1e-3  # container timestamps rounded to 1 ms (Matroska) must not move a clip by a frame
DEFAULT_RATE = 25.0  # frames per second assumed for a stream that states no rate at all
INTERPOLATION = Interpolation.BILINEAR  # swscale filter for the downscale


@dataclass(frozen=True)
class VideoInfo:
    """What the container says before any decoding: enough to place a clip inside the video."""

    rate: float | None  # average frames per second, None if not stated
    duration_s: float | None  # stated duration in seconds, None if not stated
    width: int
    height: int

    @property
    def frame_interval(self) -> float:
        return 1.0 / (self.rate or DEFAULT_RATE)


StartRule = Callable[[VideoInfo], float]
"""Chooses the clip start once the video's rate and duration are known (one open, not two)."""


@dataclass(frozen=True)
class Clip:
    """A decoded clip and how it was obtained (for tests, benchmarks and rejection reasons)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB: a view of a planar (3, T, H, W) buffer, not C-contiguous
    times: np.ndarray  # (T,) float64 seconds of each frame; padded frames repeat the last time
    start_s: float  # the start actually used (after re-anchoring a start past the end)
    decoded: int  # frames decoded in total, pre-roll included
    padded: int  # frames repeating the last one because the video ended
    seeked: bool  # True: reached by seeking; False: decoded from the beginning
    info: VideoInfo
    partial: str | None = None  # why decoding stopped before the clip was complete, if it did


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side = ``short_side`` and the aspect ratio kept (320x240 -> 171x128)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


class _Sampler:
    """Picks the clip's frames out of the decoded stream and converts only those.

    Frames are scaled and converted by swscale to planar RGB (``gbrp``) and copied plane by
    plane into one (3, T, H, W) buffer: planar output is about twice as fast as packed
    ``rgb24`` (measured on 320x240 -> 171x128), and it is already the layout a video model
    takes, so the final tensor is a copy of rows rather than a per-byte transpose.
    """

    def __init__(self, start: float, num_frames: int, stride: int, fps: float | None, short_side: int) -> None:
        self.start = start
        self.num_frames = num_frames
        self.stride = stride
        self.fps = fps
        self.short_side = short_side
        self.planes: np.ndarray | None = None  # (3, T, H, W) uint8 RGB, allocated at the first clip frame
        self.times: list[float] = []
        self.seen = 0  # frames at or after the start (source-frame mode)
        self.rotation = 0
        # One scaler for the whole clip, single-threaded: frame.to_ndarray(width=...) would build
        # a new swscale context (and its thread pool) for every frame, which costs more than the scaling.
        self.reformatter = VideoReformatter()

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def complete(self) -> bool:
        return self.count >= self.num_frames

    def _take(self, frame: av.VideoFrame, t: float) -> None:
        k = self.count
        if self.planes is None:
            w, h = output_size(frame.width, frame.height, self.short_side)
            self.planes = np.empty((3, self.num_frames, h, w), np.uint8)
            self.rotation = int(frame.rotation or 0)
        h, w = self.planes.shape[2:]
        small = self.reformatter.reformat(
            frame, width=w, height=h, format="gbrp", interpolation=INTERPOLATION, threads=1
        )
        for channel, plane in zip((1, 2, 0), small.planes):  # gbrp stores G, B, R
            rows = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)
            self.planes[channel, k] = rows[:, :w]
        self.times.append(t)

    def _repeat(self, t: float) -> None:
        self.planes[:, self.count] = self.planes[:, self.count - 1]
        self.times.append(t)

    def offer(self, t: float, frame: av.VideoFrame) -> bool:
        """Take ``frame`` (at ``t`` seconds) into the clip if it belongs there; True once complete."""
        if t < self.start - TIME_EPS_S:
            return False
        if self.fps is None:
            if self.seen % self.stride == 0:
                self._take(frame, t)
            self.seen += 1
        else:
            step = self.stride / self.fps
            taken = False
            while not self.complete and self.start + self.count * step <= t + TIME_EPS_S:
                if taken:
                    self._repeat(t)
                else:
                    self._take(frame, t)
                    taken = True
        return self.complete

    def finish(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(T, H, W, 3) frames (upright, the end padded with the last frame), their times, frames padded."""
        padded = self.num_frames - self.count
        times = np.asarray(self.times + [self.times[-1]] * padded, dtype=np.float64)
        if padded:
            self.planes[:, self.count :] = self.planes[:, self.count - 1 : self.count]
        frames = self.planes.transpose(1, 2, 3, 0)
        k = round(self.rotation / 90) % 4  # counter-clockwise degrees, as FFmpeg's display matrix says
        if k:
            frames = np.rot90(frames, k=k, axes=(1, 2))
        return frames, times, padded


@dataclass
class _Run:
    decoded: int = 0
    last_t: float | None = None
    error: str | None = None
    bad_seek: str | None = None  # why frames after a seek cannot be trusted: decode from the beginning


def _info(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> VideoInfo:
    rate = next((float(r) for r in (stream.average_rate, stream.guessed_rate, stream.base_rate) if r and r > 0), None)
    duration: float | None = None
    if stream.duration and stream.duration > 0 and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration and container.duration > 0:
        duration = container.duration / av.time_base
    return VideoInfo(rate, duration, stream.codec_context.width, stream.codec_context.height)


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, seconds: float) -> None:
    """Seek to the keyframe at or before ``seconds`` of stream time (module level so tests can break it)."""
    seek_keyframe(container, stream, seconds)


def _decode_into(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    sampler: _Sampler,
    clock: FrameClock,
    *,
    landing_limit: float | None,
) -> _Run:
    """Decode until the sampler is complete or the stream ends; errors end the run, not the caller."""
    run = _Run()
    try:
        for frame in container.decode(stream):
            t = clock.time(frame)
            if landing_limit is not None:
                # A seek that lands after the start (a broken index), or on a frame the decoder
                # flags as corrupt (an index "keyframe" that is no IDR frame), is garbage.
                if run.decoded == 0 and t > landing_limit + TIME_EPS_S:
                    run.bad_seek = f"seek landed at {t:.3f} s, after {landing_limit:.3f} s"
                elif frame.is_corrupt:
                    run.bad_seek = f"frame at {t:.3f} s after the seek is corrupt (missing references)"
                if run.bad_seek:
                    run.decoded += 1
                    break
            run.decoded += 1
            run.last_t = t
            if sampler.offer(t, frame):
                break
    except av.error.FFmpegError as exc:
        run.error = failure_reason(exc)
    return run


def _origin_ts(stream: av.video.stream.VideoStream) -> int:
    return int(stream.start_time) if stream.start_time is not None else 0


def _resolve(start_s: float | StartRule, info: VideoInfo) -> float:
    start = float(start_s(info)) if callable(start_s) else float(start_s)
    if not math.isfinite(start):
        raise ValueError(f"start_s must be finite, got {start}")
    return max(0.0, start)


def _window(
    uri: str | BinaryIO,
    start_s: float | StartRule,
    num_frames: int,
    stride: int,
    fps: float | None,
    short_side: int,
    thread_type: str,
    seek: bool,
) -> tuple[float, _Sampler, _Run, bool, VideoInfo]:
    """One attempt at the clip: seek (unless it starts at 0), else decode linearly from the beginning.

    An in-memory ``uri`` (a tar shard member) is read from its start each time it is opened.
    """
    container, stream = open_video_stream(uri)
    try:
        info = _info(container, stream)
        start = _resolve(start_s, info)
        stream.codec_context.thread_type = thread_type
        time_base = float(stream.time_base) if stream.time_base else None
        wasted = 0  # frames decoded after a seek that turned out unusable
        if seek and start > TIME_EPS_S and time_base:
            sampler = _Sampler(start, num_frames, stride, fps, short_side)
            clock = FrameClock(time_base, info.frame_interval, _origin_ts(stream))
            try:
                _seek(container, stream, start + _origin_ts(stream) * time_base)
                run = _decode_into(container, stream, sampler, clock, landing_limit=start)
            except Exception:  # noqa: BLE001 - a seek can fail in many ways; the linear decode is the answer
                run = _Run(bad_seek="seek failed")
            # An error before the first clip frame (right after the seek) also sends us to the beginning.
            if run.bad_seek is None and run.decoded and (sampler.count or run.error is None):
                return start, sampler, run, True, info
            wasted = run.decoded
            container.close()
            container, stream = open_video_stream(uri)
            stream.codec_context.thread_type = thread_type
        sampler = _Sampler(start, num_frames, stride, fps, short_side)
        run = _decode_into(
            container,
            stream,
            sampler,
            FrameClock(time_base, info.frame_interval, _origin_ts(stream)),
            landing_limit=None,
        )
        run.decoded += wasted
        return start, sampler, run, False, info
    finally:
        container.close()


def read_clip(
    uri: str | BinaryIO,
    *,
    start_s: float | StartRule,
    num_frames: int,
    stride: int = 1,
    fps: float | None = None,
    short_side: int = 128,
    thread_type: str = "AUTO",
    seek: bool = True,
) -> Clip:
    """Decode ``num_frames`` frames, every ``stride``-th, from the first frame at or after ``start_s``.

    ``start_s`` may be a :data:`StartRule` (called with the container's rate and duration)
    so a caller can place a clip inside a video of unknown length without opening it twice.
    ``seek=False`` decodes from the beginning (files whose index is not to be trusted; the
    baseline of ``benchmarks/loader_bench.py``). ``uri`` may also be a seekable binary file
    object (``io.BytesIO`` of a tar shard member).
    Raises ``FileNotFoundError`` or a :class:`~weaksup.video_io.ProbeError` subclass
    (``NotAVideo``, ``EmptyFile``, ``NoVideoStream``, ``UndecodableVideo``) with a one-line reason.
    """
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames and stride must be >= 1 (got {num_frames}, {stride})")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    start, sampler, run, seeked, info = _window(uri, start_s, num_frames, stride, fps, short_side, thread_type, seek)
    decoded = run.decoded
    if not sampler.count and run.last_t is not None:
        # The start lies past the last frame: end the clip on the last frame instead.
        step = stride / fps if fps is not None else stride * info.frame_interval
        start_again = max(0.0, run.last_t - (num_frames - 1) * step)
        start, sampler, run, seeked, info = _window(
            uri, start_again, num_frames, stride, fps, short_side, thread_type, seek
        )
        decoded += run.decoded
    if not sampler.count:
        why = f" ({run.error})" if run.error else ""
        name = uri if isinstance(uri, str) else getattr(uri, "name", None) or "in-memory file"
        raise UndecodableVideo(f"{name}: no frame decodes{why}")

    frames, times, padded = sampler.finish()
    partial = None
    if padded:
        partial = run.error or f"the video ends at {run.last_t:.3f} s, {sampler.count} of {num_frames} frames"
    return Clip(frames, times, start, decoded, padded, seeked, info, partial)


def decode_clip(
    uri: str,
    *,
    start_s: float,
    num_frames: int,
    stride: int = 1,
    fps: float | None = None,
    short_side: int = 128,
    thread_type: str = "AUTO",
) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of the clip at ``start_s``, C-contiguous (see :func:`read_clip`)."""
    clip = read_clip(
        uri,
        start_s=start_s,
        num_frames=num_frames,
        stride=stride,
        fps=fps,
        short_side=short_side,
        thread_type=thread_type,
    )
    return np.ascontiguousarray(clip.frames)
