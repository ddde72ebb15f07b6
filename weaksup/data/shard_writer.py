"""Training clips in tar shards (WebDataset layout), and a Dataset that streams them.

At paper scale a GPU node cannot open millions of small files from object storage: it
has to read big files front to back. :func:`write_shards` packs the video files of a
manifest, clips (virtual or materialised) or sample table, unchanged (no re-encoding),
into ``DIR/shard-000000.tar``, ``shard-000001.tar``, ... Each clip is two members with
the same *key*: ``<key>.<ext>`` (the file's bytes, its own extension) and ``<key>.json``
(video_id, label_id, label, clip_start_s, clip_end_s, duration_s, uri and ``row``, its
row in the source table). Plain tars, as the ``webdataset`` package reads them.

* Rows go into shards in a seeded order that depends only on ``(seed, video_id)`` (ties
  by row), so every shard mixes classes and a rerun plans the same shards.
* Each shard is written under a temporary name and renamed; a rerun lists the shards that
  exist and skips each one that provably belongs to the job: its stamp (a PAX global
  header, ``weaksup.stamp``: the seed and shard size, and a digest of the JSON member of
  every planned clip, i.e. ids, uris, labels, windows and rows) matches, and its members
  are exactly the planned ones (names and sizes). So a killed job resumes, and a changed
  input or setting never leaves a stale shard behind: such shards are rewritten with one
  warning (``resume_strict``: the job stops instead; ``resume=False`` starts over).
* Missing, empty or unreadable files are rows of ``DIR/rejects.parquet`` (schema
  ``shard_rejects``), never a crash. ``DIR/index.parquet`` (schema ``shard_index``) says
  where every clip is: shard, key, row, video_id, label_id, and the byte offset and size
  of both members (so one clip can also be fetched with a range read). ``DIR/summary.json``
  accounts for every row.

Reading them back: :mod:`weaksup.data.shards`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tarfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from weaksup import uris
from weaksup.bulk import StaleParts, make_stamp, read_stamp, row_digest, stale_reason
from weaksup.data.dataset import load_video_table
from weaksup.data.shards import (
    DEFAULT_SHARD_SIZE,
    INDEX_NAME,
    REJECTS_NAME,
    SHARD_NAME,
    SHARD_RE,
    STAMP_HEADER,
    SUMMARY_NAME,
    TAR_BLOCK,
)
from weaksup.errors import InputError
from weaksup.hashing import stable_hash64
from weaksup.outputs import require_local_output
from weaksup.tables import write_json, write_table

if TYPE_CHECKING:
    from weaksup.data.training_data import TrainingTable

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
    workers: int = 2  # threads writing shards (file reading and tar writing are I/O)
    progress: bool = False
    resume: bool = True  # False: delete an earlier run's shards first (--no-resume)
    resume_strict: bool = False  # stop on a shard of an earlier run that does not match (--resume-strict)

    def __post_init__(self) -> None:
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


def _tar_bytes(size: int) -> int:
    """Bytes a member of ``size`` takes in a tar: a header block plus the data padded to a block."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


@dataclass(frozen=True)
class _Clip:
    """One clip of a shard being written: where its file is and the JSON that travels with it."""

    row: int
    key: str
    ext: str
    path: str
    size: int
    meta: bytes

    @property
    def members(self) -> list[tuple[str, int]]:
        return [(f"{self.key}.{self.ext}", self.size), (f"{self.key}.json", len(self.meta))]


