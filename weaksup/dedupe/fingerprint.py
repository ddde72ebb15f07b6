"""Fingerprint: the Census-Transform codes of every video at 16 fps (paper supp. A.2).

Each video becomes one ``codes`` row: a 64-bit code per sampled frame for the full frame
and its 10%/20% centre crops, and a flag per frame saying whether it is informative
(flat frames never vote in a match). Decoding is the whole cost, so frames are sampled
by timestamp and only the sampled ones are converted, straight to small grey images
(:mod:`weaksup.dedupe.decode`). A frame shown for several samples is coded once.

Row status:

* ``ok``: codes for every sample. If decoding stopped part way on damaged data the codes
  cover what decoded and ``error`` says so (``PartialDecode: ...``): a cut copy is still
  a copy.
* ``unfingerprintable``: decodes, but is shorter than one frame at ``fps`` or has no
  informative frame (all black/flat). Such a video would match everything or nothing,
  so it gets no codes.
* ``rejected``: missing, empty, not a video, no frame decodes (the bulk job's rule: a
  worker never raises, the reason goes in ``error``).

A code table is only comparable with another of the same ``code_version`` and ``fps``;
:func:`read_codes` refuses anything else.
"""

from __future__ import annotations

import functools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from weaksup import uris as uri_paths
from weaksup.assembly.videos import id_uri_lists, read_id_uri, videos_input
from weaksup.bulk import BulkConfig, BulkResult, parts_dir, run_bulk, safe_call
from weaksup.bulk import summary_path as bulk_summary_path
from weaksup.dedupe.census import CODE_VERSION, census_codes, frame_grids, informative
from weaksup.dedupe.decode import TIME_TOLERANCE_S, decode_samples
from weaksup.errors import InputError
from weaksup.ray_engine import check_engine
from weaksup.tables import read_table, write_json

DEFAULT_FPS = 16.0


@dataclass(frozen=True)
class FingerprintConfig:
    """A fingerprint run: the videos table in, the codes table out, the sampling rate, the bulk job."""

    videos: Path
    out: Path
    fps: float = DEFAULT_FPS
    workers: int = 2
    chunk_size: int = 16
    progress: bool = True
    engine: str = "local"  # "local" or "ray" (weaksup.ray_engine)
    ray_address: str | None = None
    decode_threads: bool = True  # FFmpeg's own decoder threads; off spends less CPU when every core runs a worker
    resume: bool = True  # False: delete an earlier run's parts first (--no-resume)
    resume_strict: bool = False  # stop on parts of an earlier run that do not match (--resume-strict)


def fingerprint_video(uri: str, *, fps: float = DEFAULT_FPS, thread_type: str = "AUTO") -> dict:
    """The ``codes`` row fields of one video (everything but video_id and uri).

    ``duration_s`` is ``n_codes / fps`` for an ok row and the decoded duration otherwise.
    Decoding failures raise (see :func:`weaksup.dedupe.decode.decode_samples`); the bulk
    job turns them into rejected rows.
    """
    grids: list[np.ndarray] = []
    counts: list[int] = []

    def consume(grey: np.ndarray, count: int) -> None:
        grids.append(frame_grids(grey))
        counts.append(count)

    info = decode_samples(uri, consume, fps=fps, thread_type=thread_type)
    row: dict = {"code_version": CODE_VERSION, "fps": float(fps), "duration_s": info.duration_s}
    if info.n_samples == 0 or info.duration_s < 1.0 / fps - TIME_TOLERANCE_S:
        why = (
            "the video stream has no frames"
            if info.n_samples == 0 and info.duration_s == 0
            else (f"shorter than one frame at {fps:g} fps ({info.duration_s:.3f} s)")
        )
        return {**row, "status": "unfingerprintable", "error": f"TooShort: {why}"}
    stacked = np.stack(grids)  # (distinct frames, 3, 8, 8)
    repeat = np.asarray(counts)
    codes = np.repeat(census_codes(stacked), repeat, axis=0)  # (samples, 3)
    flags = np.repeat(informative(stacked[:, 0]), repeat)
    if not flags.any():
        return {
            **row,
            "status": "unfingerprintable",
            "error": f"NoInformativeFrame: no informative frame (all {len(flags)} sampled frames are flat)",
        }
    return {
        **row,
        "status": "ok",
        "error": f"PartialDecode: {info.partial}" if info.partial else None,
        "duration_s": len(flags) / fps,
        "codes": codes[:, 0].tolist(),
        "codes_crop10": codes[:, 1].tolist(),
        "codes_crop20": codes[:, 2].tolist(),
        "informative": flags.tolist(),
    }


def _fingerprint_item(item: dict) -> dict:
    """Bulk worker: a codes row; rejected rows keep code_version and fps (non-nullable)."""
    row = safe_call(
        lambda it: fingerprint_video(it["uri"], fps=it["fps"], thread_type=it.get("thread_type", "AUTO")), item
    )
    row["code_version"], row["fps"] = CODE_VERSION, float(item["fps"])
    return row


