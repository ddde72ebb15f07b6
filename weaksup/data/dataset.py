"""Clip datasets over a manifest or clips table: random training clips and 10-clip evaluation.

Both read the same two table kinds (``schemas/``): a **manifest** (whole videos, window
``[0, duration_s]``) or **clips** (windows ``[clip_start_s, clip_end_s]`` of a video, or
materialised cut files whose window is ``[0, length]``); which one is detected from the
columns. A video whose duration is unknown (a manifest without ``duration_s``, or a null
one) uses the duration its container states, found when the clip is decoded; when the
container states none either (live WebM recordings), the clip is taken from the start.

Randomness is drawn from ``np.random.default_rng([seed, epoch, index])`` and nothing else,
so item ``i`` of epoch ``e`` is the same clip in whichever worker process loads it, and a
run can be replayed. The epoch lives in shared memory: :meth:`ClipDataset.set_epoch` in
the main process reaches persistent workers too (call it before iterating the loader).

A video that cannot be decoded never stops an epoch: ``__getitem__`` returns None, the
failure is counted (:attr:`failures`, summed over worker processes) and, with
``rejects_path``, appended to a JSONL log (:mod:`weaksup.data.rejects`) with its
video_id, uri, reason and epoch. :func:`collate_skip_none` drops the Nones from a batch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from weaksup.data.decode_clip import DEFAULT_RATE, Clip, VideoInfo, read_clip
from weaksup.data.rejects import append_reject
from weaksup.data.transforms import Draw, clip_seconds, eval_transform, jitter_start, train_transform, uniform_starts
from weaksup.errors import InputError, one_line
from weaksup.tables import check_table, load_schema, open_parquet, read_table

_FAILURE_SLOTS = 1024  # one counter per worker process (slot 0: the main process), so no counter is shared


@dataclass(frozen=True)
class ClipSpec:
    """What a clip looks like: frames, temporal stride, output sizes and decoder threading.

    ``fps`` resamples every video to that rate before striding (None: source frames);
    ``crop`` None keeps the whole resized frame (fully-convolutional testing).
    """

    num_frames: int = 8
    stride: int = 1
    fps: float | None = None
    crop: int | None = 112
    short_side: int = 128
    thread_type: str = "AUTO"

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.stride < 1:
            raise ValueError(f"num_frames and stride must be >= 1 (got {self.num_frames}, {self.stride})")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive (got {self.fps})")
        if self.crop is not None and not 0 < self.crop <= self.short_side:
            raise ValueError(f"crop must be in (0, short_side]: got crop {self.crop}, short_side {self.short_side}")

    def seconds(self, info: VideoInfo) -> float:
        """How long the clip lasts in this video."""
        return clip_seconds(self.num_frames, self.stride, self.fps or info.rate or DEFAULT_RATE)


@dataclass(frozen=True)
class VideoTable:
    """The rows a clip dataset reads, as Arrow/numpy arrays (no per-row Python objects, so
    forked workers do not copy them page by page through reference counts)."""

    kind: str  # "clips" or "manifest"
    video_id: pa.Array
    uri: pa.Array
    label: np.ndarray  # int64
    window_start: np.ndarray  # float64 seconds
    window_end: np.ndarray  # float64 seconds; NaN when the duration is unknown

    def __len__(self) -> int:
        return len(self.label)

    def window(self, i: int, info: VideoInfo) -> tuple[float, float]:
        """Row ``i``'s window; an unknown end is the container's stated duration, else the start."""
        lo, hi = float(self.window_start[i]), float(self.window_end[i])
        if not math.isfinite(hi):
            hi = info.duration_s if info.duration_s is not None else lo
        return lo, max(lo, hi)


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _floats(table: pa.Table, name: str) -> np.ndarray:
    col = pc.fill_null(pc.cast(table.column(name), pa.float64()), float("nan"))
    values = col.to_numpy() if isinstance(col, pa.ChunkedArray) else col.to_numpy(zero_copy_only=False)
    return np.array(values, np.float64)  # a writable copy


def load_video_table(
    table_or_path: pa.Table | str | os.PathLike[str], *, label_column: str = "label_id", source: str = "table"
) -> VideoTable:
    """A manifest or clips table (Parquet path or Arrow table) as a :class:`VideoTable`.

    Clips tables are recognised by ``clip_start_s``/``clip_end_s``; anything else is read as
    a manifest. Bad files, missing columns or bad values raise InputError naming the file
    (``source`` for a table) and the column.
    """
    if isinstance(table_or_path, pa.Table):
        table = table_or_path  # ``source`` names it in messages
        names = table.column_names
    else:
        path = Path(table_or_path)
        source = str(path)
        names = open_parquet(path, "manifest or clips table").schema_arrow.names  # missing, not Parquet: one line
    kind = "clips" if {"clip_start_s", "clip_end_s"} <= set(names) else "manifest"
    wanted = ["video_id", "uri", label_column]
    wanted += ["clip_start_s", "clip_end_s"] if kind == "clips" else (["duration_s"] if "duration_s" in names else [])
    missing = [c for c in wanted if c not in names]
    if missing:
        needs = ", ".join(wanted)
        raise InputError(f"{source}: missing column {missing[0]!r} (a {kind} table for a clip dataset needs {needs})")
    if not isinstance(table_or_path, pa.Table):
        table = read_table(kind, table_or_path, columns=wanted)
    else:  # the checks read_table makes, with the same messages
        table = check_table(table, load_schema(kind).subset(wanted), source)
    labels = table.column(label_column)
    if not pa.types.is_integer(labels.type) or labels.null_count:
        raise InputError(
            f"{source}: label column {label_column!r} must hold integers without nulls (type {labels.type})"
        )
    n = table.num_rows
    if kind == "clips":
        start, end = _floats(table, "clip_start_s"), _floats(table, "clip_end_s")
    else:
        start = np.zeros(n)
        end = _floats(table, "duration_s") if "duration_s" in wanted else np.full(n, np.nan)
        end[~(end > 0)] = np.nan
    return VideoTable(
        kind,
        _column(table, "video_id").cast(pa.string()),
        _column(table, "uri").cast(pa.string()),
        np.asarray(pc.cast(labels, pa.int64()).to_numpy(), np.int64),
        np.nan_to_num(start, nan=0.0),
        end,
    )


class SharedEpochState:
    """The epoch and failure counts every clip dataset keeps (tables and shards alike).

    The epoch lives in shared memory so ``set_epoch`` reaches persistent worker processes;
    failures are counted per process (one slot each), so no counter is ever shared.
    """

    def _init_shared_state(self) -> None:
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._failures = torch.zeros(_FAILURE_SLOTS, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's clips; shared memory carries it to (persistent) worker processes."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch[0] = int(epoch)

    @property
    def failures(self) -> int:
        """Clips that failed to decode so far, in every process that loaded items."""
        return int(self._failures.sum())

    def _log_failure(self, exc: BaseException, record: dict[str, Any]) -> None:
        """Count a failed clip in this process's slot and append it (with the reason) to the rejects log."""
        info = get_worker_info()
        self._failures[0 if info is None else (info.id + 1) % _FAILURE_SLOTS] += 1
        if self.rejects_path is not None:
            append_reject(self.rejects_path, {**record, "reason": one_line(exc)})


