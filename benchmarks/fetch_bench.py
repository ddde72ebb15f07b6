"""fetch: weaksup fetch's throughput against the same server's raw transfer rate, side by side.

A local aiohttp server (its own process, sendfile) serves two sets: ``--small`` files of about
100 KB and ``--large`` files of about 50 MB (hard links to one real video each, so the disk
holds one copy). Two clients read every file of a set, each in its own child process (so
its peak RSS is the child's ``ru_maxrss``), with the same concurrency (16):

- ``raw``: a plain aiohttp loop that does nothing but read each body (the ceiling);
- ``weaksup``: ``fetch_videos`` as a user runs it on one host without a rate limit
  (``--host-rate 0 --host-concurrency 16``): robots.txt, streamed write to disk, sha256,
  the container probe, the atomic rename, the stamped parts and ``fetched.parquet``.

The goal (issue "weaksup fetch"): weaksup >= 0.8 of raw for both sets, peak memory flat in
file size. ``--readme`` rewrites the fetch block of benchmarks/README.md from this run.

    python benchmarks/fetch_bench.py --readme
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "benchmarks" / "README.md"
CONCURRENCY = 16


# ---- inputs ------------------------------------------------------------------------------------


def make_video(path: Path, target_bytes: int) -> Path:
    """A real H.264 video of about ``target_bytes`` (noise frames, lossless: size grows per frame)."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    w, h = (320, 240) if target_bytes > 5_000_000 else (64, 48)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as c:
        s = c.add_stream("libx264", rate=25, options={"qp": "0", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        written = 0
        while written < target_bytes:
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), np.uint8), format="rgb24")
            for p in s.encode(frame):
                written += p.size
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_set(root: Path, name: str, count: int, size: int) -> list[str]:
    """``count`` names (hard links) for one video of about ``size`` bytes under ``root/name``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    source = make_video(root / f"{name}-source.mp4", size)
    names = []
    for i in range(count):
        target = folder / f"{i:05d}.mp4"
        if not target.exists():
            os.link(source, target)
        names.append(f"{name}/{target.name}")
    return names


# ---- the server (its own process) -------------------------------------------------------------


def serve(root: str, port: int) -> None:
    from aiohttp import web

    app = web.Application()
    app.router.add_static("/", root)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the clients (each in a child) ------------------------------------------------------------


def raw_read(urls: list[str], out: Path) -> int:
    import aiohttp

    async def main() -> int:
        slots = asyncio.Semaphore(CONCURRENCY)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(url: str) -> int:
                n = 0
                async with slots, session.get(url) as resp:
                    async for block in resp.content.iter_chunked(1 << 16):
                        n += len(block)
                return n

            return sum(await asyncio.gather(*(one(u) for u in urls)))

    return asyncio.run(main())


def weaksup_fetch(urls: list[str], out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from weaksup.fetch.config import FetchConfig
    from weaksup.fetch.fetch import fetch_videos

    table = out / "urls.parquet"
    pq.write_table(pa.table({"video_id": [f"v{i}" for i in range(len(urls))], "url": urls}), table)
    fetched, summary = fetch_videos(
        FetchConfig(
            videos=table,
            out=out / "fetched",
            allow_private_hosts=True,
            host_rate=0.0,
            concurrency=CONCURRENCY,
            host_concurrency=CONCURRENCY,
            progress=False,
            resume=False,
        )
    )
    if summary["ok"] != len(urls):
        raise RuntimeError(f"weaksup fetch rejected rows: {summary['reasons']}")
    return summary["bytes"]


def _child(fn: str, urls: list[str], out: str, queue: mp.Queue) -> None:
    import aiohttp  # noqa: F401 - imports are not what is timed

    if fn == "weaksup":
        import weaksup.fetch.fetch  # noqa: F401, F811
    t0 = time.perf_counter()
    n = {"raw": raw_read, "weaksup": weaksup_fetch}[fn](urls, Path(out))
    seconds = time.perf_counter() - t0
    queue.put(
        {"bytes": n, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    )


def measure(fn: str, urls: list[str], work: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{fn}-", dir=work))
    queue: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_child, args=(fn, urls, str(out), queue))
    proc.start()
    result = queue.get(timeout=3600)
    proc.join()
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    return result


# ---- report ------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def check_ms(path: Path, n: int = 500) -> float:
    """Median milliseconds of fetch's container check (PyAV opens the file) on one file."""
    from weaksup.fetch.client import check_video

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        check_video(path)
        times.append(time.perf_counter() - t0)
    return sorted(times)[n // 2] * 1e3


def block(results: dict, args: argparse.Namespace, seconds: float, check: float) -> str:
    day = datetime.date.today().isoformat()
    lines = [
        f"`python benchmarks/fetch_bench.py --small {args.small} --large {args.large} --repeat {args.repeat}` "
        f"({day}, {cpu_name()}, {os.cpu_count()} cores; server and clients on this box over loopback; "
        f"median of {args.repeat}; {seconds:.0f} s in all):",
        "",
        "| set | raw aiohttp read | weaksup fetch | fetch / raw | peak RSS raw | peak RSS fetch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        a, b = r["raw"], r["weaksup"]
        lines.append(
            f"| {name} | {a['mb_s']:.0f} MB/s ({a['seconds']:.2f} s) | {b['mb_s']:.0f} MB/s ({b['seconds']:.2f} s) "
            f"| **{b['mb_s'] / a['mb_s']:.2f}** | {a['peak_rss_mb']:.0f} MB | {b['peak_rss_mb']:.0f} MB |"
        )
    lines += ["", f"fetch's container check (PyAV opens the file) on one small file: {check:.2f} ms (median of 500)."]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    begin, end = "<!-- fetch_bench begin -->", "<!-- fetch_bench end -->"
    readme = README.read_text(encoding="utf-8")
    new = f"{begin}\n{text}\n{end}"
    if begin in readme:
        readme = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: new, readme, flags=re.S)
    else:
        readme = readme.rstrip("\n") + "\n\n## fetch\n\n" + new + "\n"
    README.write_text(readme, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000, help="files of about 100 KB")
    parser.add_argument("--large", type=int, default=20, help="files of about 50 MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--readme", action="store_true", help="rewrite the fetch block of benchmarks/README.md")
    args = parser.parse_args()
    t0 = time.perf_counter()
    work = args.dir or Path(tempfile.mkdtemp(prefix="weaksup-fetch-bench-"))
    root = work / "served"
    sets = {
        f"{args.small} x 100 KB": make_set(root, "small", args.small, 100_000),
        f"{args.large} x 50 MB": make_set(root, "large", args.large, 50_000_000),
    }
    port = free_port()
    server = mp.get_context("spawn").Process(target=serve, args=(str(root), port), daemon=True)
    server.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.1)
    results = {}
    try:
        for name, names in sets.items():
            urls = [f"http://127.0.0.1:{port}/{n}" for n in names]
            results[name] = {}
            for fn in ("raw", "weaksup"):
                runs = sorted((measure(fn, urls, work) for _ in range(args.repeat)), key=lambda r: r["seconds"])
                r = runs[len(runs) // 2]
                r["mb_s"] = r["bytes"] / 1e6 / r["seconds"]
                r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in runs)
                results[name][fn] = r
                print(name, fn, json.dumps(r), flush=True)
    finally:
        server.terminate()
    check = check_ms(root / "small-source.mp4")
    text = block(results, args, time.perf_counter() - t0, check)
    print(text)
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    sys.exit(main())