def _tally(part: pa.Table) -> dict[str, float]:
    """What a part adds to the summary beyond its statuses: partial decodes, coded frames and seconds."""
    ok = pc.equal(part.column("status"), "ok")
    partial = pc.and_(ok, pc.is_valid(part.column("error")))
    return {
        "partial": pc.sum(partial).as_py() or 0,
        "frames": pc.sum(pc.list_value_length(pc.filter(part.column("codes"), ok))).as_py() or 0,
        "video_seconds": pc.sum(pc.filter(part.column("duration_s"), ok)).as_py() or 0.0,
    }


def summarize(result: BulkResult, wall_s: float) -> dict:
    """Row counts by status, reasons by kind, coded frames and seconds, and the run's wall time."""
    return {
        "videos": result.rows,
        "ok": result.status("ok"),
        "rejected": result.status("rejected"),
        "unfingerprintable": result.status("unfingerprintable"),
        "partial": int(result.counts.get("partial", 0)),
        "reasons": result.reasons(),
        "frames": int(result.counts.get("frames", 0)),
        "video_seconds": round(float(result.counts.get("video_seconds", 0.0)), 3),
        "wall_s": round(wall_s, 3),
    }


def fingerprint_items(table: pa.Table, first_row: int, *, fps: float, thread_type: str, label: str) -> list[dict]:
    """A block of the videos table as the fingerprint job's items."""
    ids, uris = id_uri_lists(table, first_row, label)
    return [{"video_id": v, "uri": u, "fps": fps, "thread_type": thread_type} for v, u in zip(ids, uris)]


def summary_path(out: Path | str) -> Path | str:
    return bulk_summary_path(out)


def _check_parts(out: Path, fps: float) -> None:
    """A resumed run must not mix rows of another fps or code version into the table (one part
    per block folder is read: a run writes all its parts at one fps, and this check stops any other)."""
    for folder in sorted(parts_dir(out).glob("block-*")):
        part = next(iter(sorted(folder.glob("part-*.parquet"))), None)
        if part is None:
            continue
        try:
            t = pq.read_table(part, columns=["fps", "code_version"])
        except Exception:  # a part cut short by a kill; the bulk job redoes its rows
            continue
        for f, v in zip(t.column("fps").to_pylist(), t.column("code_version").to_pylist()):
            if f != fps or v != CODE_VERSION:
                raise InputError(
                    f"{parts_dir(out)}: an interrupted run at {f:g} fps (code_version {v}) is there; "
                    f"resume it with --fps {f:g}, or start over with --no-resume"
                )


def fingerprint_videos(cfg: FingerprintConfig) -> tuple[BulkResult, dict]:
    """Fingerprint every row of the videos table into ``cfg.out`` (one row each, resumable).

    A rerun reuses only the parts whose stamp (fps, code version, and the video_id/uri of
    their rows) matches this job; parts at another fps stop the job (resume them with that
    fps, or ``resume=False``). ``decode_threads`` is not stamped: it changes the CPU spent,
    not the codes. The summary is also written beside the table as ``OUT-stem.summary.json``.
    """
    start = time.perf_counter()
    if cfg.chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {cfg.chunk_size}")
    if not cfg.fps > 0:
        raise InputError(f"fps must be positive, got {cfg.fps}")
    check_engine(cfg.engine, cfg.ray_address)
    out = cfg.out
    if not cfg.resume:
        shutil.rmtree(parts_dir(out), ignore_errors=True)
    _check_parts(out, float(cfg.fps))
    to_items = functools.partial(
        fingerprint_items,
        fps=float(cfg.fps),
        thread_type="AUTO" if cfg.decode_threads else "NONE",
        label=uri_paths.display(cfg.videos),
    )
    source = videos_input(cfg.videos, ("video_id", "uri"), to_items)
    result = run_bulk(
        source if source is not None else to_items(read_id_uri(cfg.videos), 0),
        _fingerprint_item,
        schema_name="codes",
        out=out,
        config=BulkConfig.of(cfg, "fingerprint"),
        settings={"fps": float(cfg.fps), "code_version": CODE_VERSION},
        tally=_tally,
    )
    summary = summarize(result, time.perf_counter() - start)
    write_json(summary, summary_path(out))
    return result, summary


def read_codes(path: str | Path) -> pa.Table:
    """Read and check a codes table: the schema, one code version (this one's) and one fps.

    Codes of another version or sampling rate cannot be compared with fresh ones, so a
    stale table is bad input, not something to match against.
    """
    table = read_table("codes", path)
    versions = sorted(set(table.column("code_version").to_pylist()))
    stale = [v for v in versions if v != CODE_VERSION]
    if stale:
        raise InputError(
            f"{path}: stale code table (code_version {', '.join(map(str, versions))}, this weaksup codes "
            f"version {CODE_VERSION}); re-run weaksup fingerprint"
        )
    rates = sorted(set(table.column("fps").to_pylist()))
    if len(rates) > 1:
        raise InputError(
            f"{path}: rows were coded at different fps ({', '.join(f'{r:g}' for r in rates)}); "
            "re-run weaksup fingerprint with one --fps"
        )
    return table
