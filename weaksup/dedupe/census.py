"""Census-Transform frame codes (paper supp. A.2; Zabih & Woodfill 1994).

A frame becomes one 64-bit code: grey, uniform borders trimmed (letterbox/pillarbox),
resized to 112x112, averaged into an 8x8 grid of 14x14 blocks, and each cell compared
with the mean of its neighbours (bit = cell is brighter). Comparing cells with their
neighbours rather than absolute values makes the code survive rescaling, re-encoding,
brightness/contrast/colour changes and fps changes. Bit ``8*r + c`` is cell (r, c), so
a horizontal flip is a bit permutation (:func:`mirror_codes`) and a flipped copy is
found by querying mirrored codes. Centre crops of 10% and 20% are coded too, so that a
cropped copy of a target meets the target's cropped codes.

Frames whose grid has almost no contrast (black, flat, fades) carry no information and
are flagged so that they never vote for a match.
"""

from __future__ import annotations

import cv2
import numpy as np

CODE_VERSION = 1
GRID = 8
SIZE = 112
CROPS = (0.0, 0.1, 0.2)
MIN_GRID_STD = 4.0

_NEIGHBOURS = np.ones((3, 3), np.float32)
_NEIGHBOURS[1, 1] = 0
_COUNTS = cv2.filter2D(np.ones((GRID, GRID), np.float32), -1, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT)
_BITS = (np.uint64(1) << np.arange(GRID * GRID, dtype=np.uint64)).reshape(GRID, GRID)
_REVERSED_BYTE = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], np.uint8)


def trim_borders(grey: np.ndarray, *, max_fraction: float = 0.25, tolerance: float = 6.0) -> np.ndarray:
    """Cut uniform bars (letterbox, pillarbox) off the edges of a grey frame.

    A row/column belongs to a bar while its pixels barely vary and its mean stays close to
    the outermost row/column's; at most ``max_fraction`` of each side is cut.
    """
    h, w = grey.shape
    g = grey.astype(np.float32)

    def run(lines: np.ndarray, limit: int) -> int:
        if limit <= 0 or not (lines[0].std() < tolerance):
            return 0
        head = lines[:limit]  # all candidate lines at once: the bar ends at the first non-flat one
        ok = (head.std(axis=1) < tolerance) & (np.abs(head.mean(axis=1) - lines[0].mean()) < tolerance)
        return limit if ok.all() else int(np.argmin(ok))

    top = run(g, int(h * max_fraction))
    bottom = run(g[::-1], int(h * max_fraction))
    left = run(g.T, int(w * max_fraction))
    right = run(g.T[::-1], int(w * max_fraction))
    if top + bottom >= h - 2 or left + right >= w - 2:  # the whole frame is flat
        return grey
    return grey[top : h - bottom, left : w - right]


def frame_grids(grey: np.ndarray, *, crops: tuple[float, ...] = CROPS, trim: bool = True) -> np.ndarray:
    """8x8 block means (len(crops), 8, 8) of one grey frame: full frame and centre crops."""
    if trim:
        grey = trim_borders(grey)
    square = cv2.resize(grey, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = np.empty((len(crops), GRID, GRID), np.float32)
    for i, crop in enumerate(crops):
        m = int(round(SIZE * crop / 2))
        view = square[m : SIZE - m, m : SIZE - m] if m else square
        out[i] = cv2.resize(view, (GRID, GRID), interpolation=cv2.INTER_AREA)
    return out


def census_codes(grids: np.ndarray) -> np.ndarray:
    """64-bit census codes of grids (..., 8, 8): bit set where a cell beats its neighbours' mean."""
    flat = grids.reshape(-1, GRID, GRID)
    codes = np.empty(len(flat), np.uint64)
    for i, grid in enumerate(flat):
        neighbour_mean = cv2.filter2D(grid, -1, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT) / _COUNTS
        codes[i] = np.bitwise_or.reduce(_BITS[grid > neighbour_mean], initial=np.uint64(0))
    return codes.reshape(grids.shape[:-2])


def informative(grids: np.ndarray, min_std: float = MIN_GRID_STD) -> np.ndarray:
    """False for flat frames (black, uniform, fades) whose code is noise and must not vote."""
    return grids.reshape(*grids.shape[:-2], -1).std(axis=-1) >= min_std


def mirror_codes(codes: np.ndarray) -> np.ndarray:
    """Codes of the horizontally flipped frames: reverse the 8 column bits of every row byte."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    as_bytes = codes.view(np.uint8)
    return _REVERSED_BYTE[as_bytes].view(np.uint64).reshape(codes.shape)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 arrays (broadcast)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int32)