class _ClipSource(SharedEpochState, Dataset):
    """What both datasets share: the table, the clip spec, the epoch and failure handling."""

    def __init__(
        self,
        table_or_path: pa.Table | str | os.PathLike[str],
        *,
        spec: ClipSpec,
        seed: int,
        rejects_path: str | os.PathLike[str] | None,
        label_column: str,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.table = load_video_table(table_or_path, label_column=label_column)
        self.spec = spec
        self.seed = int(seed)
        self.rejects_path = Path(rejects_path) if rejects_path is not None else None
        self._init_shared_state()

    def _decode(self, row: int, start_s: Callable[[VideoInfo], float]) -> Clip:
        s = self.spec
        return read_clip(
            self.table.uri[row].as_py(),
            start_s=start_s,
            num_frames=s.num_frames,
            stride=s.stride,
            fps=s.fps,
            short_side=s.short_side,
            thread_type=s.thread_type,
        )

    def _reject(self, row: int, index: int, exc: BaseException, **extra: Any) -> None:
        self._log_failure(
            exc,
            {
                "video_id": self.table.video_id[row].as_py(),
                "uri": self.table.uri[row].as_py(),
                "epoch": self.epoch,
                "index": index,
                **extra,
            },
        )


class ClipDataset(_ClipSource):
    """One clip per row: random start, crop and flip in training; the centre clip and crop otherwise.

    Items are ``{"clip": (3, T, crop, crop) float32, "label": int, "index": i, "start_s": float}``
    or None when the video does not decode (see the module notes).
    """

    def __init__(
        self,
        table_or_path: pa.Table | str | os.PathLike[str],
        *,
        num_frames: int = 8,
        stride: int = 1,
        fps: float | None = None,
        train: bool = True,
        crop: int = 112,
        short_side: int = 128,
        seed: int = 0,
        rejects_path: str | os.PathLike[str] | None = None,
        label_column: str = "label_id",
        thread_type: str = "AUTO",
        hflip: bool = True,
    ) -> None:
        if crop is None:
            raise ValueError("ClipDataset needs a crop size (only EvalClipDataset keeps whole frames)")
        spec = ClipSpec(num_frames, stride, fps, crop, short_side, thread_type)
        super().__init__(table_or_path, spec=spec, seed=seed, rejects_path=rejects_path, label_column=label_column)
        self.train = train
        self.hflip = hflip  # False for classes that a mirror image changes (left vs right)

    def __len__(self) -> int:
        return len(self.table)

    def draw(self, index: int) -> Draw:
        """The random numbers of item ``index`` this epoch (no decoding)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return Draw.from_rng(rng)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        draw = self.draw(index)
        if not self.hflip:
            draw = replace(draw, flip=False)
        u = draw.time if self.train else 0.5

        def start_rule(info: VideoInfo) -> float:
            lo, hi = self.table.window(index, info)
            return jitter_start(u, window_start=lo, window_end=hi, clip_s=self.spec.seconds(info))

        try:
            clip = self._decode(index, start_rule)
            if self.train:
                tensor = train_transform(clip.frames, draw, crop=self.spec.crop)
            else:
                tensor = eval_transform(clip.frames, crop=self.spec.crop)
        except Exception as exc:  # noqa: BLE001 - one bad video never stops an epoch
            self._reject(index, index, exc)
            return None
        return {"clip": tensor, "label": int(self.table.label[index]), "index": index, "start_s": clip.start_s}


class EvalClipDataset(_ClipSource):
    """``num_clips`` clips per video, evenly spread over its window, centre-cropped (10-clip eval).

    ``crop=None`` keeps the whole resized frame (fully-convolutional testing); clips of
    videos with different aspect ratios then differ in width, so batch them by shape.

    Item ``i`` is clip ``i % num_clips`` of video ``i // num_clips`` (torchvision
    ``VideoClips`` style), so a loader can spread one video's clips over workers; predictions
    are averaged per ``video_index`` afterwards. Items are dicts like :class:`ClipDataset`'s
    plus ``video_index`` and ``clip_index``, or None for a video that does not decode.
    """

    def __init__(
        self,
        table_or_path: pa.Table | str | os.PathLike[str],
        *,
        num_clips: int = 10,
        num_frames: int = 8,
        stride: int = 1,
        fps: float | None = None,
        crop: int | None = 112,
        short_side: int = 128,
        rejects_path: str | os.PathLike[str] | None = None,
        label_column: str = "label_id",
        thread_type: str = "AUTO",
    ) -> None:
        if num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {num_clips}")
        spec = ClipSpec(num_frames, stride, fps, crop, short_side, thread_type)
        super().__init__(table_or_path, spec=spec, seed=0, rejects_path=rejects_path, label_column=label_column)
        self.num_clips = num_clips

    def __len__(self) -> int:
        return len(self.table) * self.num_clips

    def starts(self, video_index: int, info: VideoInfo) -> np.ndarray:
        """The ``num_clips`` start times of a video, given what its container states."""
        lo, hi = self.table.window(video_index, info)
        return uniform_starts(self.num_clips, window_start=lo, window_end=hi, clip_s=self.spec.seconds(info))

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        video, k = divmod(index, self.num_clips)
        try:
            clip = self._decode(video, lambda info: float(self.starts(video, info)[k]))
            tensor = eval_transform(clip.frames, crop=self.spec.crop)
        except Exception as exc:  # noqa: BLE001 - one bad video never stops an evaluation
            self._reject(video, index, exc, clip_index=k)
            return None
        return {
            "clip": tensor,
            "label": int(self.table.label[video]),
            "index": index,
            "video_index": video,
            "clip_index": k,
            "start_s": clip.start_s,
        }


#: The K-clip evaluation dataset of a table (the paper's 10 clips per video, centre crop).
eval_clips = EvalClipDataset


def collate_skip_none(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack the items that decoded and drop the Nones; None when every item of the batch failed.

    The batch shrinks by the failures, so a training step must take its size from the batch.
    """
    items = [b for b in batch if b is not None]
    if not items:
        return None
    return default_collate(items)
