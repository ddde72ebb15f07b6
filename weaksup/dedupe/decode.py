"""Decoding a video into small grey frames sampled at a fixed rate (16 fps) for fingerprints.

The census code only needs 8x8 block means of a 112x112 grey image, so each sampled
frame is converted once, by swscale, straight from the decoder's YUV to a small ``gray8``
image (long side <= ``max_side``): no RGB, no full-size numpy copy. Frames that no sample
lands on are never converted, so decoding the bitstream is almost all the cost.

Sampling is by timestamp, not by frame index: sample ``k`` is at ``k / fps`` seconds after
the first frame and takes the latest frame shown at that time (a frame is shown from its
own time until the next frame's). A 12 fps source thus repeats frames, a 30 fps source
drops about every second one, and variable-rate video is sampled where it really is.
Timestamps are chosen like FFmpeg's ``best_effort_timestamp`` (reordered pts unless they
are more often out of order than dts: AVI with packed B-frames); frames without any
timestamp follow the previous one by one frame interval, and a timestamp that goes
backwards never moves the timeline back. Rotation metadata is ignored: codes are taken
on the coded orientation, the same for every copy of a file.

A file that decodes some frames and then hits undecodable data keeps the frames decoded
so far (:attr:`DecodeInfo.partial` says why it stopped): a cut or damaged copy of a video
is still a copy, and its codes still match. A stream that simply ends well before the
duration its headers state (a cut download; the demuxer stops without an error) is
flagged the same way. A file of which no frame decodes raises
:class:`UndecodableVideo` (or another :class:`~weaksup.video_io.ProbeError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from weaksup.video_io import FrameClock, TruncatedVideo, UndecodableVideo, failure_reason, open_video_stream

TIME_TOLERANCE_S = 1e-3  # container timestamps rounded to 1 ms (Matroska) must not shift a sample


@dataclass(frozen=True)
class DecodeInfo:
    """What a decode covered: duration in seconds (first frame to the end of the last),
    the number of samples given out, and why decoding stopped early (None: it reached the end)."""

    duration_s: float
    n_samples: int
    partial: str | None = None


Consumer = Callable[[np.ndarray, int], None]


def grey_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the aspect ratio kept and the long side at most ``max_side`` (never upscaled)."""
    long_side = max(width, height)
    if long_side <= max_side:
        return width, height
    scale = max_side / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _frame_interval(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return 1.0 / float(rate)
    return None


class _GreySampler:
    """Hands a frame to every sample time it covers, converted once to small grey (samples are numbered from 0)."""

    def __init__(self, consume: Consumer, fps: float, max_side: int) -> None:
        """Sample every ``1 / fps`` seconds, frames scaled to a long side of at most ``max_side``."""
        self.consume = consume
        self.period = 1.0 / fps
        self.max_side = max_side
        self.reformatter = VideoReformatter()
        self.size: tuple[int, int] | None = None
        self.given = 0  # samples handed out so far

    def show_until(self, shown: av.VideoFrame, t: float) -> None:
        """Give the frame on screen (``shown``) to every sample before time ``t``."""
        count = 0
        while (self.given + count) * self.period + TIME_TOLERANCE_S < t:
            count += 1
        if count:
            if self.size is None:
                self.size = grey_size(shown.width, shown.height, self.max_side)
            small = self.reformatter.reformat(
                shown,
                width=self.size[0],
                height=self.size[1],
                format="gray8",
                interpolation=Interpolation.AREA,
                threads=1,
            )
            self.consume(small.to_ndarray(), count)
            self.given += count


@dataclass
class _Playback:
    """Where a decode got to: the last frame shown and when, the last frame step, packets, why it stopped."""

    shown: av.VideoFrame | None = None  # the frame on screen now, converted only if a sample lands on it
    shown_at: float = 0.0
    last_gap: float = 0.0  # the last frame-to-frame step, for a last frame of unknown length
    packets: int = 0
    partial: str | None = None


def _play(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    clock: FrameClock,
    sampler: _GreySampler,
    uri: str,
) -> _Playback:
    """Decode every frame, sampling each shown frame; a decode error after the first frame ends it as partial."""
    play = _Playback()
    try:
        for packet in container.demux(stream):
            play.packets += packet.size > 0
            for frame in packet.decode():
                t = clock.time(frame)
                if play.shown is not None:
                    sampler.show_until(play.shown, t)
                    if t > play.shown_at:
                        play.last_gap = t - play.shown_at
                play.shown, play.shown_at = frame, t
    except av.error.FFmpegError as exc:
        if play.shown is None:
            raise UndecodableVideo(f"{uri}: no frame decodes ({failure_reason(exc, with_type=False)})") from None
        play.partial = f"decoding stopped at {play.shown_at:.2f} s ({failure_reason(exc)})"
    return play


def _no_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, packets: int, period: float, uri: str
) -> DecodeInfo:
    """A stream that gave no frame: undecodable or truncated when it should have, else empty (no samples)."""
    if packets:
        raise UndecodableVideo(f"{uri}: none of {packets} video packets decodes")
    stated = _stated_duration(container, stream)
    if stated is not None and stated > period:
        raise TruncatedVideo(f"{uri}: truncated (no video packets, the headers state {stated:.2f} s)")
    return DecodeInfo(0.0, 0, None)  # a video stream without frames: nothing to code, nothing broken


