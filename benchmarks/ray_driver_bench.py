"""Driver memory of bulk jobs (issue 19): peak RSS of the process that runs ``probe`` or ``match``, against input rows.

The bulk engine plans blocks from the input's Parquet footers, lets the workers read their
own rows and write stamped parts, sums per-block counts and writes the final table block by
block, so the driver should hold nothing per row. This script measures that: it builds
videos tables of N rows (Parquet, row groups of ``--row-group`` rows), runs the job on each
in a fresh child process, and reads the child's own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss`` after the job). Only the driver is counted: Ray's
workers, raylet and GCS and the local engine's pool workers are other processes
(RUSAGE_SELF leaves them out); shared-memory pages of Ray's object store that the driver
touches do count, as RSS does.

``--stage probe`` (the default): ``probe_videos(ProbeConfig(..., engine=E, workers=2))``.
Two kinds of rows, so that 10M rows fit on a 2-core box (real probing costs about half a
millisecond a row here; the per-row cost of both kinds is measured and printed first):

* ``real``: the uri column cycles over a few tiny generated videos (64x48, 1 s), each
  probed for real (the file is opened and its headers read);
* ``missing``: every row names its own missing file (``/nonexistent/...``), rejected by the
  worker in microseconds as ``FileNotFoundError`` but still a full row through the engine:
  item, part row, stamp digest, part file, commit.

``--stage match``: ``match`` of a synthetic videos table (``weaksup synth-metadata``'s
generator, as in ``benchmarks/match_bench.py``: Zipf label tags and noise tags, about 3 tags
a video, rewritten into row groups of ``--row-group`` rows) against the 400 Kinetics labels
(``build-labels --sources kinetics400``): ``match_on_ray(MatchConfig(...),
RayOptions(workers=2, parts=--parts))`` for ``ray`` (what ``weaksup match --engine ray``
runs) and ``match_videos(MatchConfig(...))`` for ``local``. The local engine is one process:
its "driver" is the whole job.

The engine at an older commit (``--old-tree``, e.g. a ``git archive 162bcba`` copy, which
built one dict per row in the driver, fed Ray Data with ``from_items`` and concatenated the
whole result) runs through the same child with ``PYTHONPATH`` pointing at that tree.

Before a point, its wall time is estimated from the same engine's largest finished point
(linear in rows); a point estimated over ``--max-minutes`` is replaced by ``--fallback``
rows when that fits (and said so in the table), else skipped (and said so). Nothing is
extrapolated into the results. The parent samples the 1-minute load average every few
seconds while each job runs (the box may be shared) and records its range.

    mkdir /tmp/ws-head /tmp/ws-old
    git archive HEAD | tar -x -C /tmp/ws-head; git archive 162bcba | tar -x -C /tmp/ws-old
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/ray_driver_bench.py \\
        --sizes 100000,1000000,10000000 --real-sizes 100000 --new-tree /tmp/ws-head \\
        --old-tree /tmp/ws-old --old-sizes 100000,1000000
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/ray_driver_bench.py --stage match \\
        --sizes 100000,1000000,10000000 --new-tree /tmp/ws-head --json /tmp/ray_driver_match.json

``--new-tree`` freezes the code measured (without it the installed weaksup runs, and a
checkout edited during a long run would mix versions between points).

Prints Markdown tables (the README's) and writes every measurement to ``--json``;
``--report FILE.json`` prints the tables of an earlier run again without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
MISSING_ROOT = "/nonexistent/weaksup-driver-bench"


# ----------------------------------------------------------------------------- the child


def _status_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _mark(module: object, name: str, key: str, started: float, marks: dict) -> None:
    """Wrap ``module.name`` so that the child notes when it starts and ends and the peak RSS
    before and after it (``{key}_start_s``, ``maxrss_before_{key}_mb``, ...)."""
    fn = getattr(module, name, None)
    if fn is None:
        return

    def timed(*a, **k):  # type: ignore[no-untyped-def]
        marks[f"{key}_start_s"] = round(time.perf_counter() - started, 1)
        marks[f"maxrss_before_{key}_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        try:
            return fn(*a, **k)
        finally:
            marks[f"{key}_end_s"] = round(time.perf_counter() - started, 1)
            marks[f"maxrss_after_{key}_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    setattr(module, name, timed)


def _run_probe(spec: dict) -> dict:
    from weaksup.assembly.probe import ProbeConfig, probe_videos

    cfg = ProbeConfig(
        videos=Path(spec["table"]),
        out=Path(spec["out"]),
        workers=spec["workers"],
        chunk_size=spec["chunk"],
        progress=False,
        engine=spec["engine"],
        resume=False,
    )
    result, summary = probe_videos(cfg)
    del result
    return {"ok": summary["ok"], "rejected": summary["rejected"], "reasons": summary["reasons"]}


def _run_match(spec: dict) -> dict:
    from weaksup.assembly.match import MatchConfig, match_videos

    cfg = MatchConfig(videos=Path(spec["table"]), labels=Path(spec["labels"]), out=Path(spec["out"]), progress=False)
    if spec["engine"] == "ray":
        from weaksup.assembly.match_ray import RayOptions, match_on_ray

        summary = match_on_ray(cfg, RayOptions(workers=spec["workers"], parts=spec["parts"]))
    else:
        summary = match_videos(cfg)
    keys = ("videos_read", "in_manifest", "unmatched", "dropped_by_min_videos", "rejected", "labels_kept", "accounted")
    keys += ("parts", "parts_with_rows", "blocks")
    return {k: summary[k] for k in keys if k in summary}


def child(spec: dict) -> dict:
    """Run one job in this (fresh) process and report this process's own memory and time."""
    t_import = time.perf_counter()
    import weaksup

    try:
        import weaksup.bulk as bulk
    except ImportError:  # an old tree without the block engine
        bulk = None
    stage = spec.get("stage", "probe")
    if stage == "probe":
        import weaksup.assembly.probe  # noqa: F401
    else:
        import weaksup.assembly.match  # noqa: F401
    if spec["engine"] == "ray":
        import ray  # noqa: F401 - imported before the baseline, so the baseline includes it
    import_s = time.perf_counter() - t_import
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    samples: list[tuple[float, int]] = []  # (seconds since start, VmRSS kB), for where the peak fell
    stop = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not stop.wait(spec.get("sample_s", 0.5)):
            samples.append((time.perf_counter() - started, _status_kb()))

    marks: dict = {}
    if stage == "probe" and bulk is not None:  # the block engine: note where the run ends and the commit begins
        _mark(bulk, "commit_parts", "commit", started, marks)
    elif spec["engine"] == "ray":  # the driver's steps: plan + partition, reduce, merge of counts and rejects
        import weaksup.assembly.match_ray as match_ray

        _mark(match_ray, "partition_step", "partition", started, marks)
        _mark(match_ray, "_reduce_support", "reduce", started, marks)
        _mark(match_ray, "merge_label_counts", "merge", started, marks)
        _mark(match_ray, "_write_rejects", "rejects", started, marks)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    got = _run_probe(spec) if stage == "probe" else _run_match(spec)
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux; this process only
    hwm_kb = _status_kb("VmHWM")  # the same peak, as the kernel keeps it for this process's memory
    stop.set()
    sampler.join()
    import pyarrow.dataset as ds

    out = Path(spec["out"])
    out_rows = ds.dataset(out / "manifest" if out.is_dir() else out, format="parquet").count_rows()  # footers only
    peak_at = max(samples, key=lambda s: s[1]) if samples else (0.0, 0)
    return {
        "weaksup_file": weaksup.__file__,
        "import_s": round(import_s, 2),
        "baseline_rss_mb": round(base_kb / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "vmhwm_mb": round(hwm_kb / 1024, 1),
        "wall_s": round(wall, 2),
        "rows_per_s": round(spec["rows"] / wall, 1),
        "out_rows": out_rows,
        **got,
        **marks,
        "sampled_peak_at_s": round(peak_at[0], 1),
        "sampled_peak_rss_mb": round(peak_at[1] / 1024, 1),
        "sampled_rss_mb_at_quarters": [
            round(samples[min(len(samples) - 1, int(q * len(samples)))][1] / 1024, 1) for q in (0.25, 0.5, 0.75, 1.0)
        ]
        if samples
        else [],
    }


# ----------------------------------------------------------------------------- the parent


def make_videos(folder: Path, n: int) -> list[Path]:
    from weaksup.synth.video import write_test_video

    folder.mkdir(parents=True, exist_ok=True)
    return [write_test_video(folder / f"tiny{i:02d}.mp4", seconds=1.0, fps=16.0, seed=i) for i in range(n)]


def per_row_cost(videos: list[Path], n: int = 2000) -> dict:
    """Microseconds of probe's worker function per row, for each kind of row (one process)."""
    from weaksup.assembly.probe import _probe_item

    out = {}
    for kind in ("real", "missing"):
        t = time.perf_counter()
        for i in range(n):
            uri = str(videos[i % len(videos)]) if kind == "real" else f"{MISSING_ROOT}/{i:09d}.mp4"
            _probe_item({"video_id": f"v{i:09d}", "uri": uri, "count_frames": False, "_row": i})
        out[kind] = round((time.perf_counter() - t) / n * 1e6, 1)
    return out


def build_table(path: Path, rows: int, kind: str, videos: list[Path], row_group: int) -> float:
    """A videos table (video_id, uri) of ``rows`` rows in row groups of ``row_group``; its size in MB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [str(v) for v in videos]
    schema = pa.schema([("video_id", pa.string()), ("uri", pa.string())])
    with pq.ParquetWriter(path, schema) as w:
        for first in range(0, rows, row_group):
            r = range(first, min(rows, first + row_group))
            ids = [f"v{i:09d}" for i in r]
            if kind == "real":
                uris = [names[i % len(names)] for i in r]
            else:
                uris = [f"{MISSING_ROOT}/{i // 1000:06d}/{i:09d}.mp4" for i in r]
            w.write_table(pa.table({"video_id": ids, "uri": uris}, schema=schema), row_group_size=row_group)
    return path.stat().st_size / 2**20


def build_match_table(path: Path, rows: int, row_group: int) -> float:
    """A synthetic videos table (``synth-metadata``'s generator, seed 0, as in match_bench.py)
    rewritten into row groups of ``row_group`` rows; its size in MB."""
    import pyarrow.parquet as pq

    from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

    raw = path.with_name(path.stem + ".synth.parquet")
    synth_metadata(SynthMetadataConfig(videos=rows, out=raw))
    src = pq.ParquetFile(raw)
    with pq.ParquetWriter(path, src.schema_arrow, compression="zstd") as w:
        for batch in src.iter_batches(batch_size=row_group):
            w.write_batch(batch, row_group_size=row_group)
    raw.unlink()
    return path.stat().st_size / 2**20


def helper(mode: str, spec: dict, env: dict | None = None, timeout_s: float | None = None) -> dict:
    """Run this script in a fresh process in ``mode`` and return the JSON it prints last.

    Everything with a memory footprint (pyarrow, weaksup, Ray, building tables) happens in
    such children, so this parent stays small: Linux carries a process's RSS high-water mark
    into the children it forks (``ru_maxrss`` survives fork + exec), and a big parent would
    set a floor under every child's measured peak."""
    proc = subprocess.run(
        [sys.executable, str(HERE), f"--{mode}", json.dumps(spec)],
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: the old tree's weaksup must win there
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:300])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1])


