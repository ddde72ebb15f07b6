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
            vf = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame[: stream.height, : stream.width]), format="rgb24"
            )
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


def textured_frames(n_frames: int, *, width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """RGB frames of a smooth random scene panning slowly, with moving discs.

    Unlike :func:`moving_square_frames` (pixel noise, where every 14x14 block has the
    same mean), the scene has structure at the scale of the census grid, so rescaled,
    re-encoded or flipped copies keep their codes: the content dedupe tests need.
    """
    import cv2

    rng = np.random.default_rng(seed)
    pad = max(width, height) // 2
    coarse = rng.random((height // 8 + 4, width // 8 + 4, 3)).astype(np.float32)
    scene = (cv2.resize(coarse, (width + pad, height + pad), interpolation=cv2.INTER_CUBIC) * 255).clip(0, 255)
    scene = scene.astype(np.uint8)
    centres = rng.random((3, 2)) * [width, height]
    velocity = (rng.random((3, 2)) - 0.5) * 4
    colours = rng.integers(0, 256, (3, 3))
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for i in range(n_frames):
        dx = int(pad / 2 + pad / 2 * np.sin(i / 25 + seed))
        dy = int(pad / 2 + pad / 2 * np.cos(i / 35 + seed))
        frame = np.ascontiguousarray(scene[dy : dy + height, dx : dx + width])
        for k in range(3):
            x, y = (centres[k] + velocity[k] * i) % [width, height]
            cv2.circle(frame, (int(x), int(y)), max(3, height // 8) + 2 * k, tuple(int(c) for c in colours[k]), -1)
        frames[i] = frame
    return frames
