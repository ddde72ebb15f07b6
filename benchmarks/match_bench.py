"""match: weaksup's match (DuckDB join) vs the numpy matcher it replaced, hand-written DuckDB SQL
and Polars queries of the same join, and a naive pandas explode/merge/groupby, side by side.

Every method runs in its own forked child of this one script (the parent imports nothing
heavy), so its peak RSS is the child's ``ru_maxrss``; wall time is measured around the call.
Thread counts are set in the child before the engines start: ``OMP_NUM_THREADS`` (weaksup's
thread budget, DuckDB), ``POLARS_MAX_THREADS``, Arrow's CPU pool.

The old matcher is the library's ``match.py`` at commit ``OLD_COMMIT`` (read with ``git show``);
``--compare-rows`` also checks that old and new write identical tables on a synthetic table
with duplicates, nulls and re-spelled tags. ``--readme`` rewrites the table of the match
section of benchmarks/README.md from this run.

    python benchmarks/match_bench.py --videos 10000000 --threads 1,2 --readme
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from queue import Empty

REPO = Path(__file__).resolve().parent.parent
OLD_COMMIT = "1b34ce4d3a0fcc589e82c8ba25e407a7bea46057"  # the last match.py with the numpy matcher
README = REPO / "benchmarks" / "README.md"
MIN_VIDEOS = 50


# ---- the methods (each runs in a child) ------------------------------------------------------------


def weaksup_match(videos: Path, labels: Path, out: Path) -> dict:
    from weaksup.assembly.match import MatchConfig, match_videos

    s = match_videos(MatchConfig(videos=videos, labels=labels, out=out, progress=False))
    return {"in_manifest": s["in_manifest"], "labels_kept": s["labels_kept"]}


def old_module() -> types.ModuleType:
    """The library's match.py at OLD_COMMIT, importable beside today's package."""
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:weaksup/assembly/match.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    src = src.replace(
        "from weaksup.hashing import _splitmix64, stable_hash64",
        "from weaksup.hashing import splitmix64 as _splitmix64, stable_hash64",
    )
    module = types.ModuleType("weaksup_match_old")
    sys.modules[module.__name__] = module
    exec(compile(src, f"{OLD_COMMIT[:7]}:weaksup/assembly/match.py", "exec"), module.__dict__)
    return module


def old_match(videos: Path, labels: Path, out: Path) -> dict:
    old = old_module()
    s = old.match_videos(old.MatchConfig(videos=videos, labels=labels, out=out, progress=False))
    return {"in_manifest": s["in_manifest"], "labels_kept": s["labels_kept"]}


DUCKDB_SQL = """
CREATE TEMP TABLE idx AS SELECT label_id, unnest(hashtags) AS tag FROM read_parquet($labels);
COPY (
  WITH v AS (SELECT file_row_number AS row, video_id, uri, duration_s, hashtags
             FROM read_parquet($videos, file_row_number = true)),
  pairs AS (SELECT DISTINCT u.row, idx.label_id
            FROM (SELECT row, unnest(hashtags) AS t FROM v) AS u
            JOIN idx ON idx.tag = regexp_replace(lower(u.t), '[^a-z0-9]+', '', 'g')),
  support AS (SELECT label_id, count(*) AS n FROM pairs GROUP BY label_id),
  lists AS (SELECT p.row, list(p.label_id ORDER BY p.label_id) AS labels
            FROM pairs AS p JOIN support AS s USING (label_id) WHERE s.n >= $min_videos GROUP BY p.row)
  SELECT v.video_id, v.uri, l.labels[1 + (hash(v.video_id) % len(l.labels))::INTEGER] AS label_id,
         l.labels AS matched_label_ids, v.duration_s
  FROM lists AS l JOIN v USING (row)
) TO $out (FORMAT parquet, COMPRESSION zstd);
"""


def duckdb_sql(videos: Path, labels: Path, out: Path) -> dict:
    """The join by hand in DuckDB SQL: unnest, normalise (ASCII rule), join, distinct pairs,
    support, kept labels per video, a hash draw. No rejects, duplicates or audit tags."""
    import duckdb

    con = duckdb.connect(config={"threads": int(os.environ["OMP_NUM_THREADS"])})
    for statement in filter(str.strip, DUCKDB_SQL.split(";")):
        params = {
            k: v
            for k, v in {
                "labels": str(labels),
                "videos": str(videos),
                "out": str(out),
                "min_videos": MIN_VIDEOS,
            }.items()
            if f"${k}" in statement
        }
        con.execute(statement, params)
    n = con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(out)}).fetchone()[0]
    return {"in_manifest": n, "labels_kept": "-"}


def polars_query(videos: Path, labels: Path, out: Path) -> dict:
    """The same join by hand in Polars (lazy, streaming engine)."""
    import polars as pl

    idx = pl.scan_parquet(labels).select("label_id", pl.col("hashtags").alias("tag")).explode("tag")
    v = pl.scan_parquet(videos).with_row_index("row")
    pairs = (
        v.select("row", pl.col("hashtags").alias("t"))
        .explode("t")
        .select("row", pl.col("t").str.to_lowercase().str.replace_all("[^a-z0-9]+", "").alias("tag"))
        .join(idx, on="tag")
        .select("row", "label_id")
        .unique()
    )
    kept = pairs.group_by("label_id").len().filter(pl.col("len") >= MIN_VIDEOS).select("label_id")
    lists = pairs.join(kept, on="label_id", how="semi").group_by("row").agg(pl.col("label_id").sort().alias("labels"))
    manifest = lists.join(v.select("row", "video_id", "uri", "duration_s"), on="row").select(
        "video_id",
        "uri",
        pl.col("labels")
        .list.get((pl.col("video_id").hash(0) % pl.col("labels").list.len()).cast(pl.Int64))
        .alias("label_id"),
        pl.col("labels").alias("matched_label_ids"),
        "duration_s",
    )
    manifest.sink_parquet(out, compression="zstd", engine="streaming")
    return {"in_manifest": pl.scan_parquet(out).select(pl.len()).collect().item(), "labels_kept": "-"}


def duckdb_join_keys(videos: Path, labels: Path, out: Path) -> dict:
    """Only the join inside ``match`` (DuckDB): sorted distinct ``row * n_tags + tag`` keys and the null rejects."""
    from weaksup.assembly.match import load_index
    from weaksup.assembly.match_engine import VideosScan

    index, _ = load_index(labels)
    with VideosScan(videos, index.tags, staging=out) as scan:
        keys, _ = scan.join("null hashtags")
    return {"in_manifest": len(keys), "labels_kept": "-"}


def polars_join_keys(videos: Path, labels: Path, out: Path) -> dict:
    """The same join in Polars (streaming engine; the ASCII rule only, no NFKC UDF), keys sorted
    and made distinct by the same numpy code."""
    import numpy as np
    import polars as pl

    from weaksup.assembly.match import load_index

    index, _ = load_index(labels)
    n_tags = len(index.tags)
    idx = pl.LazyFrame({"tag": index.tags.to_pylist(), "pos": np.arange(n_tags, dtype=np.int64)})
    t = pl.col("t")
    norm = (
        pl.when(t.str.contains("^[a-z0-9]*$")).then(t).otherwise(t.str.to_lowercase().str.replace_all("[^a-z0-9]+", ""))
    )
    keys = (
        pl.scan_parquet(videos)
        .with_row_index("row")
        .filter(pl.col("video_id").is_not_null() & pl.col("uri").is_not_null())
        .select("row", pl.col("hashtags").alias("t"))
        .explode("t")
        .select("row", norm.alias("tag"))
        .join(idx, on="tag")
        .select((pl.col("row").cast(pl.Int64) * n_tags + pl.col("pos")).alias("key"))
        .collect(engine="streaming")["key"]
        .to_numpy()
    )
    keys.sort(kind="stable")
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
    return {"in_manifest": len(keys), "labels_kept": "-"}


def pandas_match(videos: Path, labels: Path, out: Path) -> dict:
    """The obvious pandas version: explode tags, merge with the index, group per video."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(videos, columns=["video_id", "uri", "hashtags"])
    index = (
        pd.read_parquet(labels, columns=["label_id", "hashtags"])
        .explode("hashtags")
        .rename(columns={"hashtags": "tag"})
    )
    tags = df[["video_id", "hashtags"]].explode("hashtags").rename(columns={"hashtags": "tag"})
    pairs = tags.merge(index, on="tag").drop_duplicates(["video_id", "label_id"])
    support = pairs.groupby("label_id")["video_id"].nunique()
    kept = support[support >= MIN_VIDEOS].index
    pairs = pairs[pairs["label_id"].isin(kept)]
    matched = pairs.groupby("video_id")["label_id"].apply(sorted)
    rng = np.random.default_rng(0)
    chosen = matched.apply(lambda ls: ls[rng.integers(len(ls))])
    manifest = df.set_index("video_id").loc[matched.index, ["uri"]].assign(label_id=chosen, matched_label_ids=matched)
    manifest.reset_index().to_parquet(out)
    return {"in_manifest": len(manifest), "labels_kept": len(kept)}


