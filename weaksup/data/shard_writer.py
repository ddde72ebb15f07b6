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

The shard format (clips, stamps, checks, the index) is :mod:`weaksup.data.shard_format`;
``engine="ray"`` runs the same job as Ray tasks (:mod:`weaksup.data.shard_ray`). Reading
them back: :mod:`weaksup.data.shards`.
"""

from __future__ import annotations

import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from weaksup.bulk import StaleParts
from weaksup.data.shard_format import (
    Checked,
    ShardClip,
    ShardConfig,
    ShardRows,
    check_shard,
    cut_by_bytes,
    empty_index,
    parse_size,
    prepare_out,
    reason_counts,
    remove_past_plan,
    shard_settings,
    shard_summary,
    stat_file,
    tar_need,
    write_or_index,
)
from weaksup.data.shards import (
    DEFAULT_SHARD_SIZE,
    INDEX_NAME,
    REJECTS_NAME,
    SHARD_NAME,
    SUMMARY_NAME,
)
from weaksup.hashing import stable_hash64
from weaksup.outputs import require_local_output
from weaksup.tables import write_json, write_table


def _stat_all(uris: pa.Array, order: np.ndarray, workers: int) -> tuple[np.ndarray, dict[int, str]]:
    """Every row's file size (-1 when rejected) and the rejects' reasons, in blocks of rows."""
    sizes = np.full(len(uris), -1, np.int64)
    rejects: dict[int, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        for lo in range(0, len(order), 8192):
            rows = order[lo : lo + 8192]
            for row, stat in zip(rows.tolist(), pool.map(stat_file, uris.take(pa.array(rows)).to_pylist())):
                if isinstance(stat, str):
                    rejects[row] = stat
                else:
                    sizes[row] = stat
    return sizes, rejects


def _plan(rows: np.ndarray, sizes: np.ndarray, cfg: ShardConfig) -> list[np.ndarray]:
    """Cut the ordered readable rows into shards, by count or by tar bytes."""
    if cfg.shard_bytes is None:
        size = cfg.shard_size or DEFAULT_SHARD_SIZE
        return [rows[i : i + size] for i in range(0, len(rows), size)]
    bounds = [0, *cut_by_bytes([tar_need(sizes[rows])], cfg.shard_bytes), len(rows)]
    return [rows[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@dataclass(frozen=True)
class _ShardJob:
    """One job's plan: which rows go into which shard, and the settings its shards are stamped with."""

    out: Path
    table: ShardRows
    sizes: np.ndarray  # file size of every row (-1: rejected)
    plan: list[np.ndarray]  # rows of each shard, in order
    names: list[str]
    settings: dict[str, Any]  # what changes which clips a shard holds; workers and progress do not

    def planned(self, k: int) -> list[ShardClip]:
        return [self.table.clip(row, int(self.sizes[row])) for row in self.plan[k].tolist()]

    def check(self, k: int) -> Checked:
        path = self.out / self.names[k]
        if not path.exists():  # nothing to judge: its clips are made once, when it is written
            return None, None
        return check_shard(path, self.planned(k), self.settings)

    def one(self, k: int, members: list[tarfile.TarInfo] | None) -> tuple[bool, dict[int, str], pa.Table]:
        return write_or_index(self.out / self.names[k], self.planned(k), self.settings, members)


def _check_existing(job: _ShardJob, cfg: ShardConfig) -> tuple[list[Checked], StaleParts]:
    """Check every planned shard already there: each one's (stale reason, members), and the stale ones to report."""
    with ThreadPoolExecutor(cfg.workers) as pool:
        checked = list(pool.map(job.check, range(len(job.plan))))
    stale = StaleParts(job.out, "shard", "rewritten")
    for reason, members in checked:
        if reason is not None or members is not None:
            stale.check(reason)
    return checked, stale


def _write_planned(
    job: _ShardJob,
    cfg: ShardConfig,
    checked: list[Checked],
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


def _write_rejects(table: ShardRows, rejects: dict[int, str], path: Path) -> None:
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


def write_shards(cfg: ShardConfig) -> dict[str, Any]:
    """Pack a training table's video files into tar shards; writes the index, rejects and summary.

    The table is read like ``pretrain`` reads it (manifest, clips or sample; InputError for a
    missing file or wrong columns). Existing shards are kept only when their stamp and
    members match this job's plan (see the module docstring). Returns the summary. With
    ``engine="ray"`` the same shards are written by Ray tasks (:mod:`weaksup.data.shard_ray`).
    """
    require_local_output(cfg.out)
    if cfg.engine == "ray":
        from weaksup.data.shard_ray import write_shards_on_ray

        return write_shards_on_ray(cfg)
    from weaksup.data.training_data import read_training_table

    data = read_training_table(Path(cfg.manifest))
    table = ShardRows(data.table)
    videos = table.videos
    n = len(videos)
    order = np.lexsort((np.arange(n), stable_hash64(videos.video_id, cfg.seed, "shard")))
    out = prepare_out(cfg)

    sizes, rejects = _stat_all(videos.uri, order, cfg.workers)
    plan = _plan(order[sizes[order] >= 0], sizes, cfg)
    names = [SHARD_NAME.format(k) for k in range(len(plan))]
    job = _ShardJob(out, table, sizes, plan, names, shard_settings(cfg))
    checked, stale = _check_existing(job, cfg)
    stale.report(cfg.resume_strict)  # here, for its warning's stacklevel; before any shard is rewritten or removed
    remove_past_plan(out, len(plan))
    written, parts = _write_planned(job, cfg, checked, rejects)

    index = write_table("shard_index", pa.concat_tables(parts) if parts else empty_index(), out / INDEX_NAME)
    _write_rejects(table, rejects, out / REJECTS_NAME)
    summary = shard_summary(
        cfg,
        kind=data.kind,
        rows=n,
        clips=index.num_rows,
        rejected_by_reason=reason_counts(rejects.values()),
        num_classes=data.num_classes,
        shards=len(plan),
        written=written,
    )
    write_json(summary, out / SUMMARY_NAME)
    return summary


__all__ = ["ShardConfig", "parse_size", "write_shards"]
