"""Clip transforms of the paper's pre-training (Sec. 3.3): temporal jitter, 112x112 crops, flips.

Pure functions of their inputs and of random numbers drawn by the caller, so a dataset
can draw every number for item ``i`` from one seeded generator and get the same clip in
whatever worker process loads it. Spatial work happens on small uint8 arrays (decoded
at short side 128) as numpy views; only the final crop is copied, once, into a float32
tensor laid out (C, T, H, W) as torchvision's video models expect. Clips from
:mod:`weaksup.data.decode_clip` are views of a planar (3, T, H, W) buffer, so that copy
reads whole rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Kinetics-400 statistics, as torchvision's video classification models use them.
KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class Draw:
    """The random numbers behind one training clip, each uniform in [0, 1) except ``flip``."""

    time: float  # where the clip starts inside the window's free range
    y: float  # vertical crop offset, as a fraction of the free rows
    x: float  # horizontal crop offset, as a fraction of the free columns
    flip: bool

    @classmethod
    def from_rng(cls, rng: np.random.Generator) -> "Draw":
        """Always four numbers in a fixed order, so adding a use for one never shifts the others."""
        t, y, x, f = rng.random(4)
        return cls(float(t), float(y), float(x), bool(f < 0.5))


def clip_seconds(num_frames: int, stride: int, rate: float) -> float:
    """Seconds a clip of ``num_frames`` frames every ``stride`` frames spans at ``rate`` frames/s."""
    return num_frames * stride / rate


def jitter_start(u: float, *, window_start: float, window_end: float, clip_s: float) -> float:
    """Clip start for uniform ``u`` in [0, 1): anywhere in ``[window_start, window_end - clip_s]``.

    A window shorter than the clip starts at ``window_start`` (the decoder pads the end).
    """
    latest = max(window_start, window_end - clip_s)
    return window_start + u * (latest - window_start)


def uniform_starts(k: int, *, window_start: float, window_end: float, clip_s: float) -> np.ndarray:
    """``k`` clip starts spread evenly from the window's start to its last full clip (10-clip eval).

    One clip sits at the centre of the free range.
    """
    latest = max(window_start, window_end - clip_s)
    if k == 1:
        return np.array([(window_start + latest) / 2.0])
    return np.linspace(window_start, latest, k)


def crop_offsets(height: int, width: int, size: int, *, y: float, x: float) -> tuple[int, int]:
    """Top-left corner of a ``size`` square crop at fractions ``y``, ``x`` of the free range."""
    if height < size or width < size:
        raise ValueError(f"frames of {width}x{height} are smaller than the {size}x{size} crop")
    return int(y * (height - size + 1)), int(x * (width - size + 1))


def random_crop(frames: np.ndarray, size: int, *, y: float, x: float) -> np.ndarray:
    """A ``size`` square crop of (T, H, W, C) ``frames`` at drawn fractions (a view, no copy)."""
    top, left = crop_offsets(frames.shape[1], frames.shape[2], size, y=y, x=x)
    return frames[:, top : top + size, left : left + size]


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` square of (T, H, W, C) ``frames`` (a view); evaluation uses it."""
    top, left = (frames.shape[1] - size) // 2, (frames.shape[2] - size) // 2
    if top < 0 or left < 0:
        raise ValueError(f"frames of {frames.shape[2]}x{frames.shape[1]} are smaller than the {size}x{size} crop")
    return frames[:, top : top + size, left : left + size]


def horizontal_flip(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) frames mirrored left-right (a view)."""
    return frames[:, :, ::-1]


def to_tensor(
    frames: np.ndarray, *, mean: tuple[float, ...] = KINETICS_MEAN, std: tuple[float, ...] = KINETICS_STD
) -> torch.Tensor:
    """(T, H, W, 3) uint8 (any strides: crop and flip views) -> normalised float32 (3, T, H, W), contiguous.

    One pass: ``x * 1 / (255 std) - mean / std`` written straight into the output, which is
    the only copy made of the crop.
    """
    src = frames.transpose(3, 0, 1, 2)
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).reshape(-1, 1, 1, 1)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(-1, 1, 1, 1)
    out = np.empty(src.shape, np.float32)
    np.multiply(src, scale, out=out)
    out -= shift
    return torch.from_numpy(out)


def train_transform(frames: np.ndarray, draw: Draw, *, crop: int) -> torch.Tensor:
    """Random crop + horizontal flip + normalisation: the paper's training augmentation."""
    out = random_crop(frames, crop, y=draw.y, x=draw.x)
    if draw.flip:
        out = horizontal_flip(out)
    return to_tensor(out)


def eval_transform(frames: np.ndarray, *, crop: int | None) -> torch.Tensor:
    """Centre crop (None: the whole frame) + normalisation: evaluation, deterministic."""
    return to_tensor(frames if crop is None else center_crop(frames, crop))
