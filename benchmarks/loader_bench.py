"""Clip loading throughput against the decode floor and against decoding from the start.

A training clip needs its own frames decoded and nothing else, so the floor is a loop that
seeks to the same windows and decodes exactly those frames, without converting them
(``raw``). ``ClipDataset`` adds the conversion to RGB at short side 128, the crop, flip
and normalisation, and its bookkeeping; ``dataset / raw`` says what all that costs (goal
>= 0.8). The ``naive`` loader decodes each clip linearly from t = 0 up to its window, then
converts and transforms the same frames (it is ``read_clip(seek=False)``, so it differs
from the dataset in the seek alone); ``dataset / naive`` is what seeking buys (goal >= 1.5).
Every method reads the same clips (the dataset's epoch-0 draws) on warm page cache, single
process; the dataset also runs through ``make_loader`` with 2 workers (steady state:
persistent workers, timed from the second pass). Methods take turns within each of
``--repeat`` rounds and the best round counts, so load from elsewhere hits all alike.

    python benchmarks/loader_bench.py                      # 20 x 10 s 320x240 GOP 30 + 640x480 long GOP
    python benchmarks/loader_bench.py --num-frames 32 --stride 2

Two sets of generated videos (a panning textured scene with moving discs, 30 fps, h264):
320x240 with a 1 s GOP, and 640x480 with one keyframe per video (GOP 300): there seeking
cannot skip anything, so it shows the floor of the method rather than its gain.
Prints a markdown table.
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
import torch

from weaksup.data.dataset import ClipDataset
from weaksup.data.decode_clip import TIME_EPS_S, read_clip
from weaksup.data.loader import make_loader
from weaksup.data.transforms import Draw, train_transform
from weaksup.synth.video import textured_frames, write_video

FPS = 30


def make_set(folder: Path, *, n: int, seconds: float, width: int, height: int, gop: int) -> list[Path]:
    """``n`` h264 videos of a panning textured scene (each its own seed)."""
    folder = folder / f"{width}x{height}_gop{gop}_{seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"v{i:03d}.mp4"
        if not path.exists():  # --videos-dir keeps them between runs
            frames = textured_frames(round(seconds * FPS), width=width, height=height, seed=i)
            write_video(path, frames, fps=FPS, gop=gop, options={"preset": "veryfast"})
        paths.append(path)
    return paths


def _open(uri: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    container = av.open(uri)
    stream = container.streams.video[0]
    stream.codec_context.thread_type = "AUTO"
    return container, stream


def raw_decode(uri: str, start: float, need: int) -> int:
    """The floor: seek to the keyframe before ``start``, decode until ``need`` frames at or after it."""
    container, stream = _open(uri)
    try:
        if start > TIME_EPS_S:
            container.seek(int(round(start / stream.time_base)), backward=True, any_frame=False, stream=stream)
        got = 0
        for frame in container.decode(stream):
            if frame.time >= start - TIME_EPS_S:
                got += 1
                if got == need:
                    break
        return got
    finally:
        container.close()


def naive_clip(uri: str, start: float, num_frames: int, stride: int, draw: Draw) -> torch.Tensor:
    """The obvious loader: decode from t = 0 up to the window, then the same conversion and transform.

    It is ``read_clip`` with seeking off, so the two differ in nothing but the seek.
    """
    clip = read_clip(uri, start_s=start, num_frames=num_frames, stride=stride, seek=False)
    return train_transform(clip.frames, draw, crop=112)


def best_of_interleaved(repeat: int, fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time of each function over ``repeat`` rounds, the functions taking turns in each round
    so a burst of load from elsewhere on the machine hits all of them alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def bench_set(
    name: str, paths: list[Path], *, clips_per_video: int, num_frames: int, stride: int, repeat: int
) -> list[tuple]:
    seconds = [float(av.open(str(p)).duration / av.time_base) for p in paths]
    n = len(paths) * clips_per_video
    table = pa.table(
        {
            "video_id": [f"{name}-{i}" for i in range(n)],
            "uri": [str(paths[i % len(paths)]) for i in range(n)],
            "label_id": pa.array([i % 7 for i in range(n)], pa.int32()),
            "duration_s": [seconds[i % len(paths)] for i in range(n)],
        }
    )
    ds = ClipDataset(table, num_frames=num_frames, stride=stride, seed=0)
    items = [ds[i] for i in range(n)]  # also warms the page cache
    assert all(it is not None for it in items), "a generated video failed to decode"
    windows = [(str(paths[i % len(paths)]), items[i]["start_s"]) for i in range(n)]
    need = num_frames * stride - (stride - 1)  # source frames from the first clip frame to the last

    def run_raw() -> None:
        for uri, start in windows:
            raw_decode(uri, start, need)

    def run_dataset() -> None:
        for i in range(n):
            ds[i]

    def run_naive() -> None:
        for i, (uri, start) in enumerate(windows):
            naive_clip(uri, start, num_frames, stride, ds.draw(i))

    loader = make_loader(ds, batch_size=8, workers=2, pin_memory=False)

    def run_loader() -> None:
        for _ in loader:
            pass

    run_loader()  # start the persistent workers
    best = best_of_interleaved(
        repeat, {"raw": run_raw, "dataset": run_dataset, "loader": run_loader, "naive": run_naive}
    )
    t_raw, t_ds, t_loader, t_naive = best["raw"], best["dataset"], best["loader"], best["naive"]
    loader = None  # shuts the persistent workers down (run_loader's closure holds it)
    rate = lambda t: n / t  # noqa: E731
    return [
        (name, "raw: seek + decode the clip's frames, no conversion", n, t_raw, rate(t_raw), 1.0, rate(t_naive)),
        (name, "ClipDataset, 1 process", n, t_ds, rate(t_ds), t_raw / t_ds, rate(t_naive)),
        (name, "ClipDataset via make_loader, 2 workers", n, t_loader, rate(t_loader), t_raw / t_loader, rate(t_naive)),
        (
            name,
            "naive: decode from t=0, convert + transform",
            n,
            t_naive,
            rate(t_naive),
            t_raw / t_naive,
            rate(t_naive),
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=20, help="videos in the 320x240 GOP-30 set")
    ap.add_argument("--long-gop-videos", type=int, default=6, help="videos in the 640x480 long-GOP set")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clips-per-video", type=int, default=5)
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--videos-dir", type=Path, default=None, help="keep the generated videos here (default: a temp dir)"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        if args.videos_dir is not None:
            tmp = str(args.videos_dir)
        t0 = time.perf_counter()
        sets = {
            "320x240 GOP 30": make_set(
                Path(tmp) / "a", n=args.videos, seconds=args.seconds, width=320, height=240, gop=30
            ),
            "640x480 GOP 300": make_set(
                Path(tmp) / "b", n=args.long_gop_videos, seconds=args.seconds, width=640, height=480, gop=300
            ),
        }
        print(f"generated videos in {time.perf_counter() - t0:.1f} s")
        rows = []
        for name, paths in sets.items():
            rows += bench_set(
                name,
                paths,
                clips_per_video=args.clips_per_video,
                num_frames=args.num_frames,
                stride=args.stride,
                repeat=args.repeat,
            )

    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, PyAV {av.__version__}; "
        f"clips of {args.num_frames} frames, stride {args.stride}, {args.seconds:g} s videos, best of {args.repeat}\n"
    )
    print("| videos | method | clips | s | clips/s | vs raw | vs naive |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, method, n, t, r, vs_raw, naive_rate in rows:
        print(f"| {name} | {method} | {n} | {t:.2f} | {r:.1f} | {vs_raw:.2f} | {r / naive_rate:.2f}x |")


if __name__ == "__main__":
    main()