def _decoded_duration(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    play: _Playback,
    time_base: float | None,
    interval: float | None,
    period: float,
) -> tuple[float, str | None]:
    """Duration decoded (to the end of the last frame) and why it is partial, a stream cut short included."""
    shown = play.shown
    last = shown.duration * time_base if shown.duration and time_base else 0.0
    if last <= 0:
        last = interval or play.last_gap or period
    duration = play.shown_at + last
    partial = play.partial
    if partial is None:
        stated = _stated_duration(container, stream)
        if stated is not None and duration < stated - max(0.5, 3 * (interval or period)):
            partial = f"the video ends at {duration:.2f} s of {stated:.2f} s stated (cut short?)"
    return duration, partial


def decode_samples(
    uri: str, consume: Consumer, *, fps: float = 16.0, max_side: int = 160, thread_type: str = "AUTO"
) -> DecodeInfo:
    """Decode the video stream of ``uri``, handing each sampled grey frame to ``consume``.

    ``consume(grey, count)`` gets a (H, W) uint8 frame and how many consecutive samples
    it fills (a frame shown for longer than ``1 / fps`` fills several), in order, so a
    caller never holds more than one frame. The number of samples is
    ``round(duration * fps)``, and at least every sample time before the last frame.
    ``thread_type`` is the decoder's ("AUTO": frame and slice threads, the fastest per
    video; "NONE" spends less CPU per frame when every core already runs a worker).
    A video stream without any packet gives no samples. Raises a :class:`ProbeError`
    subclass (or ``FileNotFoundError``) with a one-line reason when the file is missing,
    empty, not a video, cut before its first frame, or not one of its frames decodes.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    container, stream = open_video_stream(uri)
    with container:
        stream.codec_context.thread_type = thread_type
        time_base = float(stream.time_base) if stream.time_base else None
        interval = _frame_interval(stream)
        clock = FrameClock(time_base, interval or 1.0 / fps)
        sampler = _GreySampler(consume, fps, max_side)
        play = _play(container, stream, clock, sampler, uri)
        if play.shown is None:
            return _no_frames(container, stream, play.packets, sampler.period, uri)
        duration, partial = _decoded_duration(container, stream, play, time_base, interval, sampler.period)
        n = max(math.floor(duration * fps + 0.5), sampler.given)
        sampler.show_until(play.shown, n * sampler.period + TIME_TOLERANCE_S)
        return DecodeInfo(duration, sampler.given, partial)


def _stated_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """The video's duration as its headers state it, or None when they do not say.

    Matroska keeps a per-track DURATION tag (FFmpeg fills the stream duration there from
    the whole file, audio included); other containers state the stream's own. The
    container's duration counts only when the video is its one stream.
    """
    if set(container.format.name.split(",")) & {"matroska", "webm"}:
        tag = stream.metadata.get("DURATION")
        if tag:
            try:
                h, m, sec = tag.strip().split(":")
                return int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                return None
    elif stream.duration and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0 and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


def sample_grey_frames(uri: str, *, fps: float = 16.0, max_side: int = 160) -> tuple[np.ndarray, float]:
    """Grey frames (N, H, W) uint8 sampled at ``fps`` and the decoded duration in seconds.

    A file that stops decoding part way returns what it decoded (see :func:`decode_samples`,
    which also says why it stopped, and hands out frames without holding them all).
    """
    frames: list[np.ndarray] = []
    info = decode_samples(uri, lambda grey, count: frames.extend([grey] * count), fps=fps, max_side=max_side)
    if not frames:
        return np.empty((0, 0, 0), np.uint8), info.duration_s
    return np.stack(frames), info.duration_s
