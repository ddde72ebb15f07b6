"""match: weaksup's streaming matcher vs a naive pandas explode/merge/groupby, side by side.

Each method runs in its own forked child of this one script so that its peak RSS can
be read (``ru_maxrss`` of the child); wall time is measured around the call. The
result is projected linearly to 65M videos (both methods are linear in rows; pandas'
memory is too).

    python benchmarks/match_bench.py --videos 10000000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path


def weaksup_match(videos: Path, labels: Path, out: Path) -> dict:
    from weaksup.assembly.match import MatchConfig, match_videos

    s = match_videos(MatchConfig(videos=videos, labels=labels, out=out, progress=False))
    return {"in_manifest": s["in_manifest"], "labels_kept": s["labels_kept"]}


def pandas_match(videos: Path, labels: Path, out: Path) -> dict:
    """The obvious pandas version: explode tags, merge with the index, group per video."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(videos, columns=["video_id", "uri", "hashtags"])
    index = pd.read_parquet(labels, columns=["label_id", "hashtags"]).explode("hashtags").rename(columns={"hashtags": "tag"})
    tags = df[["video_id", "hashtags"]].explode("hashtags").rename(columns={"hashtags": "tag"})
    pairs = tags.merge(index, on="tag").drop_duplicates(["video_id", "label_id"])
    support = pairs.groupby("label_id")["video_id"].nunique()
    kept = support[support >= 50].index
    pairs = pairs[pairs["label_id"].isin(kept)]
    matched = pairs.groupby("video_id")["label_id"].apply(sorted)
    rng = np.random.default_rng(0)
    chosen = matched.apply(lambda ls: ls[rng.integers(len(ls))])
    manifest = df.set_index("video_id").loc[matched.index, ["uri"]].assign(label_id=chosen, matched_label_ids=matched)
    manifest.reset_index().to_parquet(out)
    return {"in_manifest": len(manifest), "labels_kept": len(kept)}


def _child(fn_name: str, args: tuple, queue: mp.Queue) -> None:
    fn = globals()[fn_name]
    t0 = time.perf_counter()
    result = fn(*args)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    queue.put({"wall_s": wall, "peak_rss_gb": peak_gb, **result})


def measure(fn_name: str, *args) -> dict:
    queue: mp.Queue = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_child, args=(fn_name, args, queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"wall_s": float("nan"), "peak_rss_gb": float("nan"), "error": f"exit {proc.exitcode}"}
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=10_000_000)
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()

    from weaksup.labels.build import BuildLabelsConfig, build_labels
    from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata

    work = args.dir or Path(tempfile.mkdtemp(prefix="weaksup-match-bench-"))
    videos, labels = work / "videos.parquet", work / "labels.parquet"
    if not videos.exists():
        synth_metadata(SynthMetadataConfig(videos=args.videos, out=videos))
    build_labels(BuildLabelsConfig(sources=("kinetics400",), out=labels))

    ours = measure("weaksup_match", videos, labels, work / "manifest_weaksup.parquet")
    rows = [("weaksup match (streaming, pyarrow+numpy)", ours)]
    if not args.skip_pandas:
        rows.append(("naive pandas explode+merge+groupby", measure("pandas_match", videos, labels, work / "manifest_pandas.parquet")))

    scale = 65_000_000 / args.videos
    print(f"\nmatch on {args.videos:,} synthetic videos x 400 labels (2 cores)\n")
    print("| method | wall s | peak RSS GB | in manifest | labels kept | projected 65M wall s | projected 65M RSS GB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['wall_s']:.1f} | {r['peak_rss_gb']:.2f} | {r.get('in_manifest', '-')} | {r.get('labels_kept', '-')} "
            f"| {r['wall_s'] * scale:.0f} | {r['peak_rss_gb'] * scale if 'pandas' in name else float('nan'):.1f} |"
        )
    if len(rows) == 2:
        print(f"\nspeed-up {rows[1][1]['wall_s'] / ours['wall_s']:.1f}x, memory ratio {rows[1][1]['peak_rss_gb'] / ours['peak_rss_gb']:.1f}x")


if __name__ == "__main__":
    main()