class _Rows:
    """The sharded table as Arrow/numpy columns: per-row Python objects are made one shard at
    a time, so planning a 65M-row table holds arrays, not 65M objects."""

    def __init__(self, table: pa.Table) -> None:
        self.videos = load_video_table(table)  # the clip windows, exactly as ClipDataset sees them
        col = table.column("label")
        self.labels = (col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col).cast(pa.string())
        self.durations = np.full(len(table), np.nan)
        if "duration_s" in table.column_names:
            self.durations = np.asarray(pc.fill_null(table.column("duration_s").cast(pa.float64()), np.nan).to_numpy())

    def clip(self, row: int, size: int) -> _Clip:
        v = self.videos
        uri, video_id = v.uri[row].as_py(), v.video_id[row].as_py()
        meta = {
            "video_id": video_id,
            "label_id": int(v.label[row]),
            "label": self.labels[row].as_py(),
            "clip_start_s": float(v.window_start[row]),
            "clip_end_s": _none_if_nan(v.window_end[row]),
            "duration_s": _none_if_nan(self.durations[row]),
            "uri": uri,
            "row": row,
        }
        blob = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return _Clip(row, shard_key(video_id, row), _extension(uri), str(uris.local_path(uri)), size, blob)

    def index(self, shard: str, members: list[tarfile.TarInfo], clips: dict[str, _Clip]) -> pa.Table:
        """Index rows of one shard from its member listing (only the clips actually in it)."""
        cols: dict[str, list[Any]] = {f: [] for f in ("key", "member", "offset", "bytes", "json_offset", "json_bytes")}
        for video, js in zip(members[::2], members[1::2]):
            cols["key"].append(video.name.partition(".")[0])
            cols["member"].append(video.name)
            cols["offset"].append(video.offset_data)
            cols["bytes"].append(video.size)
            cols["json_offset"].append(js.offset_data)
            cols["json_bytes"].append(js.size)
        rows = np.array([clips[k].row for k in cols["key"]], np.int64)
        return pa.table(
            {
                "shard": pa.array([shard] * len(rows), pa.string()),
                "key": pa.array(cols["key"], pa.string()),
                "row": pa.array(rows, pa.int64()),
                "video_id": self.videos.video_id.take(pa.array(rows)),
                "label_id": pa.array(self.videos.label[rows], pa.int32()),
                "label": self.labels.take(pa.array(rows)),
                **{k: pa.array(cols[k], pa.int64() if k != "member" else pa.string()) for k in list(cols)[1:]},
            }
        )


