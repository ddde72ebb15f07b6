"""Feature extraction throughput against its two stages: the clip loader and the network.

``extract`` is a pipeline: worker processes decode the 10 centre-crop clips of each video
(``EvalClipDataset`` through a DataLoader) while the main process runs the network and
averages features per video. Three rates are measured side by side in one process, on
the same videos and clips:

* ``loader``: the DataLoader alone, same workers and batches (clips/s);
* ``model``: ``forward_features`` alone on ready-made batches (clips/s);
* ``extract``: the whole ``extract_features`` job, parts and final table included.

``extract / loader`` is the issue's goal (>= 0.8): it holds where the network is faster
than decoding (a GPU). On a CPU both stages share the cores, so the limit is
``1 / (1/loader + 1/model)`` (the stages' costs add); ``extract / limit`` says how
close the pipeline gets to it. Methods take turns within each of ``--repeat`` rounds and
the best round counts.

    python benchmarks/extract_bench.py                       # tiny clips and the paper's 8x112^2
    python benchmarks/extract_bench.py --videos 40 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import torch
from torch.utils.data import DataLoader

from weaksup.data.loader import single_thread_worker
from weaksup.eval.extract import ExtractConfig, _MarkedEvalClips, collate_by_shape, extract_features
from weaksup.models import build_model
from weaksup.synth.video import textured_frames, write_video
from weaksup.tables import write_table

SETTINGS = {  # name: (arch, frames, crop, short_side, video width, height)
    "tiny 4x32^2": ("r2plus1d_10", 4, 32, 40, 96, 64),
    "paper 8x112^2": ("r2plus1d_18", 8, 112, 128, 320, 240),
}


def make_manifest(folder: Path, n: int, width: int, height: int) -> Path:
    rows = []
    for i in range(n):
        path = folder / f"{width}x{height}" / f"v{i:03d}.mp4"
        if not path.exists():
            write_video(path, textured_frames(48, width=width, height=height, seed=i), fps=16, gop=16)
        rows.append(
            {
                "video_id": f"v{i}",
                "uri": str(path),
                "label_id": i % 4,
                "label": f"c{i % 4}",
                "matched_label_ids": [i % 4],
                "duration_s": 3.0,
            }
        )
    out = folder / f"manifest_{width}x{height}.parquet"
    write_table("manifest", pa.Table.from_pylist(rows), out)
    return out


def loader_rate(manifest: Path, frames: int, crop: int, short_side: int, clips: int, workers: int, batch: int) -> float:
    ds = _MarkedEvalClips(manifest, num_clips=clips, num_frames=frames, crop=crop, short_side=short_side)
    loader = DataLoader(
        ds,
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate_by_shape,
        **({"worker_init_fn": single_thread_worker, "prefetch_factor": 4} if workers else {}),
    )
    t0 = time.perf_counter()
    n = sum(b["n"] for b in loader)
    return n / (time.perf_counter() - t0)


def model_rate(arch: str, frames: int, crop: int, batch: int, batches: int = 4) -> float:
    model = build_model(arch, num_classes=4).eval().to(memory_format=torch.channels_last_3d)
    x = torch.randn(batch, 3, frames, crop, crop).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        model.forward_features(x)
        t0 = time.perf_counter()
        for _ in range(batches):
            model.forward_features(x)
    return batch * batches / (time.perf_counter() - t0)


def extract_rate(
    manifest: Path, out: Path, arch: str, frames: int, crop: int, short_side: int, clips: int, workers: int, batch: int
) -> float:
    cfg = ExtractConfig(
        arch=arch,
        num_clips=clips,
        frames=frames,
        crop=crop,
        short_side=short_side,
        workers=workers,
        batch_size=batch,
        progress=False,
    )
    t0 = time.perf_counter()
    summary = extract_features(manifest, out, checkpoint=None, cfg=cfg, resume=False)
    return summary["clips_this_run"] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.workers} workers, {args.videos} videos x {args.clips} clips"
    )
    print(
        "| setting | arch | loader clips/s | model clips/s | CPU limit clips/s | extract clips/s "
        "| extract / loader | extract / limit |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.settings:
            arch, frames, crop, short_side, width, height = SETTINGS[name]
            manifest = make_manifest(folder, args.videos, width, height)
            best = {"loader": 0.0, "model": 0.0, "extract": 0.0}
            for _ in range(args.repeat):
                best["loader"] = max(
                    best["loader"],
                    loader_rate(manifest, frames, crop, short_side, args.clips, args.workers, args.batch),
                )
                best["model"] = max(best["model"], model_rate(arch, frames, crop, args.batch))
                best["extract"] = max(
                    best["extract"],
                    extract_rate(
                        manifest,
                        folder / "f.parquet",
                        arch,
                        frames,
                        crop,
                        short_side,
                        args.clips,
                        args.workers,
                        args.batch,
                    ),
                )
            limit = 1.0 / (1.0 / best["loader"] + 1.0 / best["model"])
            print(
                f"| {name} | {arch} | {best['loader']:.0f} | {best['model']:.1f} | {limit:.1f} | "
                f"{best['extract']:.1f} | {best['extract'] / best['loader']:.2f} | {best['extract'] / limit:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
