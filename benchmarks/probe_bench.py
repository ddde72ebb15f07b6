"""probe throughput against its physical floor: merely opening and closing each container.

Probing reads container headers only, so it cannot beat ``av.open()`` + ``close()`` on the
same files; the ratio says how much the probe adds on top (structure reads, the bulk
job's parts and process pool). Everything runs side by side in one process, on warm
page cache (a first pass reads every file once), best of ``--repeat`` runs.

    python benchmarks/probe_bench.py                 # 200 generated clips + the real ones
    python benchmarks/probe_bench.py --dir VIDEOS    # your own videos

Prints one markdown table row per measurement and a summary row with the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import av
import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.assembly.probe import ProbeConfig, probe_video, probe_videos
from weaksup.synth.video import write_test_video

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def make_videos(folder: Path, n: int) -> list[Path]:
    """``n`` tiny clips: mp4 (some with audio, several frame rates) and vp8 webm."""
    paths = []
    for i in range(n):
        if i % 4 == 3:
            paths.append(write_test_video(folder / f"gen{i:04d}.webm", seconds=1.0, fps=12, codec="libvpx", seed=i))
        else:
            fps = (16.0, 25.0, 30000 / 1001)[i % 3]
            paths.append(
                write_test_video(folder / f"gen{i:04d}.mp4", seconds=1.0, fps=fps, with_audio=i % 2 == 0, seed=i)
            )
    return paths


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def open_close(paths: list[Path]) -> None:
    for p in paths:
        av.open(str(p)).close()


def probe_loop(paths: list[Path]) -> None:
    for p in paths:
        probe_video(str(p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, help="Probe the videos in this folder instead of generated ones.")
    ap.add_argument("--n", type=int, default=200, help="How many clips to generate (without --dir).")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=ProbeConfig.workers, help="The 'default' worker count to compare.")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        work = Path(tmp)
        if args.dir:
            paths = sorted(p for p in args.dir.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            paths = make_videos(work / "videos", args.n)
            if REAL_VIDEOS.is_dir():
                paths += sorted(p for p in REAL_VIDEOS.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        n = len(paths)
        total_bytes = sum(p.stat().st_size for p in paths)
        table = work / "videos.parquet"
        pq.write_table(pa.table({"video_id": [f"v{i}" for i in range(n)], "uri": [str(p) for p in paths]}), table)
        for p in paths:  # warm the page cache so every measurement reads from memory
            p.read_bytes()

        def job(workers: int) -> Callable[[], object]:
            def run() -> None:
                out = work / f"probe-w{workers}.parquet"
                out.unlink(missing_ok=True)
                _, summary = probe_videos(ProbeConfig(videos=table, out=out, workers=workers, progress=False))
                assert summary["ok"] == n, summary

            return run

        floor = best_of(args.repeat, lambda: open_close(paths))
        loop = best_of(args.repeat, lambda: probe_loop(paths))
        w1 = best_of(args.repeat, job(1))
        wd = best_of(args.repeat, job(args.workers))

    print(
        f"{n} videos, {total_bytes / 2**20:.1f} MiB, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, "
        f"PyAV {av.__version__} / FFmpeg {getattr(av, 'ffmpeg_version_info', '?')}"
    )
    print()
    print("| measurement | seconds | videos/s | floor time / this time |")
    print("|---|---:|---:|---:|")
    for name, secs in [
        ("floor: av.open() + close(), 1 process", floor),
        ("probe_video() loop, 1 process", loop),
        ("probe job, workers=1", w1),
        (f"probe job, workers={args.workers} (default)", wd),
    ]:
        print(f"| {name} | {secs:.3f} | {n / secs:,.0f} | {floor / secs:.2f} |")
    print()
    print(
        "| videos | open floor videos/s | probe videos/s (workers=1) | ratio | probe videos/s (workers="
        f"{args.workers}) | ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {n} | {n / floor:,.0f} | {n / w1:,.0f} | {floor / w1:.2f} | {n / wd:,.0f} | {floor / wd:.2f} |")


if __name__ == "__main__":
    main()