def _none_if_nan(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _stat(uri: str) -> int | str:
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


def _stat_all(uris: pa.Array, order: np.ndarray, workers: int) -> tuple[np.ndarray, dict[int, str]]:
    """Every row's file size (-1 when rejected) and the rejects' reasons, in blocks of rows."""
    sizes = np.full(len(uris), -1, np.int64)
    rejects: dict[int, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        for lo in range(0, len(order), 8192):
            rows = order[lo : lo + 8192]
            for row, stat in zip(rows.tolist(), pool.map(_stat, uris.take(pa.array(rows)).to_pylist())):
                if isinstance(stat, str):
                    rejects[row] = stat
                else:
                    sizes[row] = stat
    return sizes, rejects


def _plan(rows: np.ndarray, sizes: np.ndarray, cfg: ShardConfig) -> list[np.ndarray]:
    """Cut the ordered readable rows into shards, by count or by tar bytes (the JSON member
    counted as one data block: it is a few hundred bytes)."""
    if cfg.shard_bytes is None:
        size = cfg.shard_size or DEFAULT_SHARD_SIZE
        return [rows[i : i + size] for i in range(0, len(rows), size)]
    need = TAR_BLOCK + -(-sizes[rows] // TAR_BLOCK) * TAR_BLOCK + 2 * TAR_BLOCK
    bounds, used = [0], 0
    for i, n in enumerate(need.tolist()):
        if i > bounds[-1] and used + n > cfg.shard_bytes:
            bounds.append(i)
            used = 0
        used += n
    bounds.append(len(rows))
    return [rows[a:b] for a, b in zip(bounds, bounds[1:])]


def _listing(path: Path) -> list[tarfile.TarInfo] | None:
    """The members of an existing shard, or None when it is not a readable tar."""
    found = _read_shard_head(path)
    return None if found is None else found[0]


def _read_shard_head(path: Path) -> tuple[list[tarfile.TarInfo], dict[str, Any] | None] | None:
    """The members of an existing shard and its stamp (None when unstamped), or None when it
    is not a readable tar."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = tar.getmembers()
            return members, read_stamp(tar.pax_headers.get(STAMP_HEADER))
    except (tarfile.TarError, OSError, EOFError):
        return None


def _write_shard(path: Path, clips: list[_Clip], stamp: dict[str, Any] | None = None) -> dict[int, str]:
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


_Checked = tuple[str | None, list[tarfile.TarInfo] | None]  # an existing shard: (why stale, members when it belongs)


@dataclass(frozen=True)
class _ShardJob:
    """One job's plan: which rows go into which shard, and the settings its shards are stamped with."""

    out: Path
    table: _Rows
    sizes: np.ndarray  # file size of every row (-1: rejected)
    plan: list[np.ndarray]  # rows of each shard, in order
    names: list[str]
    settings: dict[str, Any]  # what changes which clips a shard holds; workers and progress do not

    def planned(self, k: int) -> tuple[list[_Clip], dict[str, Any]]:
        """Shard k's clips and the stamp that says it holds exactly them."""
        clips = [self.table.clip(row, int(self.sizes[row])) for row in self.plan[k].tolist()]
        return clips, make_stamp(self.settings, row_digest(c.meta for c in clips))

    def check(self, k: int) -> _Checked:
        """(why shard k is stale, its members when it belongs); (None, None) when there is none to check."""
        path = self.out / self.names[k]
        found = _read_shard_head(path) if path.exists() else None
        if found is None:  # absent, or cut short / not a tar: (re)written without counting as stale
            return None, None
        members, stamp = found
        clips, expected = self.planned(k)
        reason = stale_reason(stamp, self.settings, expected["rows"])
        if reason is None and [(m.name, m.size) for m in members] != [m for c in clips for m in c.members]:
            reason = "video files changed (member sizes differ)"
        return reason, members if reason is None else None

    def one(self, k: int, members: list[tarfile.TarInfo] | None) -> tuple[bool, dict[int, str], pa.Table]:
        """Index shard k, writing it first unless its checked ``members`` show it belongs: (written, failed, index)."""
        clips, stamp = self.planned(k)
        by_key = {c.key: c for c in clips}
        if members is not None:
            return False, {}, self.table.index(self.names[k], members, by_key)
        path = self.out / self.names[k]
        failed = _write_shard(path, clips, stamp)
        return True, failed, self.table.index(self.names[k], _listing(path) or [], by_key)


def _planned_shard_size(cfg: ShardConfig) -> int | None:
    """Clips per shard, or None when shards are cut by bytes."""
    return None if cfg.shard_bytes is not None else (cfg.shard_size or DEFAULT_SHARD_SIZE)


def _prepare_out(cfg: ShardConfig) -> Path:
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


def _check_existing(job: _ShardJob, cfg: ShardConfig) -> tuple[list[_Checked], StaleParts]:
    """Check every planned shard already there: each one's (stale reason, members), and the stale ones to report."""
    with ThreadPoolExecutor(cfg.workers) as pool:
        checked = list(pool.map(job.check, range(len(job.plan))))
    stale = StaleParts(job.out, "shard", "rewritten")
    for reason, members in checked:
        if reason is not None or members is not None:
            stale.check(reason)
    return checked, stale


def _remove_past_plan(job: _ShardJob) -> None:
    """Remove the shards past the plan's end (an earlier, bigger plan), so none is left stale."""
    for old in job.out.glob("shard-*.tar"):
        m = SHARD_RE.fullmatch(old.name)
        if m and int(m.group(1)) >= len(job.plan):
            old.unlink()


def _write_planned(
    job: _ShardJob,
    cfg: ShardConfig,
    checked: list[_Checked],
    rejects: dict[int, str],
) -> tuple[int, list[pa.Table]]:
    """Write the shards that do not belong yet (failed files added to ``rejects``): (shards written, index parts)."""
    from weaksup.progress import job_progress

    parts: list[pa.Table] = []
    written = 0
    bar = job_progress(enabled=cfg.progress, desc="shard", unit="shards")
    with bar, ThreadPoolExecutor(cfg.workers) as pool:
        task = bar.add_task("shard", total=len(job.plan))
        for wrote, failed, part in pool.map(job.one, range(len(job.plan)), [members for _, members in checked]):
            written += wrote
            rejects.update(failed)
            parts.append(part)
            bar.advance(task)
    return written, parts


def _write_rejects(table: _Rows, rejects: dict[int, str], path: Path) -> None:
    """The rejects table: one row per rejected table row, in row order, with its reason."""
    bad = np.array(sorted(rejects), np.int64)
    write_table(
        "shard_rejects",
        {
            "row": pa.array(bad, pa.int64()),
            "video_id": table.videos.video_id.take(pa.array(bad)),
            "uri": table.videos.uri.take(pa.array(bad)),
            "reason": pa.array([rejects[i] for i in bad.tolist()], pa.string()),
        },
        path,
    )


def _summary(
    cfg: ShardConfig, data: TrainingTable, n: int, clips: int, rejects: dict[int, str], job: _ShardJob, written: int
) -> dict[str, Any]:
    """The job's summary.json: every row accounted for, the shards and their bytes, the settings and outputs."""
    out = job.out
    shard_sizes = [(out / name).stat().st_size for name in job.names]
    return {
        "table": f"{cfg.manifest} ({data.kind})",
        "rows": n,
        "clips": clips,
        "rejected": len(rejects),
        "rejected_by_reason": dict(Counter(r.split(":")[0] for r in rejects.values()).most_common()),
        "num_classes": data.num_classes,
        "shards": len(job.plan),
        "shards_written": written,
        "shards_skipped": len(job.plan) - written,
        "bytes": int(sum(shard_sizes)),
        "largest_shard_bytes": int(max(shard_sizes, default=0)),
        "seed": cfg.seed,
        "shard_size": _planned_shard_size(cfg),
        "shard_bytes": cfg.shard_bytes,
        "index": str(out / INDEX_NAME),
        "rejects": str(out / REJECTS_NAME),
    }


def write_shards(cfg: ShardConfig) -> dict[str, Any]:
    """Pack a training table's video files into tar shards; writes the index, rejects and summary.

    The table is read like ``pretrain`` reads it (manifest, clips or sample; InputError for a
    missing file or wrong columns). Existing shards are kept only when their stamp and
    members match this job's plan (see the module docstring). Returns the summary.
    """
    require_local_output(cfg.out)
    from weaksup.data.training_data import read_training_table

    data = read_training_table(Path(cfg.manifest))
    table = _Rows(data.table)
    videos = table.videos
    n = len(videos)
    order = np.lexsort((np.arange(n), stable_hash64(videos.video_id, cfg.seed, "shard")))
    out = _prepare_out(cfg)

    sizes, rejects = _stat_all(videos.uri, order, cfg.workers)
    plan = _plan(order[sizes[order] >= 0], sizes, cfg)
    names = [SHARD_NAME.format(k) for k in range(len(plan))]
    settings = {"seed": cfg.seed, "shard_size": _planned_shard_size(cfg), "shard_bytes": cfg.shard_bytes}
    job = _ShardJob(out, table, sizes, plan, names, settings)
    checked, stale = _check_existing(job, cfg)
    stale.report(cfg.resume_strict)  # here, for its warning's stacklevel; before any shard is rewritten or removed
    _remove_past_plan(job)
    written, parts = _write_planned(job, cfg, checked, rejects)

    index = write_table(
        "shard_index", pa.concat_tables(parts) if parts else {f: [] for f in _INDEX_FIELDS}, out / INDEX_NAME
    )
    _write_rejects(table, rejects, out / REJECTS_NAME)
    summary = _summary(cfg, data, n, index.num_rows, rejects, job, written)
    write_json(summary, out / SUMMARY_NAME)
    return summary


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
