"""fingerprint throughput against its physical floor: decoding every frame and doing nothing else.

Fingerprinting must decode the bitstream (every frame: a long GOP has no frame to skip),
so plain decoding is the floor; the ratio says how much sampling, grey conversion and
census coding add on top. Both run side by side in one process on the same files, on warm
page cache (a first pass reads every file once), best of ``--repeat`` passes, measured in
CPU time (``time.process_time``: all decoder threads count), as video seconds per CPU
second. The last column is decode-only with frame threading off: less CPU per video
second, which is what a bulk job with one worker per core would see.

    python benchmarks/fingerprint_bench.py                  # 10 x 10 s 640x360 30 fps + the real videos
    python benchmarks/fingerprint_bench.py --dir VIDEOS     # your own videos

Goal: fingerprint >= 0.7 of decode-only and >= 15 video-s per CPU-s on 360p.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np

from weaksup.dedupe.fingerprint import fingerprint_video

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def textured_frames(seed: int, n: int, width: int = 640, height: int = 360) -> np.ndarray:
    """RGB frames of a panning multi-scale random texture with moving discs (camera-like content)."""
    rng = np.random.default_rng(seed)
    big_w, big_h = width + 256, height + 256
    texture = np.zeros((big_h, big_w, 3), np.float32)
    for cells, weight in ((6, 0.5), (24, 0.3), (96, 0.2)):
        noise = rng.random((cells * big_h // big_w + 2, cells + 2, 3)).astype(np.float32)
        texture += weight * cv2.resize(noise, (big_w, big_h), interpolation=cv2.INTER_CUBIC)
    texture = (texture * 230).clip(0, 255).astype(np.uint8)
    frames = np.empty((n, height, width, 3), np.uint8)
    centres = rng.random((5, 2)) * [width, height]
    velocity = (rng.random((5, 2)) - 0.5) * 12
    colours = rng.integers(0, 255, (5, 3))
    for i in range(n):
        dx = int(128 + 120 * np.sin(i / 50 + seed))
        dy = int(128 + 120 * np.cos(i / 70 + seed))
        frame = texture[dy : dy + height, dx : dx + width].copy()
        for k in range(5):
            x, y = (centres[k] + velocity[k] * i) % [width, height]
            cv2.circle(frame, (int(x), int(y)), 20 + 8 * k, tuple(int(v) for v in colours[k]), -1)
        frames[i] = frame
    return frames


def encode_h264(path: Path, frames: np.ndarray, fps: float = 30.0, gop: int = 250) -> Path:
    """H.264 (x264 veryfast: CABAC and B-frames, like most uploads) with a long GOP."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "veryfast", "crf": "23", "keyint_min": str(gop), "sc_threshold": "0"}
        for frame in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_videos(folder: Path, n: int, seconds: float) -> list[Path]:
    return [encode_h264(folder / f"gen{i:02d}.mp4", textured_frames(i, int(seconds * 30))) for i in range(n)]


def decode_only(path: Path, thread_type: str = "AUTO") -> float:
    """The floor: the same PyAV decode loop over every frame, no conversion, no coding."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_type = thread_type
        last = None
        for frame in c.decode(stream):
            last = frame
        return 0.0 if last is None else float(last.time or 0.0)


def cpu_seconds(repeat: int, fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best CPU time of each function over ``repeat`` rounds, interleaved so drift hits all alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return best


def video_seconds(paths: list[Path]) -> float:
    total = 0.0
    for p in paths:  # what the container states; decoded to the last frame where it states nothing
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            if s.duration and s.time_base:
                total += float(s.duration * s.time_base)
            else:
                total += decode_only(p)
    return total


def measure(name: str, paths: list[Path], repeat: int) -> str:
    for p in paths:  # warm the page cache
        p.read_bytes()
    seconds = video_seconds(paths)
    cpu = cpu_seconds(
        repeat,
        {
            "decode": lambda: [decode_only(p) for p in paths],
            "fingerprint": lambda: [fingerprint_video(str(p)) for p in paths],
            "decode_1t": lambda: [decode_only(p, "NONE") for p in paths],
        },
    )
    return (
        f"| {name} | {len(paths)} | {seconds:.1f} | {seconds / cpu['decode']:.1f} | {seconds / cpu['fingerprint']:.1f} "
        f"| {cpu['decode'] / cpu['fingerprint']:.2f} | {seconds / cpu['decode_1t']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="fingerprint these videos instead of generated + real ones")
    parser.add_argument("--n", type=int, default=10, help="generated 640x360 videos")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each generated video")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    ffmpeg = av.ffmpeg_version_info
    ffmpeg = ".".join(map(str, ffmpeg)) if isinstance(ffmpeg, tuple) else ffmpeg
    cpu = platform.processor() or platform.machine()
    print(f"\n{cpu}, {os.cpu_count()} CPUs, PyAV {av.__version__} (FFmpeg {ffmpeg})\n")
    print(
        "| videos | files | video s | decode-only video-s / CPU-s | fingerprint video-s / CPU-s | fingerprint / decode "
        "| (decode-only, 1 thread) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    if args.dir:
        paths = sorted(p for p in args.dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        print(measure(str(args.dir), paths, args.repeat))
        return
    with tempfile.TemporaryDirectory(prefix="weaksup-fp-bench-") as tmp:
        t0 = time.perf_counter()
        generated = make_videos(Path(tmp), args.n, args.seconds)
        print(f"<!-- generated {len(generated)} videos in {time.perf_counter() - t0:.0f} s -->")
        print(measure(f"generated 640x360 30 fps h264, GOP 250, {args.seconds:g} s", generated, args.repeat))
        if REAL_VIDEOS.is_dir():
            real = sorted(p for p in REAL_VIDEOS.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            print(measure("real (../shared/data/videos, 240p-1080p)", real, args.repeat))


if __name__ == "__main__":
    main()
