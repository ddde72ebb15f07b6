"""What a shard is and how one is written, checked and indexed: shared by both engines.

The local engine (:mod:`weaksup.data.shard_writer`) and the Ray engine
(:mod:`weaksup.data.shard_ray`) plan the same shards in the same order; this module makes
each shard's clips (:class:`ShardRows`), writes a shard atomically with its stamp
(:func:`write_shard`), judges one an earlier run left (:func:`check_shard`), indexes it
(:func:`shard_index`) and cuts an order into shards by bytes (:func:`cut_by_bytes`), so
that both engines write the same bytes and either resumes the other's shards.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weaksup import uris
from weaksup.bulk import make_stamp, read_stamp, row_digest, stale_reason
from weaksup.data.dataset import load_video_table
from weaksup.data.shards import (
    DEFAULT_SHARD_SIZE,
    INDEX_NAME,
    REJECTS_NAME,
    SHARD_NAME,
    SHARD_RE,
    STAMP_HEADER,
    TAR_BLOCK,
)
from weaksup.errors import InputError
from weaksup.ray_engine import check_engine

_UNITS = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "KB": 10**3,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
    "T": 10**12,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


# ----------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ShardConfig:
    """One ``weaksup shard`` job: a training table into tar shards of ``shard_size`` clips or ~``shard_bytes``."""

    manifest: Path
    out: Path
    shard_size: int | None = None  # clips per shard (DEFAULT_SHARD_SIZE when neither limit is given)
    shard_bytes: int | None = None  # target bytes per shard; a bigger file gets a shard of its own
    seed: int = 0
    workers: int = 2  # threads writing shards (file reading and tar writing are I/O); with Ray, per task
    progress: bool = False
    resume: bool = True  # False: delete an earlier run's shards first (--no-resume)
    resume_strict: bool = False  # stop on a shard of an earlier run that does not match (--resume-strict)
    engine: str = "local"  # "ray": the files are sized, ordered and written by Ray tasks (same shards)
    ray_address: str | None = None  # with engine "ray": join this cluster instead of a private Ray

    def __post_init__(self) -> None:
        check_engine(self.engine, self.ray_address)
        if self.shard_size is not None and self.shard_bytes is not None:
            raise InputError("give --shard-size or --shard-bytes, not both")
        if self.shard_size is not None and self.shard_size < 1:
            raise InputError(f"--shard-size must be >= 1 (got {self.shard_size})")
        if self.shard_bytes is not None and self.shard_bytes < 1:
            raise InputError(f"--shard-bytes must be >= 1 byte (got {self.shard_bytes})")
        if self.seed < 0:
            raise InputError(f"--seed must be >= 0 (got {self.seed})")
        if self.workers < 1:
            raise InputError(f"--threads must be >= 1 (got {self.workers})")


def parse_size(text: str | int) -> int:
    """Bytes in ``1GB``, ``500MiB``, ``2e9`` or ``4096`` (K/M/G/T decimal, KiB/MiB/GiB/TiB binary)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _UNITS:
        raise InputError(f"--shard-bytes: cannot read {text!r} as a size (e.g. 1GB, 500MiB, 2e9)")
    return int(float(m.group(1)) * _UNITS[unit])


def shard_key(video_id: str, row: int) -> str:
    """A member key: the video id made safe (no dots or slashes: WebDataset splits names at the
    first dot) plus the row, so keys stay unique when ids collide after cleaning or repeat."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", video_id)[:80].strip("_") or "video"
    return f"{safe}-{row}"


def _extension(uri: str) -> str:
    ext = re.sub(r"[^a-z0-9]", "", Path(uri.split("?")[0]).suffix.lower())
    return ext if ext and ext != "json" else "bin"


@dataclass(frozen=True)
class ShardClip:
    """One clip of a shard being written: where its file is, the JSON that travels with it,
    and what the index and the rejects say of it."""

    row: int
    key: str
    ext: str
    path: str
    size: int
    meta: bytes
    video_id: str
    label_id: int
    label: str | None
    uri: str

    @property
    def members(self) -> list[tuple[str, int]]:
        return [(f"{self.key}.{self.ext}", self.size), (f"{self.key}.json", len(self.meta))]


class ShardRows:
    """A training table (or a block of one, whose first row is ``first_row``) as Arrow/numpy
    columns: per-row Python objects are made one shard at a time, so planning a 65M-row
    table holds arrays, not 65M objects."""

    def __init__(self, table: pa.Table, first_row: int = 0) -> None:
        self.videos = load_video_table(table)  # the clip windows, exactly as ClipDataset sees them
        self.first_row = first_row
        col = table.column("label")
        self.labels = (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).cast(pa.string())
        self.durations = np.full(len(table), np.nan)
        if "duration_s" in table.column_names:
            self.durations = np.asarray(pc.fill_null(table.column("duration_s").cast(pa.float64()), np.nan).to_numpy())

    def clip(self, i: int, size: int) -> ShardClip:
        """The clip of the table's ``i``-th row (input row ``first_row + i``), its file ``size`` bytes."""
        v = self.videos
        row = self.first_row + i
        uri, video_id, label = v.uri[i].as_py(), v.video_id[i].as_py(), self.labels[i].as_py()
        meta = {
            "video_id": video_id,
            "label_id": int(v.label[i]),
            "label": label,
            "clip_start_s": float(v.window_start[i]),
            "clip_end_s": _none_if_nan(v.window_end[i]),
            "duration_s": _none_if_nan(self.durations[i]),
            "uri": uri,
            "row": row,
        }
        blob = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
        path = str(uris.local_path(uri))
        key = shard_key(video_id, row)
        return ShardClip(row, key, _extension(uri), path, size, blob, video_id, int(v.label[i]), label, uri)