def env_for(tree: str | None) -> dict:
    """The environment of a child that imports weaksup from ``tree`` (None: the installed one)."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if tree:
        env["PYTHONPATH"] = tree  # Ray's workers inherit it, so they run the same tree
    else:
        env.pop("PYTHONPATH", None)
    return env


def run_child(spec: dict, tree: str | None, timeout_s: float, load_every_s: float = 5.0) -> dict:
    """One job in a fresh child; the 1-minute load average is read every ``load_every_s``
    seconds while it runs (its range goes into the result)."""
    env = env_for(tree)
    load_before = os.getloadavg()
    loads = [load_before[0]]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(load_every_s):
            loads.append(os.getloadavg()[0])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        res = helper("child", spec, env, timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    except RuntimeError as exc:
        return {"error": str(exc)}
    finally:
        stop.set()
        watcher.join()
    loads.append(os.getloadavg()[0])
    res["parent_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    res["load_before"] = [round(x, 2) for x in load_before]
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    res["load1_min_max"] = [round(min(loads), 2), round(max(loads), 2)]
    return res


def setup(spec: dict) -> dict:
    """(In a child) probe: the tiny videos and the per-row cost of each kind of row; match:
    the labels table. And the versions."""
    import av
    import duckdb
    import pyarrow
    import ray

    versions = {"ray": ray.__version__, "pyarrow": pyarrow.__version__, "av": av.__version__}
    if spec["stage"] == "match":
        from weaksup.labels.build import BuildLabelsConfig, build_labels

        labels = Path(spec["folder"]) / "labels.parquet"
        labels.parent.mkdir(parents=True, exist_ok=True)
        s = build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels)).summary
        return {
            "labels": str(labels),
            "label_space": {"labels": s["labels"], "hashtags": s["hashtags"]},
            "versions": {**versions, "duckdb": duckdb.__version__},
        }
    videos = make_videos(Path(spec["folder"]), spec["n"])
    return {"videos": [str(v) for v in videos], "per_row_us": per_row_cost(videos), "versions": versions}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_int(n: int) -> str:
    return f"{n:,}"


KIND_NAMES = {"real": "tiny real videos", "missing": "missing files", "tags": "synthetic hashtags"}
MAIN_KIND = {"probe": "missing", "match": "tags"}  # the kind whose sizes the 1.5x goal compares
GOAL = 1.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--setup", help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    ap.add_argument("--report", type=Path, help="print the tables of an earlier run's --json and stop")
    ap.add_argument("--stage", choices=("probe", "match"), default="probe")
    ap.add_argument("--sizes", default="100000,1000000,10000000", help="rows of the missing-file (match: all) points")
    ap.add_argument("--real-sizes", default="100000", help="rows of the tiny-real-video points (probe only)")
    ap.add_argument("--engines", default="ray,local")
    ap.add_argument("--new-tree", help="a frozen copy of the weaksup tree to measure (default: the installed weaksup)")
    ap.add_argument("--new-label", default="new")
    ap.add_argument("--old-tree", help="a copy of an older weaksup tree (git archive) to run as 'old'")
    ap.add_argument("--old-label", default="162bcba")
    ap.add_argument("--old-sizes", default="100000,1000000", help="sizes (both kinds) the old tree runs at")
    ap.add_argument("--workers", type=int, default=2, help="probe's workers; match: the local Ray's CPUs")
    ap.add_argument("--chunk", type=int, default=64, help="rows per part (ProbeConfig.chunk_size)")
    ap.add_argument(
        "--parts", type=int, default=0, help="match on Ray: video-id parts (RayOptions.parts; 0: automatic)"
    )
    ap.add_argument("--row-group", type=int, default=65536)
    ap.add_argument("--tiny-videos", type=int, default=8)
    ap.add_argument("--max-minutes", type=float, default=25.0, help="estimated minutes above which a point is replaced")
    ap.add_argument("--fallback", type=int, default=3000000, help="rows that replace a point estimated too slow")
    ap.add_argument("--timeout-s", type=float, default=4 * 3600)
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="where the tables and outputs go")
    ap.add_argument("--json", type=Path, default=Path(tempfile.gettempdir()) / "ray_driver_bench.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    if args.setup:
        print(json.dumps(setup(json.loads(args.setup))), flush=True)
        return
    if args.build:
        b = json.loads(args.build)
        t = time.perf_counter()
        if b["kind"] == "tags":
            mb = build_match_table(Path(b["path"]), b["rows"], b["row_group"])
        else:
            mb = build_table(Path(b["path"]), b["rows"], b["kind"], [Path(v) for v in b["videos"]], b["row_group"])
        print(json.dumps({"mb": mb, "s": time.perf_counter() - t}), flush=True)
        return
    if args.report:
        saved = json.loads(args.report.read_text())
        print(markdown(saved["meta"], saved["results"]))
        return

    stage = args.stage
    engines = [e for e in args.engines.split(",") if e]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    real_sizes = [int(s) for s in args.real_sizes.split(",") if s] if stage == "probe" else []
    old_sizes = {int(s) for s in args.old_sizes.split(",") if s} if args.old_tree else set()
    codes = [(args.new_label, args.new_tree)] + ([(f"old {args.old_label}", args.old_tree)] if args.old_tree else [])

    work = Path(tempfile.mkdtemp(prefix="ws-driver-bench-", dir=args.tmp))
    results: list[dict] = []
    meta: dict = {
        "stage": stage,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "niceness": os.nice(0),
        "chunk": args.chunk,
        "parts": args.parts,
        "row_group": args.row_group,
        "workers": args.workers,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
    }

    def save() -> None:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")

    try:
        got = helper(
            "setup",
            {"stage": stage, "folder": str(work / "inputs"), "n": args.tiny_videos},
            env_for(args.new_tree),
        )
        videos = got.pop("videos", [])
        labels = got.pop("labels", None)
        meta.update(got)
        if stage == "probe":
            print(f"# per-row cost of probe's worker function, one process: {meta['per_row_us']} us", flush=True)

        points = [("real", n) for n in real_sizes] + [(MAIN_KIND[stage], n) for n in sizes]
        for kind, size in points:
            runs = [(c, tree, e) for i, (c, tree) in enumerate(codes) for e in engines if i == 0 or size in old_sizes]
            by_rows: dict[int, list] = {}
            for code, tree, engine in runs:
                done = [r for r in results if r["code"] == code and r["engine"] == engine and r["kind"] == kind]
                done = [r for r in done if "wall_s" in r]
                rows, note = size, ""
                if done:
                    last = max(done, key=lambda r: r["rows"])
                    est = last["wall_s"] * size / last["rows"]
                    if est > args.max_minutes * 60:
                        fb_est = last["wall_s"] * args.fallback / last["rows"]
                        if args.fallback < size and fb_est <= args.max_minutes * 60:
                            rows = args.fallback
                            note = f"{fmt_int(size)} estimated {est / 60:.0f} min: {fmt_int(rows)} run instead"
                        else:
                            results.append(
                                {
                                    "code": code,
                                    "engine": engine,
                                    "kind": kind,
                                    "rows": size,
                                    "skipped": f"estimated {est / 60:.0f} min (> {args.max_minutes:g})",
                                }
                            )
                            print(f"# skip {code} {engine} {kind} {size}: estimated {est / 60:.0f} min", flush=True)
                            continue
                by_rows.setdefault(rows, []).append((code, tree, engine, note))
            for rows, todo in sorted(by_rows.items()):
                table = work / f"videos-{kind}-{rows}.parquet"
                b = helper(
                    "build",
                    {"path": str(table), "rows": rows, "kind": kind, "videos": videos, "row_group": args.row_group},
                    env_for(args.new_tree),
                )
                mb = b["mb"]
                print(f"# built {table.name}: {mb:.1f} MB in {b['s']:.1f} s", flush=True)
                for code, tree, engine, note in todo:
                    stem = f"{stage}-{kind}-{rows}-{engine}"
                    out = work / (stem if stage == "match" and engine == "ray" else f"{stem}.parquet")
                    spec = {
                        "stage": stage,
                        "table": str(table),
                        "labels": labels,
                        "out": str(out),
                        "rows": rows,
                        "engine": engine,
                        "workers": args.workers,
                        "chunk": args.chunk,
                        "parts": args.parts,
                    }
                    res = run_child(spec, tree, args.timeout_s)
                    res.update(code=code, engine=engine, kind=kind, rows=rows, table_mb=round(mb, 1), note=note)
                    if "error" not in res:
                        if res["out_rows"] != (rows if stage == "probe" else res["in_manifest"]):
                            res["error"] = f"output has {res['out_rows']} rows (input {rows})"
                        elif stage == "match" and (res["videos_read"] != rows or not res["accounted"]):
                            res["error"] = f"read {res['videos_read']} of {rows} rows, accounted {res['accounted']}"
                    results.append(res)
                    save()
                    print(json.dumps(res), flush=True)
                    for p in work.glob(f"{stem}*"):
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                table.unlink(missing_ok=True)
                du = shutil.disk_usage(args.tmp)
                print(f"# disk free under {args.tmp}: {du.free / 2**30:.1f} GiB", flush=True)
    finally:
        meta["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        meta["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
        save()
        shutil.rmtree(work, ignore_errors=True)

    print(markdown(meta, results))
    print(f"\n# results: {args.json}")


def _mb(r: dict, key: str) -> str:
    return f"{r[key]:,.0f}" if key in r else ""


def _span(r: dict, key: str) -> str:
    return f"{r[f'{key}_end_s'] - r[f'{key}_start_s']:.1f}" if f"{key}_start_s" in r else ""


def _load(r: dict) -> str:
    lo, hi = r.get("load1_min_max") or (min(r["load_before"][0], r["load_after"][0]),) * 2
    return f"{lo:.1f}-{hi:.1f}"


def markdown(meta: dict, results: list[dict]) -> str:
    """The README's tables of one run: every point, then the peak ratio of each engine's
    largest point to its smallest, against the 1.5x goal."""
    stage = meta.get("stage", "probe")
    loads = [x for r in results if "load1_min_max" in r for x in r["load1_min_max"]]
    lines = [
        f"<!-- generated by benchmarks/ray_driver_bench.py from its --json of the run of {meta['started']} -->",
        f"{meta['cpu']}, {meta['cpus']} CPUs, {meta.get('mem_gib', '?')} GiB; "
        + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
        + f"; run {meta['started']} to {meta.get('finished', '?')}; OMP_NUM_THREADS={meta.get('omp_num_threads')}, "
        f"nice {meta.get('niceness')}; 1-minute load average while the jobs ran: "
        + (f"{min(loads):.1f}-{max(loads):.1f}" if loads else "not recorded")
        + ".",
        "",
    ]
    if stage == "probe":
        lines += [
            "| engine | code | rows | uri | driver peak RSS MB | before commit MB | after imports MB | wall s "
            "| of which commit s | rows/s | load 1-min |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
        ]
    else:
        lines += [
            "| engine | code | rows | driver peak RSS MB | before merge MB | after imports MB | wall s "
            "| of which partition s | rows/s | parts | in manifest | load 1-min |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
    order = {e: i for i, e in enumerate(dict.fromkeys(r["engine"] for r in results))}
    codes = list(dict.fromkeys(r["code"] for r in results))
    ranked = sorted(results, key=lambda r: (codes.index(r["code"]), order[r["engine"]], r["kind"] != "real", r["rows"]))
    for r in ranked:
        head = f"| {r['engine']} | {r['code']} | {r['rows']:,} |"
        if stage == "probe":
            head += f" {KIND_NAMES[r['kind']]} |"
        if "skipped" in r or "error" in r:
            lines.append(f"{head} {r.get('skipped') or r.get('error')} |")
            continue
        if stage == "probe":
            cells = [_mb(r, "peak_rss_mb"), _mb(r, "maxrss_before_commit_mb"), _mb(r, "baseline_rss_mb")]
            cells += [f"{r['wall_s']:.1f}", _span(r, "commit"), f"{r['rows_per_s']:,.0f}", _load(r)]
        else:
            cells = [_mb(r, "peak_rss_mb"), _mb(r, "maxrss_before_merge_mb"), _mb(r, "baseline_rss_mb")]
            cells += [f"{r['wall_s']:.1f}", _span(r, "partition"), f"{r['rows_per_s']:,.0f}"]
            cells += [str(r.get("parts", "")), f"{r['in_manifest']:,}", _load(r)]
        lines.append(f"{head} {' | '.join(cells)} |" + (f" {r['note']}" if r.get("note") else ""))
    lines += [
        "",
        f"Driver peak RSS, largest point / smallest ({KIND_NAMES[MAIN_KIND[stage]]}):",
        "",
        f"| engine | code | rows | ratio | goal {GOAL:g}x |",
        "|---|---|---|---:|---|",
    ]
    for code in codes:
        for engine in order:
            pts = [r for r in results if r["code"] == code and r["engine"] == engine and r["kind"] == MAIN_KIND[stage]]
            pts = sorted((r for r in pts if "peak_rss_mb" in r and "error" not in r), key=lambda r: r["rows"])
            if len(pts) >= 2:
                lo, hi = pts[0], pts[-1]
                ratio = hi["peak_rss_mb"] / lo["peak_rss_mb"]
                verdict = "met" if ratio <= GOAL else "NOT met"
                lines.append(
                    f"| {engine} | {code} | {hi['rows']:,} / {lo['rows']:,} | **{ratio:.2f}** "
                    f"({hi['peak_rss_mb']:,.0f} / {lo['peak_rss_mb']:,.0f} MB) | {verdict} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
