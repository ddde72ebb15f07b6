"""`weaksup shard` on both engines: the driver's peak RSS and the wall time against rows.

The local engine plans one global order on the machine that runs it (Arrow and numpy
columns of every row); the Ray engine (weaksup/data/shard_ray.py) sorts by hash range in
Ray tasks, and its driver holds O(buckets + shards). This script makes a manifest of N rows
whose uris cycle over a few small files (``--file-bytes`` each; shard copies bytes and never
decodes them, so N rows fit on a small disk: each shard holds copies), runs
``write_shards`` with each engine in a fresh child process, and reads
the child's own peak RSS (``VmHWM``: Ray's workers, raylet and GCS are other processes and
are not counted; the manifest is made in a child of its own, so no big parent is forked).
It checks that both engines wrote the same shards (the index tables are equal) before it
deletes them.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/shard_bench.py --local-sizes 100000,1000000 \
        --ray-sizes 100000,1000000,3000000 --json /tmp/shard_bench.json

Prints a Markdown table; every figure comes from the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _hwm_kb() -> int:
    """This process's peak RSS since it was started (VmHWM; ru_maxrss would carry over the
    high-water mark of the parent that forked it)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def child(spec: dict) -> dict:
    """One shard job in this (fresh) process: its own peak RSS and wall time."""
    from weaksup.data.shard_writer import ShardConfig, write_shards

    if spec["engine"] == "ray":
        import ray  # noqa: F401 - imported before the baseline, so the baseline includes it
    base = _hwm_kb()
    t0 = time.perf_counter()
    summary = write_shards(
        ShardConfig(
            manifest=Path(spec["manifest"]),
            out=Path(spec["out"]),
            shard_size=spec["shard_size"],
            workers=spec["threads"],
            engine=spec["engine"],
            progress=False,
            resume=False,
        )
    )
    wall = time.perf_counter() - t0
    peak = _hwm_kb()
    return {
        "baseline_rss_mb": round(base / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "wall_s": round(wall, 2),
        "clips_per_s": round(summary["clips"] / wall, 1),
        "clips": summary["clips"],
        "shards": summary["shards"],
        "bytes": summary["bytes"],
    }


def make_manifest(path: Path, rows: int, videos: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = pa.array([f"v{i:09d}" for i in range(rows)])
    labels = pa.array([i % 400 for i in range(rows)], pa.int32())
    table = pa.table(
        {
            "video_id": ids,
            "uri": pa.array([videos[i % len(videos)] for i in range(rows)]),
            "label_id": labels,
            "label": pa.array([f"label{i % 400}" for i in range(rows)]),
            "matched_label_ids": pa.array([[i % 400] for i in range(rows)], pa.list_(pa.int32())),
            "duration_s": pa.array([1.0] * rows),
        }
    )
    pq.write_table(table, path, row_group_size=1 << 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--local-sizes", default="100000,1000000", help="rows for the local engine")
    ap.add_argument("--ray-sizes", default="100000,1000000", help="rows for the Ray engine")
    ap.add_argument("--file-bytes", type=int, default=1000, help="bytes of each of the 4 files the rows cycle over")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    work = Path(tempfile.mkdtemp(prefix="shard_bench-"))
    try:
        videos = []
        for i in range(4):
            (work / f"v{i}.mp4").write_bytes(os.urandom(args.file_bytes))
            videos.append(str(work / f"v{i}.mp4"))
        results = []
        cpu = platform.machine()
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
        sizes = {e: [int(s) for s in getattr(args, f"{e}_sizes").split(",") if s] for e in ("local", "ray")}
        for rows in sorted(set(sizes["local"]) | set(sizes["ray"])):
            manifest = work / f"manifest-{rows}.parquet"
            code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import shard_bench as b; "
            code += f"b.make_manifest(b.Path({str(manifest)!r}), {rows}, {videos!r})"
            subprocess.run([sys.executable, "-c", code], check=True)
            indexes = {}
            for engine in [e for e in ("local", "ray") if rows in sizes[e]]:
                out = work / f"out-{rows}-{engine}"
                spec = dict(
                    manifest=str(manifest),
                    out=str(out),
                    engine=engine,
                    shard_size=args.shard_size,
                    threads=args.threads,
                )
                load = os.getloadavg()[0]
                run = subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=True
                )
                got = json.loads(run.stdout.strip().splitlines()[-1])
                import pyarrow.parquet as pq

                indexes[engine] = pq.read_table(out / "index.parquet")
                shutil.rmtree(out)
                results.append({"rows": rows, "engine": engine, "load_before": round(load, 2), **got})
                print(json.dumps(results[-1]), flush=True)
            if len(indexes) == 2:
                assert indexes["ray"].equals(indexes["local"]), f"{rows} rows: the engines' shards differ"
            manifest.unlink()
        print(
            f"\nCPU: {cpu}, {os.cpu_count()} cores; shards of {args.shard_size} clips; {args.threads} threads; "
            f"files of {args.file_bytes} bytes\n"
        )
        print("| engine | rows | driver peak RSS MB | wall s | clips/s | shards |")
        print("|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r['engine']} | {r['rows']:,} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.1f} | "
                f"{r['clips_per_s']:,.0f} | {r['shards']:,} |"
            )
        for engine in ("local", "ray"):
            rss = [r["peak_rss_mb"] for r in results if r["engine"] == engine]
            if len(rss) > 1:
                print(f"{engine}: driver peak RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB ({rss[-1] / rss[0]:.2f}x)")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
