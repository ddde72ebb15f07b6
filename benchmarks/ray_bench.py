"""Ray engine scaling: fingerprint throughput with 1 and 2 Ray workers, against the local engine.

The same videos table is fingerprinted four ways in one process, side by side: the local
engine (process pool) with 1 and 2 workers, and the Ray engine on one local Ray instance
(2 CPUs, started once; its start-up is reported apart) with 1 and 2 workers. Wall-clock
seconds, best of ``--repeat``; every run writes a fresh table, and the tables must be
equal (the engines must agree before their speed means anything).

The ratio ray(2) / ray(1) is the scaling measured on this 2-core box; ray(w) / local(w) is
the engine's overhead. The projection to N nodes is arithmetic, not a measurement:
videos/s(N nodes of C cores) = per-worker videos/s x C x N x (measured 2-worker efficiency).

    python benchmarks/ray_bench.py                       # 16 x 8 s 640x360 30 fps h264, GOP 250
    python benchmarks/ray_bench.py --videos 32 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fingerprint_bench import make_videos  # noqa: E402

from weaksup.dedupe.fingerprint import FingerprintConfig, fingerprint_videos  # noqa: E402


def run(
    table: Path, out_dir: Path, name: str, *, engine: str, workers: int, repeat: int, chunk: int, threads: bool
) -> tuple[float, pa.Table]:
    best, result = float("inf"), None
    for r in range(repeat):
        out = out_dir / f"{name}-{r}.parquet"
        t = time.perf_counter()
        result, _ = fingerprint_videos(
            FingerprintConfig(
                videos=table,
                out=out,
                workers=workers,
                chunk_size=chunk,
                progress=False,
                engine=engine,
                decode_threads=threads,
            )
        )
        best = min(best, time.perf_counter() - t)
    return best, result.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--chunk", type=int, default=4, help="videos per task (bulk chunk)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import ray

    n = args.videos
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "videos").mkdir()
        paths = make_videos(d / "videos", n, args.seconds)
        table = d / "videos.parquet"
        pq.write_table(pa.table({"video_id": [p.stem for p in paths], "uri": [str(p) for p in paths]}), table)
        for p in paths:  # warm page cache
            p.read_bytes()

        times: dict[tuple[bool, str, int], float] = {}
        tables: list[pa.Table] = []
        for threads in (False, True):
            for w in (1, 2):
                times[threads, "local", w], t = run(
                    table,
                    d,
                    f"l{threads}{w}",
                    engine="local",
                    workers=w,
                    repeat=args.repeat,
                    chunk=args.chunk,
                    threads=threads,
                )
                tables.append(t)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.perf_counter() - t0
        try:
            for threads in (False, True):
                for w in (1, 2):
                    times[threads, "ray", w], t = run(
                        table,
                        d,
                        f"r{threads}{w}",
                        engine="ray",
                        workers=w,
                        repeat=args.repeat,
                        chunk=args.chunk,
                        threads=threads,
                    )
                    tables.append(t)
        finally:
            ray.shutdown()
        same = all(t.equals(tables[0]) for t in tables)

    rate = {k: n / v for k, v in times.items()}
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {n} videos x {args.seconds:g} s "
        f"640x360 30 fps h264, {args.chunk} videos per task, best of {args.repeat}; tables equal across all runs: "
        f"{same}; local Ray start-up {ray_start:.1f} s (not in the times)"
    )
    print("| decoder threads | engine | workers | wall s | videos/s | video-s/s | 2 workers / 1 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for threads in (False, True):
        for engine in ("local", "ray"):
            for w in (1, 2):
                k = (threads, engine, w)
                ratio = f"{rate[k] / rate[threads, engine, 1]:.2f}" if w == 2 else ""
                print(
                    f"| {'FFmpeg auto' if threads else 'one per worker'} | {engine} | {w} | {times[k]:.2f} | "
                    f"{rate[k]:.2f} | {rate[k] * args.seconds:.1f} | {ratio} |"
                )
    per_worker = rate[False, "ray", 1] * args.seconds
    eff = rate[False, "ray", 2] / rate[False, "ray", 1] / 2
    print(
        f"\nray, one decoder thread per worker: 2 workers / 1 = {2 * eff:.2f} (efficiency {eff:.2f}); "
        f"ray / local at 2 workers: {rate[False, 'ray', 2] / rate[False, 'local', 2]:.2f}"
    )
    for nodes, cores in ((1, 32), (16, 32), (64, 32)):
        proj = per_worker * cores * nodes * eff
        print(
            f"projection (arithmetic): {nodes} nodes x {cores} cores x {per_worker:.1f} video-s/s per worker x "
            f"{eff:.2f} = {proj:,.0f} video-s/s"
        )


if __name__ == "__main__":
    main()