def shard_index(shard: str, members: list[tarfile.TarInfo], clips: dict[str, ShardClip]) -> pa.Table:
    """Index rows of one shard from its member listing (only the clips actually in it)."""
    cols: dict[str, list[Any]] = {f: [] for f in ("key", "member", "offset", "bytes", "json_offset", "json_bytes")}
    for video, js in zip(members[::2], members[1::2]):
        cols["key"].append(video.name.partition(".")[0])
        cols["member"].append(video.name)
        cols["offset"].append(video.offset_data)
        cols["bytes"].append(video.size)
        cols["json_offset"].append(js.offset_data)
        cols["json_bytes"].append(js.size)
    listed = [clips[k] for k in cols["key"]]
    return pa.table(
        {
            "shard": pa.array([shard] * len(listed), pa.string()),
            "key": pa.array(cols["key"], pa.string()),
            "row": pa.array([c.row for c in listed], pa.int64()),
            "video_id": pa.array([c.video_id for c in listed], pa.string()),
            "label_id": pa.array([c.label_id for c in listed], pa.int32()),
            "label": pa.array([c.label for c in listed], pa.string()),
            **{k: pa.array(cols[k], pa.int64() if k != "member" else pa.string()) for k in list(cols)[1:]},
        }
    )


def _none_if_nan(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def stat_file(uri: str) -> int | str:
    """Size of a readable, non-empty file, else the reject reason."""
    try:
        path = uris.local_path(uri)
        st = path.stat()
    except uris.UnsupportedUri as exc:
        return f"unsupported uri: {exc}"
    except FileNotFoundError:
        return f"file not found: {uri}"
    except OSError as exc:
        return f"unreadable: {uri} ({exc.strerror or exc})"
    except ValueError as exc:  # an embedded NUL byte: no such path can exist
        return f"bad uri: {uri!r} ({exc})"
    if not path.is_file():
        return f"not a regular file: {uri}"
    if st.st_size == 0:
        return f"empty file: {uri}"
    return int(st.st_size)


def tar_need(sizes: np.ndarray) -> np.ndarray:
    """Tar bytes each clip takes: its file member, plus its JSON member counted as one data
    block (it is a few hundred bytes), each with a header block."""
    return TAR_BLOCK + -(-sizes // TAR_BLOCK) * TAR_BLOCK + 2 * TAR_BLOCK


def cut_by_bytes(needs: Iterable[np.ndarray], limit: int) -> Iterator[int]:
    """Where each shard after the first starts (a position in the ordered clips) when shards
    are filled up to ``limit`` tar bytes, a bigger clip getting a shard of its own; ``needs``
    are the clips' :func:`tar_need` in order, in pieces of any size (buckets of a
    distributed sort), so this holds one open shard and one piece, never the whole order."""
    pending = np.empty(0, np.int64)  # needs of the open shard's clips (from position base) and of this piece
    base = 0
    for piece in needs:
        pending = np.concatenate([pending, np.asarray(piece, np.int64)])
        total = np.concatenate([[0], np.cumsum(pending)])
        start = 0
        while True:
            # the first clip that does not fit into the shard that starts at ``start``
            overflow = int(np.searchsorted(total, total[start] + limit, side="right")) - 1
            following = max(start + 1, overflow)  # where the next shard starts
            if overflow >= len(pending) or following >= len(pending):  # it starts at a clip not known yet, if any
                break
            start = following
            yield base + start
        pending, base = pending[start:], base + start


def read_shard_head(path: Path) -> tuple[list[tarfile.TarInfo], dict[str, Any] | None] | None:
    """The members of an existing shard and its stamp (None when unstamped), or None when it
    is not a readable tar."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            return members, read_stamp(tar.pax_headers.get(STAMP_HEADER))
    except (tarfile.TarError, OSError, EOFError):
        return None


def write_shard(path: Path, clips: list[ShardClip], stamp: dict[str, Any] | None = None) -> dict[int, str]:
    """Write one shard (temporary name, then rename), ``stamp`` as its PAX global header;
    returns {row: reason} for files that failed."""
    failed: dict[int, str] = {}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{id(clips)}")
    headers = {STAMP_HEADER: json.dumps(stamp, sort_keys=True)} if stamp is not None else {}
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT, pax_headers=headers) as tar:
            for clip in clips:
                try:
                    with open(clip.path, "rb") as f:
                        data = f.read()  # whole, so a file that changes size cannot cut the tar mid-member
                except OSError as exc:
                    failed[clip.row] = f"unreadable: {clip.path} ({exc.strerror or exc})"
                    continue
                if not data:
                    failed[clip.row] = f"empty file: {clip.path}"
                    continue
                for (name, _), payload in zip(clip.members, (data, clip.meta)):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(payload), 0o644, 0  # same bytes on every run
                    tar.addfile(info, io.BytesIO(payload))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return failed


#: An existing shard, checked: (why it is stale, its members when it belongs).
Checked = tuple[str | None, list[tarfile.TarInfo] | None]


def shard_stamp(clips: list[ShardClip], settings: dict[str, Any]) -> dict[str, Any]:
    """The stamp that says a shard holds exactly ``clips``, written with ``settings``."""
    return make_stamp(settings, row_digest(c.meta for c in clips))


def check_shard(path: Path, clips: list[ShardClip], settings: dict[str, Any]) -> Checked:
    """(why the shard at ``path`` is stale, its members when it belongs); (None, None) when
    there is none to check (absent, or cut short / not a tar: written again without counting as stale)."""
    found = read_shard_head(path) if path.exists() else None
    if found is None:
        return None, None
    members, stamp = found
    reason = stale_reason(stamp, settings, shard_stamp(clips, settings)["rows"])
    if reason is None and [(m.name, m.size) for m in members] != [m for c in clips for m in c.members]:
        reason = "video files changed (member sizes differ)"
    return reason, members if reason is None else None


def write_or_index(
    path: Path, clips: list[ShardClip], settings: dict[str, Any], members: list[tarfile.TarInfo] | None
) -> tuple[bool, dict[int, str], pa.Table]:
    """Index a shard, writing it first unless its checked ``members`` show it belongs:
    (written, {row: reason} of files that failed, index rows)."""
    by_key = {c.key: c for c in clips}
    if members is not None:
        return False, {}, shard_index(path.name, members, by_key)
    failed = write_shard(path, clips, shard_stamp(clips, settings))
    found = read_shard_head(path)
    return True, failed, shard_index(path.name, found[0] if found else [], by_key)


def shard_settings(cfg: ShardConfig) -> dict[str, Any]:
    """What changes which clips a shard holds (its stamp); threads, engine and progress do not."""
    shard_size = None if cfg.shard_bytes is not None else (cfg.shard_size or DEFAULT_SHARD_SIZE)
    return {"seed": cfg.seed, "shard_size": shard_size, "shard_bytes": cfg.shard_bytes}


def prepare_out(cfg: ShardConfig) -> Path:
    """Create the output folder, drop a killed run's temporaries, and (no resume) the earlier shards."""
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    for stale in out.glob(".shard-*.tar.tmp-*"):  # left by a killed run
        stale.unlink(missing_ok=True)
    if not cfg.resume:
        for old in out.glob("shard-*.tar"):
            old.unlink()
    return out


def remove_past_plan(out: Path, shards: int) -> None:
    """Remove the shards past the plan's end (an earlier, bigger plan), so none is left stale."""
    for old in out.glob("shard-*.tar"):
        m = SHARD_RE.fullmatch(old.name)
        if m and int(m.group(1)) >= shards:
            old.unlink()


def shard_summary(
    cfg: ShardConfig,
    *,
    kind: str,
    rows: int,
    clips: int,
    rejected_by_reason: Counter,
    num_classes: int,
    shards: int,
    written: int,
) -> dict[str, Any]:
    """The job's summary.json: every row accounted for, the shards and their bytes, the settings and outputs."""
    out = Path(cfg.out)
    shard_sizes = [(out / SHARD_NAME.format(k)).stat().st_size for k in range(shards)]
    settings = shard_settings(cfg)
    return {
        "table": f"{cfg.manifest} ({kind})",
        "rows": rows,
        "clips": clips,
        "rejected": int(sum(rejected_by_reason.values())),
        "rejected_by_reason": dict(rejected_by_reason.most_common()),
        "num_classes": num_classes,
        "shards": shards,
        "shards_written": written,
        "shards_skipped": shards - written,
        "bytes": int(sum(shard_sizes)),
        "largest_shard_bytes": int(max(shard_sizes, default=0)),
        "seed": cfg.seed,
        "shard_size": settings["shard_size"],
        "shard_bytes": cfg.shard_bytes,
        "index": str(out / INDEX_NAME),
        "rejects": str(out / REJECTS_NAME),
    }


def reason_counts(reasons: Iterable[str]) -> Counter:
    """Rejects by reason (the text before the first colon)."""
    return Counter(r.split(":")[0] for r in reasons)


def empty_index() -> dict[str, list]:
    return {f: [] for f in _INDEX_FIELDS}


_INDEX_FIELDS = (
    "shard",
    "key",
    "row",
    "video_id",
    "label_id",
    "label",
    "member",
    "offset",
    "bytes",
    "json_offset",
    "json_bytes",
)
