"""Tiny videos with known content, written with PyAV (tests make their own videos)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_square_frames(n_frames: int, *, width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """RGB frames (N, H, W, 3) of a bright square moving over a fixed random texture.

    Each frame differs (the square moves one step), and the frame index can be read back
    from the square's position, so clip decoding can be checked frame-exactly.
    """
    rng = np.random.default_rng(seed)
    background = (rng.random((height, width, 3)) * 120).astype(np.uint8)
    frames = np.repeat(background[None], n_frames, axis=0)
    side = max(4, min(width, height) // 6)
    for i in range(n_frames):
        x = (i * 2) % max(1, width - side)
        y = (i // max(1, (width - side) // 2)) * 3 % max(1, height - side)
        frames[i, y : y + side, x : x + side] = 255
    return frames


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: float = 16.0,
    codec: str = "libx264",
    gop: int | None = None,
    pix_fmt: str = "yuv420p",
    with_audio: bool = False,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB frames (N, H, W, 3) to ``path`` (container from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width = int(frames.shape[2]) // 2 * 2
        stream.height = int(frames.shape[1]) // 2 * 2
        stream.pix_fmt = pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        opts = {"preset": "ultrafast"} if codec == "libx264" else {}
        opts.update(options or {})
        stream.options = opts
        audio = None
        if with_audio:
            audio = container.add_stream("aac", rate=16000)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: stream.height, : stream.width]), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            n = int(len(frames) / fps * 16000)
            samples = (np.sin(np.arange(n) / 10.0) * 0.1).astype(np.float32)[None]
            for start in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="fltp", layout="mono")
                af.sample_rate = 16000
                af.pts = start
                for packet in audio.encode(af):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def write_test_video(
    path: str | Path,
    *,
    seconds: float = 2.0,
    fps: float = 16.0,
    width: int = 64,
    height: int = 48,
    seed: int = 0,
    **kwargs,
) -> Path:
    """A moving-square video of ``seconds`` at ``fps`` (see :func:`moving_square_frames`)."""
    frames = moving_square_frames(max(1, round(seconds * fps)), width=width, height=height, seed=seed)
    return write_video(path, frames, fps=fps, **kwargs)
