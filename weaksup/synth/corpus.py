"""An embedded synthetic web-video corpus whose truth is known: ``weaksup synth-corpus``.

The real pipeline (IG-65M, Ghadiyaram et al. 2019) learns from web videos whose hashtags
are noisy and whose action fills only part of a long video, then transfers to a clean
target benchmark, and must not train on copies of the benchmark's test videos. This
module builds a tiny corpus with all of that, and records the truth, so every stage can
be checked end to end on a laptop:

* classes are defined by **motion** only (sliding left, spinning clockwise, ...). Shape,
  colour, size, position and the textured background are drawn independently of the
  class, so a single frame does not tell the class while a video model can;
* ``n_videos`` web videos with Zipf class frequencies, log-uniform durations, the
  action only in a window of long videos, and hashtags with missing, wrong and extra
  labels plus unrelated tags (``DIR/videos.parquet``, schema ``videos``);
* a target benchmark in another visual domain (``DIR/target/{train,test}.parquet``,
  schema ``manifest``), some of whose test videos are planted, transformed, in the web
  corpus (``DIR/planted.parquet``);
* the truth per web video (``DIR/truth.parquet``) and the class list (``DIR/labels.txt``),
  from which ``weaksup build-labels --source file --labels-file DIR/labels.txt --out
  labels.parquet`` builds the label space that ``weaksup match`` meets the hashtags with.

Everything is a function of the config (seed included). Three modules, one concern each:

* :mod:`weaksup.synth.plan`: the classes, :class:`SynthCorpusConfig`, and
  :func:`draw_corpus_plan`, which draws every video's parameters without encoding, so
  statistics can be checked on thousands of videos;
* :mod:`weaksup.synth.render`: :func:`render_clip` and :func:`plant_frames` turn a plan
  entry into frames;
* this module: encoding the videos and writing the tables (:func:`synth_corpus`). Video
  files carry a digest of their plan entry in their name, so a rerun into the same folder
  skips the files already written for the same config and encodes only the rest.

Every public name of the plan and render modules is importable from here too.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weaksup.errors import InputError
from weaksup.pools import make_pool
from weaksup.synth.plan import (
    CLASS_NAMES,
    CLASSES,
    CRF,
    DIAGONALS,
    NOISE_KINDS,
    SHAPES,
    TARGET_ONLY_CLASSES,
    TRANSFORMS,
    Background,
    ClipSpec,
    CorpusPlan,
    Distractor,
    Motion,
    MotionClass,
    PlantSpec,
    Shape,
    SynthCorpusConfig,
    TargetVideo,
    Transform,
    WebVideo,
    draw_clip,
    draw_corpus_plan,
    noise_vocabulary,
    target_class_list,
    validate_config,
)
from weaksup.synth.render import object_pose, plant_frames, render_clip, video_frames

__all__ = [
    # the plan (weaksup.synth.plan)
    "CLASS_NAMES",
    "CLASSES",
    "DIAGONALS",
    "NOISE_KINDS",
    "SHAPES",
    "TARGET_ONLY_CLASSES",
    "TRANSFORMS",
    "Background",
    "ClipSpec",
    "CorpusPlan",
    "Distractor",
    "Motion",
    "MotionClass",
    "PlantSpec",
    "Shape",
    "SynthCorpusConfig",
    "TargetVideo",
    "Transform",
    "WebVideo",
    "draw_clip",
    "draw_corpus_plan",
    "noise_vocabulary",
    "target_class_list",
    "validate_config",
    # rendering (weaksup.synth.render)
    "object_pose",
    "plant_frames",
    "render_clip",
    "video_frames",
    # writing (this module)
    "synth_corpus",
]


# ----------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _EncodeJob:
    """One video to encode into ``path`` (sent to a pool worker as is)."""

    path: str
    video: WebVideo | TargetVideo
    fps: float
    crf: int
    n_frames: int
    size: tuple[int, int]


def _is_complete(path: Path, n_frames: int, size: tuple[int, int]) -> bool:
    """A file from an earlier run counts if it opens with the planned frame count and size."""
    from weaksup.video_io import open_video_stream

    try:
        container, stream = open_video_stream(str(path))
        with container:
            return stream.frames == n_frames and (stream.codec_context.width, stream.codec_context.height) == size
    except Exception:  # noqa: BLE001 - anything unreadable is simply encoded again
        return False


def _encode(job: _EncodeJob) -> tuple[int, bool]:
    """Encode one video unless it is already there; return its bytes and whether it was encoded."""
    from weaksup.synth.video import write_video

    path = Path(job.path)
    if path.exists() and _is_complete(path, job.n_frames, job.size):
        return path.stat().st_size, False
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.mp4")
    try:
        write_video(
            tmp, video_frames(job.video), fps=job.fps, gop=max(1, round(job.fps)), options={"crf": str(job.crf)}
        )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.stat().st_size, True


_OUR_FILE = re.compile(r"^([wt]\d+-[0-9a-f]{10}\.mp4|\.[wt]\d+-[0-9a-f]{10}\.tmp-\d+\.mp4)$")


def _remove_stale(folder: Path, keep: set[str]) -> int:
    """Delete video files of an earlier, different config (only names this module writes)."""
    removed = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name not in keep and _OUR_FILE.match(p.name) and p.is_file():
                p.unlink()
                removed += 1
    return removed


def _write_parquet(table, path: Path) -> None:
    """Write a plain Parquet table atomically (temporary name, then rename)."""
    import pyarrow.parquet as pq

    from weaksup.outputs import atomic_output

    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _write_text(text: str, path: Path) -> None:
    from weaksup.outputs import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def synth_corpus(cfg: SynthCorpusConfig, *, progress: bool = True) -> dict:
    """Encode the corpus of ``cfg`` under ``cfg.out`` and write its tables; return a summary.

    Files already written by a run of the same config are kept; tables are written at the end.
    """
    from weaksup.tables import write_json

    started = time.perf_counter()
    plan = draw_corpus_plan(cfg)
    out = Path(cfg.out)
    web_dir, target_dir = _output_folders(out)
    jobs = _encode_jobs(plan, web_dir, target_dir)
    stale = _remove_stale(web_dir, {v.file_name for v in plan.web})
    stale += _remove_stale(target_dir, {t.file_name for t in plan.target})
    sizes, encoded = _encode_all(jobs, cfg.workers, progress)
    paths = _write_tables(plan, out, web_dir, target_dir)
    files = {
        "files": len(jobs),
        "encoded": encoded,
        "skipped": len(jobs) - encoded,
        "stale_removed": stale,
        "bytes": int(sum(sizes)),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    summary = _summary(plan, files, paths)
    write_json(summary, out / "summary.json")
    return summary


def _output_folders(out: Path) -> tuple[Path, Path]:
    """Create ``OUT/videos`` and ``OUT/target/videos``; return them resolved."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (synth-corpus writes a folder)")
    web_dir, target_dir = out / "videos", out / "target" / "videos"
    try:
        web_dir.mkdir(parents=True, exist_ok=True)
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folders ({exc.strerror or exc})") from None
    return web_dir.resolve(), target_dir.resolve()


