"""Reading training clips from tar shards (WebDataset layout; written by
:mod:`weaksup.data.shard_writer`, ``weaksup shard``).

:class:`ShardClipDataset` reads the shards sequentially (``tarfile`` in stream mode over
:func:`weaksup.uris.open_input`, so ``s3://``, ``gs://`` or ``memory://`` folders work and
local ones are opened by path), gives each DataLoader worker of each distributed rank its own
shards, and decodes clips from memory exactly as :class:`~weaksup.data.dataset.ClipDataset`
decodes them from files: the random numbers of a clip come from ``(seed, epoch, row)``, so
item ``row`` of epoch ``e`` is the same tensor from a shard as from the file. It resumes
only at epoch boundaries.

``pretrain`` reads shards with :class:`ShardMemberDataset` instead: a map-style dataset over
the index (item ``i`` = one seek and one read of clip ``i``'s adjacent members, from a shard
file each process keeps open), ordered by the shard-aware
:class:`~weaksup.train.sampler.ShardSampler`, so the table path's exact mid-epoch resume,
equal steps per rank and rejects carry over, and each process still reads its shards one
after another, front to back window by window.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from weaksup import uris
from weaksup.bulk import STAMP_KEY
from weaksup.data.dataset import ClipSpec, SharedEpochState
from weaksup.data.decode_clip import VideoInfo, read_clip
from weaksup.data.transforms import Draw, eval_transform, jitter_start, train_transform
from weaksup.errors import InputError, one_line

SHARD_NAME = "shard-{:06d}.tar"
SHARD_RE = re.compile(r"shard-(\d{6,})\.tar")
INDEX_NAME = "index.parquet"
REJECTS_NAME = "rejects.parquet"
SUMMARY_NAME = "summary.json"
STAMP_HEADER = STAMP_KEY.decode()  # the PAX global header keyword holding a shard's stamp
DEFAULT_SHARD_SIZE = 1000
TAR_BLOCK = 512


# ----------------------------------------------------------------------------- reading


def read_shard_index(source: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """``source/index.parquet`` (a local folder or any fsspec URL), or some of its ``columns``
    (the ``shard`` column dictionary-encoded); InputError when absent or unreadable."""
    import pyarrow.parquet as pq

    url = uris.join(str(source), INDEX_NAME)
    try:
        with uris.open_input(url) as f:
            return pq.read_table(f, columns=columns, read_dictionary=["shard"])
    except FileNotFoundError:
        raise InputError(f"{url}: file not found (a shard folder written by `weaksup shard` has one)") from None
    except Exception as exc:  # noqa: BLE001 - fsspec and pyarrow raise many kinds
        raise InputError(f"{url}: not a readable shard index ({one_line(exc)})") from None


def shard_counts(source: str | os.PathLike[str]) -> dict[str, int]:
    """Clips per shard file name of a shard folder, from its index (only the shard column is read)."""
    counts = pc.value_counts(read_shard_index(source, ["shard"]).column("shard"))
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}


def iter_shard(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) of each clip of a shard, streamed in order (tar mode ``r|``).

    Members of one key are consecutive (as :func:`write_shards` and WebDataset write them).
    A shard that cannot be opened or is cut short raises once the clips before the damage
    have been yielded.
    """
    with uris.open_input(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        key, group = None, {}
        for member in tar:
            if not member.isfile():
                continue
            k, _, ext = member.name.rpartition("/")[2].partition(".")
            if k != key and group:
                yield key, group
                group = {}
            key = k
            group[ext] = tar.extractfile(member).read()
        if group:
            yield key, group


def shuffled(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Items in a random order from a buffer of ``size``: each new item takes the place of a
    randomly chosen buffered one, which is yielded (WebDataset's shuffle); ``size`` <= 1 keeps order."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        buffer[j], item = item, buffer[j]
        yield item
    for j in rng.permutation(len(buffer)).tolist():
        yield buffer[j]


def decode_member(
    data: bytes,
    meta: dict[str, Any],
    *,
    name: str,
    spec: ClipSpec,
    seed: int,
    epoch: int,
    train: bool = True,
    hflip: bool = True,
) -> tuple[torch.Tensor, float]:
    """(clip tensor, start_s) of one shard member, exactly as ClipDataset makes row ``meta["row"]``'s
    clip from its file: the random numbers come from ``(seed, epoch, row)``, the window from the json."""
    row = int(meta["row"])
    lo = float(meta.get("clip_start_s") or 0.0)
    end = meta.get("clip_end_s")
    draw = Draw.from_rng(np.random.default_rng([seed, epoch, row]))
    if not hflip:
        draw = replace(draw, flip=False)
    u = draw.time if train else 0.5

    def start_rule(info: VideoInfo) -> float:  # VideoTable.window, then ClipDataset's jitter
        hi = float(end) if end is not None and math.isfinite(float(end)) else info.duration_s
        hi = max(lo, lo if hi is None else hi)
        return jitter_start(u, window_start=lo, window_end=hi, clip_s=spec.seconds(info))

    buf = io.BytesIO(data)
    buf.name = name
    clip = read_clip(
        buf,
        start_s=start_rule,
        num_frames=spec.num_frames,
        stride=spec.stride,
        fps=spec.fps,
        short_side=spec.short_side,
        thread_type=spec.thread_type,
    )
    tensor = (
        train_transform(clip.frames, draw, crop=spec.crop) if train else eval_transform(clip.frames, crop=spec.crop)
    )
    return tensor, clip.start_s


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardClipDataset(SharedEpochState, IterableDataset):
    """Training clips streamed from tar shards: ClipDataset's items, read sequentially.

    ``source`` is a shard folder (local path or fsspec URL with ``index.parquet``) or a list
    of shard URLs. Each epoch (:meth:`set_epoch`, shared with persistent workers) permutes
    the shards with ``(seed, epoch)``, deals them to ranks (``rank::world_size``) and then
    to the rank's DataLoader workers, so every clip is read once per epoch by exactly one
    worker; a ``buffer_size`` in-memory buffer shuffles clips across neighbouring shards.
    Ranks and workers get whole shards, so use at least ``world_size * workers`` shards
    (more for even loads). The rank and world size are those of ``torch.distributed`` when
    it is initialised at construction (workers do not see the process group).

    :attr:`total` is the number of clips in all shards (None for a list of URLs).
    Items are ``{"clip", "label", "index", "start_s"}`` like ClipDataset's, ``index`` being
    the clip's row in the sharded table; a member that does not decode is skipped, counted
    in :attr:`failures` and logged to ``rejects_path`` with its shard and key.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[str],
        *,
        num_frames: int = 8,
        stride: int = 1,
        fps: float | None = None,
        train: bool = True,
        crop: int = 112,
        short_side: int = 128,
        seed: int = 0,
        shuffle_shards: bool = True,
        buffer_size: int = 64,
        rejects_path: str | os.PathLike[str] | None = None,
        thread_type: str = "AUTO",
        hflip: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if buffer_size < 0:
            raise ValueError(f"buffer_size must be >= 0, got {buffer_size}")
        if isinstance(source, (str, os.PathLike)):
            counts = shard_counts(source)  # names and counts only: workers get a copy of the dataset
            self.urls = [uris.join(str(source), name) for name in sorted(counts)]
            self.total: int | None = sum(counts.values())
        else:
            self.urls = [str(u) for u in source]
            self.total = None  # unknown without an index
        self.spec = ClipSpec(num_frames, stride, fps, crop, short_side, thread_type)
        self.train, self.hflip, self.seed = train, hflip, int(seed)
        self.shuffle_shards, self.buffer_size = shuffle_shards, buffer_size
        self.rejects_path = Path(rejects_path) if rejects_path is not None else None
        dist_rank, dist_world = _distributed()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world size {self.world_size}")
        self._init_shared_state()

    def shards_for(self, epoch: int, rank: int, world_size: int, worker: int = 0, workers: int = 1) -> list[str]:
        """The shards one worker of one rank reads in ``epoch``, in reading order."""
        order = np.arange(len(self.urls))
        if self.shuffle_shards:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.urls))
        return [self.urls[i] for i in order[rank::world_size][worker::workers]]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rng = np.random.default_rng([self.seed, epoch, self.rank, worker, 7])
        samples = self._samples(self.shards_for(epoch, self.rank, self.world_size, worker, workers), epoch)
        for shard, key, group in shuffled(samples, self.buffer_size, rng):
            item = self._item(shard, key, group, epoch)
            if item is not None:
                yield item

    def _samples(self, urls: list[str], epoch: int) -> Iterator[tuple[str, str, dict[str, bytes]]]:
        for url in urls:
            try:
                for key, group in iter_shard(url):
                    yield url, key, group
            except Exception as exc:  # noqa: BLE001 - a missing or cut shard ends that shard, not the epoch
                self._reject(exc, epoch, shard=url)

    def _item(self, shard: str, key: str, group: dict[str, bytes], epoch: int) -> dict[str, Any] | None:
        meta: dict[str, Any] = {}
        try:
            if "json" not in group:
                raise ValueError(f"{shard}: clip {key!r} has no .json member")
            meta = json.loads(group["json"])
            videos = [ext for ext in group if ext != "json"]
            if not videos:
                raise ValueError(f"{shard}: clip {key!r} has no video member")
            row = int(meta["row"])
            tensor, start_s = decode_member(
                group[videos[0]],
                meta,
                name=f"{shard}#{key}.{videos[0]}",
                spec=self.spec,
                seed=self.seed,
                epoch=epoch,
                train=self.train,
                hflip=self.hflip,
            )
            label = int(meta["label_id"])
        except Exception as exc:  # noqa: BLE001 - one bad member never stops an epoch
            self._reject(
                exc,
                epoch,
                shard=shard,
                key=key,
                video_id=meta.get("video_id"),
                uri=meta.get("uri"),
                index=meta.get("row"),
            )
            return None
        return {"clip": tensor, "label": label, "index": row, "start_s": start_s}

    def _reject(self, exc: BaseException, epoch: int, **record: Any) -> None:
        self._log_failure(exc, {"video_id": None, "uri": None, "index": None, **record, "epoch": epoch})


# ----------------------------------------------------------------------------- random access (pretrain)

_MEMBER_COLUMNS = ["shard", "key", "row", "video_id", "label_id", "offset", "bytes", "json_offset", "json_bytes"]


@dataclass(frozen=True)
class ShardIndex:
    """A shard folder's ``index.parquet`` as arrays, one entry per clip in file order (shard
    name, then byte offset): what :class:`ShardMemberDataset` reads and the shard-aware
    sampler orders. Arrays, not per-row objects, so forked DataLoader workers share them."""

    source: str  # the folder (local path or fsspec URL)
    names: tuple[str, ...]  # shard file names, sorted
    shard: np.ndarray  # int64 per clip: its shard's position in ``names``
    key: pa.Array
    row: np.ndarray  # int64: the clip's row in the sharded table (its random numbers come from it)
    video_id: pa.Array
    label: np.ndarray  # int64
    offset: np.ndarray  # int64, the video member's data
    bytes: np.ndarray
    json_offset: np.ndarray
    json_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    def url(self, shard: int) -> str:
        return uris.join(self.source, self.names[shard])


def load_shard_index(source: str | os.PathLike[str]) -> ShardIndex:
    """The index of shard folder ``source``; InputError when it is missing, unreadable or empty."""
    source = str(source)
    table = read_shard_index(source, _MEMBER_COLUMNS)
    url = uris.join(source, INDEX_NAME)
    if table.num_rows == 0:
        raise InputError(f"{url}: the shard index lists no clips")
    for name in _MEMBER_COLUMNS:
        if table.column(name).null_count:
            raise InputError(f"{url}: column {name!r} has null values")
    col = table.column("shard")
    if pa.types.is_dictionary(col.type):
        col = col.unify_dictionaries() if hasattr(col, "unify_dictionaries") else col
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        dictionary = chunks[0].dictionary.to_pylist() if chunks else []
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks]).astype(np.int64)
    else:  # a plain string column (an index rewritten by another tool)
        encoded = pc.dictionary_encode(col).combine_chunks()
        dictionary, codes = (
            encoded.dictionary.to_pylist(),
            encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        )
    names = sorted(set(dictionary))
    position = {name: k for k, name in enumerate(names)}
    remap = np.array([position[d] for d in dictionary], np.int64)
    shard = remap[codes] if len(codes) else codes

    def ints(name: str) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), np.int64)

    offset = ints("offset")
    order = np.lexsort((offset, shard))  # file order: shards by name, members by position
    label = ints("label_id")[order]
    if label.min() < 0:
        raise InputError(f"{url}: column 'label_id' has negative values")
    take = pa.array(order)
    return ShardIndex(
        source=source,
        names=tuple(names),
        shard=shard[order],
        key=table.column("key").combine_chunks().cast(pa.string()).take(take),
        row=ints("row")[order],
        video_id=table.column("video_id").combine_chunks().cast(pa.string()).take(take),
        label=label,
        offset=offset[order],
        bytes=ints("bytes")[order],
        json_offset=ints("json_offset")[order],
        json_bytes=ints("json_bytes")[order],
    )


class ShardMemberDataset(SharedEpochState, Dataset):
    """ClipDataset's training clips read from tar shards by index: item ``i`` is clip ``i`` of a
    :class:`ShardIndex`, read with a seek and one read (video and json members are adjacent).

    A map-style dataset, so ``pretrain``'s resumable sampler orders it: with the shard-aware
    order (:class:`~weaksup.train.sampler.ShardSampler`) consecutive items come from the same
    shard, and each process (main or DataLoader worker) keeps the shard it is reading open, so
    it reads one file after another, front to back in windows. Items are
    ``{"clip", "label", "index", "start_s"}`` with ``index`` the clip's row in the sharded table
    and random numbers from ``(seed, epoch, row)``: the same tensors as ClipDataset's of that
    table and as :class:`ShardClipDataset`'s. A member that cannot be read or decoded gives
    None, is counted in :attr:`failures` and logged to ``rejects_path`` with its shard and key.
    """

    def __init__(
        self,
        index: ShardIndex | str | os.PathLike[str],
        *,
        num_frames: int = 8,
        stride: int = 1,
        fps: float | None = None,
        train: bool = True,
        crop: int = 112,
        short_side: int = 128,
        seed: int = 0,
        rejects_path: str | os.PathLike[str] | None = None,
        thread_type: str = "AUTO",
        hflip: bool = True,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.index = index if isinstance(index, ShardIndex) else load_shard_index(index)
        self.spec = ClipSpec(num_frames, stride, fps, crop, short_side, thread_type)
        self.train, self.hflip, self.seed = train, hflip, int(seed)
        self.rejects_path = Path(rejects_path) if rejects_path is not None else None
        self._init_shared_state()
        self._open: tuple[int, int, BinaryIO] | None = None  # (pid, shard, file): this process's open shard

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": None}  # a file handle never travels to another process

    def close(self) -> None:
        """Close this process's open shard (reopened on the next item)."""
        if self._open is not None and self._open[0] == os.getpid():
            self._open[2].close()
        self._open = None

    def _file(self, shard: int) -> BinaryIO:
        pid = os.getpid()
        if self._open is not None and self._open[:2] == (pid, shard):
            return self._open[2]
        if self._open is not None and self._open[0] != pid:
            self._open = None  # forked: the parent's handle is not ours to use or close
        self.close()
        f = uris.open_input(self.index.url(shard))
        self._open = (pid, shard, f)
        return f

    def read(self, i: int) -> tuple[bytes, dict[str, Any]]:
        """The video bytes and parsed json of clip ``i`` (one read when the members are adjacent)."""
        x = self.index
        off, size, joff, jsize = int(x.offset[i]), int(x.bytes[i]), int(x.json_offset[i]), int(x.json_bytes[i])
        url = x.url(int(x.shard[i]))
        f = self._file(int(x.shard[i]))

        def get(start: int, n: int) -> bytes:
            f.seek(start)
            data = f.read(n)
            if len(data) != n:
                raise EOFError(f"{url}: cut short (wanted bytes {start}..{start + n}, got {len(data)})")
            return data

        lo, hi = min(off, joff), max(off + size, joff + jsize)
        if hi - lo <= size + jsize + 4 * TAR_BLOCK:
            blob = get(lo, hi - lo)
            video, js = blob[off - lo : off - lo + size], blob[joff - lo : joff - lo + jsize]
        else:
            video, js = get(off, size), get(joff, jsize)
        meta = json.loads(js)
        if int(meta.get("row", -1)) != int(x.row[i]):
            raise ValueError(
                f"{url}: member {x.key[i].as_py()!r} is row {meta.get('row')}, the index says "
                f"{int(x.row[i])} (index and shards are from different runs)"
            )
        return video, meta

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        x, epoch = self.index, self.epoch
        try:
            video, meta = self.read(i)
            tensor, start_s = decode_member(
                video,
                meta,
                name=f"{x.url(int(x.shard[i]))}#{x.key[i].as_py()}",
                spec=self.spec,
                seed=self.seed,
                epoch=epoch,
                train=self.train,
                hflip=self.hflip,
            )
        except Exception as exc:  # noqa: BLE001 - one bad member never stops an epoch
            if isinstance(exc, OSError) and self._open is not None:
                self.close()  # a failed read may leave the handle unusable: reopen on the next item
            self._log_failure(
                exc,
                {
                    "video_id": x.video_id[i].as_py(),
                    "uri": None,
                    "index": int(x.row[i]),
                    "epoch": epoch,
                    "shard": x.url(int(x.shard[i])),
                    "key": x.key[i].as_py(),
                },
            )
            return None
        return {"clip": tensor, "label": int(x.label[i]), "index": int(x.row[i]), "start_s": start_s}