# ---- data and the 1M-row identity check ---------------------------------------------------------------


def make_inputs(videos: Path, labels: Path, n: int, dirty: bool) -> dict:
    """Synthetic videos (Zipf labels) and the Kinetics-400 labels; ``dirty`` adds 2% repeated ids,
    0.1% null uris and re-spelled tags (#, upper case) on 10% of the rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from weaksup.labels.build import BuildLabelsConfig, build_labels
    from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

    if not labels.exists():
        build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels))
    if videos.exists():
        return {}
    synth_metadata(SynthMetadataConfig(videos=n, out=videos))
    if dirty:
        t, rng = pq.read_table(videos), np.random.default_rng(1)
        ids = t.column("video_id").to_numpy(zero_copy_only=False).astype(object)
        dup = np.flatnonzero(rng.random(n) < 0.02)
        ids[dup] = ids[rng.integers(0, n, len(dup))]
        uris = pa.array(
            np.where(rng.random(n) < 0.001, None, t.column("uri").to_numpy(zero_copy_only=False)), pa.string()
        )
        tags = t.column("hashtags").combine_chunks()
        loud = pc.binary_join_element_wise("#", pc.utf8_upper(tags.values), "")
        mask = pa.array(np.repeat(rng.random(n) < 0.1, np.diff(tags.offsets.to_numpy())))
        tags = pa.ListArray.from_arrays(tags.offsets, pc.if_else(mask, loud, tags.values), mask=tags.is_null())
        t = (
            t.set_column(0, "video_id", pa.array(ids, pa.string()))
            .set_column(1, "uri", uris)
            .set_column(2, "hashtags", tags)
        )
        pq.write_table(t, videos)
    return {}


def compare_old_new(videos: Path, labels: Path, work: Path) -> dict:
    """Old (OLD_COMMIT) and new match on the same table: identical manifest, rejects, label counts, summary."""
    import pyarrow.parquet as pq

    from weaksup.assembly.match import MatchConfig, match_videos

    old = old_module()
    new_s = match_videos(MatchConfig(videos=videos, labels=labels, out=work / "new.parquet", progress=False))
    old_s = old.match_videos(old.MatchConfig(videos=videos, labels=labels, out=work / "old.parquet", progress=False))
    same = {}
    for name in ("", ".rejects", ".label_counts"):
        a, b = pq.read_table(work / f"new{name}.parquet"), pq.read_table(work / f"old{name}.parquet")
        same[name.lstrip(".") or "manifest"] = a.schema.equals(b.schema, check_metadata=True) and a.equals(b)
    same["summary"] = {k: v for k, v in new_s.items() if k != "outputs"} == {
        k: v for k, v in old_s.items() if k != "outputs"
    }
    return {"rows": new_s["videos_read"], "in_manifest": new_s["in_manifest"], "rejected": new_s["rejected"], **same}


# ---- running children -----------------------------------------------------------------------------


def _child(fn_name: str, args: tuple, threads: int, queue: mp.Queue) -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["POLARS_MAX_THREADS"] = str(threads)
    import pyarrow as pa

    pa.set_cpu_count(threads)
    t0 = time.perf_counter()
    result = globals()[fn_name](*args)
    wall = time.perf_counter() - t0
    queue.put({"wall_s": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, **result})


def measure(fn_name: str, *args, threads: int = 2) -> dict:
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn_name, args, threads, queue))
    proc.start()
    result = None
    while result is None and (proc.is_alive() or not queue.empty()):
        try:
            result = queue.get(timeout=1)
        except Empty:
            pass
    proc.join()
    if proc.exitcode != 0 or result is None:
        return {"wall_s": float("nan"), "peak_rss_gb": float("nan"), "error": f"exit {proc.exitcode}"}
    return result


# ---- report ---------------------------------------------------------------------------------------------


def summarize(runs: list[dict]) -> dict:
    """The median wall time of a method's runs, their range, the largest peak RSS."""
    ok = [r for r in runs if "error" not in r] or runs
    walls = sorted(r["wall_s"] for r in ok)
    return {
        **ok[0],
        "wall_s": walls[len(walls) // 2],
        "wall_range": (walls[0], walls[-1]),
        "runs": len(ok),
        "peak_rss_gb": max(r["peak_rss_gb"] for r in ok),
    }


METHODS = [  # (label, function, thread counts it is run with: None = the --threads list)
    ("weaksup `match` (new: DuckDB join + numpy)", "weaksup_match", None),
    ("weaksup `match` before (numpy matcher, " + OLD_COMMIT[:7] + ")", "old_match", None),
    ("hand-written DuckDB SQL of the join", "duckdb_sql", None),
    ("hand-written Polars query of the join", "polars_query", None),
    ("naive pandas explode + merge + groupby", "pandas_match", [1]),
    ("only the join inside `match`, DuckDB (keys out: hits, not videos)", "duckdb_join_keys", None),
    ("only the join inside `match`, Polars (keys out: hits, not videos)", "polars_join_keys", None),
]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    flags = Path("/proc/cpuinfo").read_text()
    extra = ", AVX-512 BF16" if "avx512_bf16" in flags else ""
    return f"{cpu}{extra}, {os.cpu_count()} cores"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("duckdb", "polars", "pyarrow", "pandas"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} -")
    return ", ".join(out)


def report(
    n: int, rows: list[tuple[str, str, int, dict]], compared: dict | None, goal_s: float | None, goal_gb: float | None
) -> str:
    """The markdown block of one run: settings, the table, goals, the identity check."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{n:,} synthetic videos x 400 Kinetics labels; {machine()}; {versions()}; run {when}.",
        "",
        "| method | threads | wall s (median) | runs: min-max s | peak RSS GB | in manifest | labels kept |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, threads, r in rows:
        manifest = f"{r['in_manifest']:,}" if isinstance(r.get("in_manifest"), int) else r.get("error", "-")
        lo, hi = r.get("wall_range", (r["wall_s"], r["wall_s"]))
        lines.append(
            f"| {name} | {threads} | {r['wall_s']:.1f} | {r.get('runs', 1)}: {lo:.1f}-{hi:.1f} "
            f"| {r['peak_rss_gb']:.2f} | {manifest} | {r.get('labels_kept', '-')} |"
        )
    by = {(fn, t): r for _, fn, t, r in rows}
    new, old = by.get(("weaksup_match", 2)) or by.get(("weaksup_match", 1)), by.get(("old_match", 2))
    lines.append("")
    if new and old:
        lines.append(
            f"New vs old match at 2 threads (medians): {old['wall_s'] / new['wall_s']:.2f}x faster, "
            f"{new['peak_rss_gb']:.2f} vs {old['peak_rss_gb']:.2f} GB peak RSS."
        )
    if new and goal_s is not None and goal_gb is not None:
        ok = new["wall_s"] <= goal_s and new["peak_rss_gb"] <= goal_gb
        lines.append(
            f"Goal (new match, 2 threads, median): wall <= {goal_s:g} s and peak RSS <= {goal_gb:g} GB: "
            f"{'met' if ok else 'NOT met'} ({new['wall_s']:.1f} s, {new['peak_rss_gb']:.2f} GB)."
        )
    if compared:
        same = all(compared[k] for k in ("manifest", "rejects", "label_counts", "summary"))
        lines.append(
            f"Old vs new on {compared['rows']:,} rows with {compared['rejected']:,} rejects (repeated ids, null uris) "
            f"and re-spelled tags: manifest ({compared['in_manifest']:,} rows), rejects, label counts and summary "
            f"{'identical' if same else 'DIFFER: ' + json.dumps(compared)}."
        )
    return "\n".join(lines)


def write_readme(key: str, block: str) -> None:
    """Replace the block between this key's markers in benchmarks/README.md (added at the end of
    the match section if new)."""
    begin, end = f"<!-- match_bench {key} begin -->", f"<!-- match_bench {key} end -->"
    text = README.read_text(encoding="utf-8")
    new = f"{begin}\n{block}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: new, text, flags=re.S)
    else:
        start = text.index("## match")
        nxt = text.index("\n## ", start + 1)
        text = text[:nxt].rstrip("\n") + "\n\n" + new + "\n" + text[nxt:]
    README.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=10_000_000)
    parser.add_argument("--threads", default="1,2", help="thread counts to run each engine with")
    parser.add_argument(
        "--methods",
        default="weaksup_match,old_match,duckdb_sql,polars_query,pandas_match,duckdb_join_keys,polars_join_keys",
    )
    parser.add_argument("--compare-rows", type=int, default=1_000_000, help="old vs new identity check (0: skip)")
    parser.add_argument(
        "--goal-s", type=float, default=None, help="wall goal of the new match at 2 threads (with --goal-gb)"
    )
    parser.add_argument("--goal-gb", type=float, default=None, help="peak RSS goal of the new match at 2 threads")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method (pandas: one); the median is shown")
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--readme", default=None, help="write the block under this key into benchmarks/README.md")
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="weaksup-match-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    videos, labels = work / f"videos-{args.videos}.parquet", work / "labels.parquet"
    measure("make_inputs", videos, labels, args.videos, False)
    wanted = args.methods.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for name, fn, counts in METHODS:
        for t in (counts or threads) if fn in wanted else []:
            runs = [
                measure(fn, videos, labels, work / f"manifest_{fn}_{t}.parquet", threads=t)
                for _ in range(1 if fn == "pandas_match" else args.repeat)
            ]
            print(f"{name} threads={t}: {json.dumps(runs)}", flush=True)
            rows.append((name, fn, t, summarize(runs)))
    compared = None
    if args.compare_rows:
        small = work / f"dirty-{args.compare_rows}.parquet"
        measure("make_inputs", small, labels, args.compare_rows, True)
        compared = measure("compare_old_new", small, labels, work)
        print("old vs new:", json.dumps(compared), flush=True)
    block = report(args.videos, rows, compared, args.goal_s, args.goal_gb)
    print("\n" + block)
    if args.readme:
        write_readme(args.readme, block)


if __name__ == "__main__":
    main()