def _encode_jobs(plan: CorpusPlan, web_dir: Path, target_dir: Path) -> list[_EncodeJob]:
    """One encoding job per planned video, web videos first, in plan order."""
    return [
        _EncodeJob(str(web_dir / v.file_name), v, v.fps, v.plant.crf if v.plant else CRF, v.n_frames, v.size)
        for v in plan.web
    ] + [
        _EncodeJob(str(target_dir / t.file_name), t, t.clip.fps, CRF, t.clip.n_frames, (t.clip.width, t.clip.height))
        for t in plan.target
    ]


def _encode_all(jobs: list[_EncodeJob], workers: int, progress: bool) -> tuple[list[int], int]:
    """Encode every job (in-process, or on ``workers`` processes); return each file's bytes and the count encoded."""
    from weaksup.progress import job_progress

    # long videos first, so that the pool does not end waiting on one
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].n_frames * jobs[i].size[0] * jobs[i].size[1])
    sizes = [0] * len(jobs)
    encoded = 0
    with job_progress(enabled=progress, desc="synth-corpus", unit="videos") as bar:
        task = bar.add_task("encoding", total=len(jobs))
        if workers <= 0 or len(jobs) <= 1:
            for i in order:
                sizes[i], fresh = _encode(jobs[i])
                encoded += fresh
                bar.advance(task)
        else:
            with make_pool(workers) as pool:
                futures = {pool.submit(_encode, jobs[i]): i for i in order}
                for fut in as_completed(futures):
                    sizes[futures[fut]], fresh = fut.result()
                    encoded += fresh
                    bar.advance(task)
    return sizes, encoded


# ----------------------------------------------------------------------------- tables


def _write_tables(plan: CorpusPlan, out: Path, web_dir: Path, target_dir: Path) -> dict[str, Path]:
    """Write the videos, truth, planted and target tables and labels.txt; return their paths by summary key."""
    names = [c.name for c in plan.classes]
    web_uris = [str(web_dir / v.file_name) for v in plan.web]
    paths = {"videos": out / "videos.parquet", "truth": out / "truth.parquet", "labels": out / "labels.txt"}
    _write_videos(plan, web_uris, paths["videos"])
    _write_truth(plan, web_uris, paths["truth"])
    paths["planted_table"] = out / "planted.parquet"
    _write_planted(plan, paths["planted_table"])
    for split in ("train", "test"):
        paths[f"target_{split}_manifest"] = out / "target" / f"{split}.parquet"
        _write_target_manifest(plan, split, target_dir, paths[f"target_{split}_manifest"])
    _write_text("".join(f"{n}\n" for n in names), paths["labels"])
    return paths


def _write_videos(plan: CorpusPlan, web_uris: list[str], path: Path) -> None:
    """The web videos as a ``videos`` table, the input of ``weaksup match``."""
    import pyarrow as pa

    from weaksup.tables import write_table

    write_table(
        "videos",
        {
            "video_id": [v.video_id for v in plan.web],
            "uri": web_uris,
            "hashtags": pa.array([list(v.hashtags) for v in plan.web], pa.list_(pa.string())),
            "duration_s": [v.duration_s for v in plan.web],
        },
        path,
    )


def _write_truth(plan: CorpusPlan, web_uris: list[str], path: Path) -> None:
    """The truth of every web video: class, action window, hashtag noise, planted source, size."""
    import pyarrow as pa

    names = [c.name for c in plan.classes]
    truth = pa.table(
        {
            "video_id": [v.video_id for v in plan.web],
            "label": [names[v.label_id] for v in plan.web],
            "label_id": pa.array([v.label_id for v in plan.web], pa.int32()),
            "action_start_s": [v.action_start_s for v in plan.web],
            "action_end_s": [v.action_end_s for v in plan.web],
            "duration_s": [v.duration_s for v in plan.web],
            "hashtags_noise": [v.hashtags_noise for v in plan.web],
            "tagged_label_ids": pa.array([list(v.tagged_label_ids) for v in plan.web], pa.list_(pa.int32())),
            "planted_from": pa.array([v.planted_from for v in plan.web], pa.string()),
            "transform": pa.array([v.plant.transform if v.plant else None for v in plan.web], pa.string()),
            "fps": [v.fps for v in plan.web],
            "n_frames": pa.array([v.n_frames for v in plan.web], pa.int32()),
            "width": pa.array([v.size[0] for v in plan.web], pa.int32()),
            "height": pa.array([v.size[1] for v in plan.web], pa.int32()),
            "uri": web_uris,
        }
    )
    _write_parquet(truth, path)


def _write_planted(plan: CorpusPlan, path: Path) -> None:
    """Which web videos are copies of which target test videos, and by which transform."""
    import pyarrow as pa

    planted = [v for v in plan.web if v.plant is not None]
    _write_parquet(
        pa.table(
            {
                "web_video_id": pa.array([v.video_id for v in planted], pa.string()),
                "target_video_id": pa.array([v.planted_from for v in planted], pa.string()),
                "transform": pa.array([v.plant.transform for v in planted], pa.string()),  # type: ignore[union-attr]
            }
        ),
        path,
    )


def _write_target_manifest(plan: CorpusPlan, split: str, target_dir: Path, path: Path) -> None:
    """One split of the target benchmark as a ``manifest`` table."""
    import pyarrow as pa

    from weaksup.tables import write_table

    target_names = [c.name for c in plan.target_classes]
    rows = [t for t in plan.target if t.split == split]
    write_table(
        "manifest",
        {
            "video_id": pa.array([t.video_id for t in rows], pa.string()),
            "uri": pa.array([str(target_dir / t.file_name) for t in rows], pa.string()),
            "label_id": pa.array([t.label_id for t in rows], pa.int32()),
            "label": pa.array([target_names[t.label_id] for t in rows], pa.string()),
            "matched_label_ids": pa.array([[t.label_id] for t in rows], pa.list_(pa.int32())),
            "duration_s": pa.array([t.duration_s for t in rows], pa.float64()),
        },
        path,
    )


def _summary(plan: CorpusPlan, files: dict, paths: dict[str, Path]) -> dict:
    """The corpus in numbers (``files``: the encoding counts and wall time), then the tables' paths."""
    per_class = np.bincount([v.label_id for v in plan.web], minlength=len(plan.classes))
    web_seconds = sum(v.duration_s for v in plan.web)
    target_seconds = sum(t.duration_s for t in plan.target)
    return {
        "web_videos": len(plan.web),
        "planted": sum(v.plant is not None for v in plan.web),
        "classes": len(plan.classes),
        "target_classes": len(plan.target_classes),
        "per_class_min": int(per_class.min()),
        "per_class_max": int(per_class.max()),
        "hashtag_noise": {k: sum(v.hashtags_noise == k for v in plan.web) for k in NOISE_KINDS},
        "target_train": sum(t.split == "train" for t in plan.target),
        "target_test": sum(t.split == "test" for t in plan.target),
        "web_seconds": round(web_seconds, 1),
        "target_seconds": round(target_seconds, 1),
        "video_seconds": round(web_seconds + target_seconds, 1),
        **files,
        **{
            k: str(paths[k])
            for k in ("videos", "truth", "labels", "target_train_manifest", "target_test_manifest", "planted_table")
        },
    }
