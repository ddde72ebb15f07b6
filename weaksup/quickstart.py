"""`weaksup quickstart`: the pipeline on embedded defaults, as README's first command.

Runs every landed stage on data it makes itself, so it needs no download: the bundled
label spaces (IG-Kinetics, IG-Noun, IG-Verb) and their coverage of Kinetics-400; a
synthetic web-video metadata table with Zipf hashtags; match, nested sqrt and
tail-preserving subsets, the short / long / long-center temporal splits, stats; and a
probe of a few tiny generated videos plus a corrupt one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from weaksup.assembly.match import MatchConfig, match_videos
from weaksup.assembly.probe import ProbeConfig, probe_videos
from weaksup.assembly.sample import SampleConfig, sample_manifest
from weaksup.assembly.splits import SplitsConfig, make_splits
from weaksup.assembly.stats import StatsConfig, manifest_stats
from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.labels.overlap import label_overlap
from weaksup.synth.metadata import SynthMetadataConfig, synth_metadata
from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
from weaksup.synth.video import textured_frames, write_test_video, write_video
from weaksup.tables import write_table


@dataclass(frozen=True)
class QuickstartConfig:
    out: Path = Path("quickstart-run")
    videos: int = 200_000
    seed: int = 0
    progress: bool = True


def run_quickstart(cfg: QuickstartConfig) -> dict:
    """Run every available stage on embedded data into ``cfg.out``; return the report."""
    out = Path(cfg.out)
    spaces = {
        "IG-Kinetics": BuildLabelsConfig(sources=("kinetics400",), out=out / "labels" / "kinetics400.parquet"),
        "IG-Noun": BuildLabelsConfig(sources=("imagenet",), out=out / "labels" / "imagenet.parquet"),
        "IG-Verb": BuildLabelsConfig(sources=("kinetics-verbs",), out=out / "labels" / "kinetics_verbs.parquet"),
    }
    report: dict = {"label_spaces": {}, "stages": {}}
    for name, cfg_space in spaces.items():
        res = build_labels(cfg_space)
        report["label_spaces"][name] = {
            "labels": res.summary["labels"],
            "hashtags": res.summary["hashtags"],
            "collisions": res.summary["collisions"],
            "path": str(res.labels_path),
        }
    _, overlap = label_overlap(
        spaces["IG-Verb"].out, spaces["IG-Kinetics"].out, out / "labels" / "overlap_verbs_vs_kinetics.parquet"
    )
    report["Kinetics-400 labels reached by IG-Verb (exact or shared hashtag / partially)"] = (
        f"{overlap['reached']}/{overlap['target_labels']} / {overlap['reached_or_partial']}/{overlap['target_labels']}"
    )

    data = out / "data"
    videos = data / "videos.parquet"
    synth_metadata(SynthMetadataConfig(videos=cfg.videos, out=videos, seed=cfg.seed))
    manifest = data / "manifest.parquet"
    m = match_videos(
        MatchConfig(videos=videos, labels=spaces["IG-Kinetics"].out, out=manifest, seed=cfg.seed, progress=cfg.progress)
    )
    report["stages"]["match"] = (
        f"{m['videos_read']} videos -> {m['in_manifest']} labelled ({m['unmatched']} unmatched, "
        f"{m['dropped_by_min_videos']} dropped with {m['labels_dropped']} labels under {m['min_videos']} videos); "
        f"{m['labels_kept']} labels kept"
    )
    sizes = tuple(sorted({s for s in (m["in_manifest"] // 16, m["in_manifest"] // 4) if s > 0}))
    for strategy in ("sqrt", "tail-preserving") if sizes else ():
        s = sample_manifest(
            SampleConfig(manifest=manifest, strategy=strategy, out=data / "subsets", sizes=sizes, series=True, seed=cfg.seed)
        )
        report["stages"][f"sample {strategy}"] = f"nested subsets of {', '.join(map(str, sizes))} videos" + _labels_in(s)
    for kind in ("short", "long", "long-center"):
        s = make_splits(SplitsConfig(manifest=manifest, probe=None, kind=kind, out=data / "splits" / f"{kind}.parquet"))
        report["stages"][f"splits {kind}"] = f"{s.get('selected')} clips"
    st = manifest_stats(StatsConfig(manifest=manifest, out=out / "stats"))
    report["stages"]["stats"] = f"plots and label counts in {out / 'stats'} ({st.get('labels')} labels)"

    probe_dir = data / "tiny_videos"
    rows = []
    for i, (seconds, fps) in enumerate(((1.0, 16), (2.5, 24), (4.0, 30), (3.0, 12))):
        path = write_test_video(probe_dir / f"tiny{i}.mp4", seconds=seconds, fps=fps, seed=i)
        rows.append({"video_id": f"tiny{i}", "uri": str(path)})
    corrupt = probe_dir / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    rows.append({"video_id": "corrupt", "uri": str(corrupt)})
    rows.append({"video_id": "missing", "uri": str(probe_dir / "missing.mp4")})
    table = pa.Table.from_pylist([dict(r, hashtags=[]) for r in rows])
    write_table("videos", table, probe_dir / "videos.parquet")
    _, p = probe_videos(
        ProbeConfig(videos=probe_dir / "videos.parquet", out=probe_dir / "probe.parquet", workers=0, progress=cfg.progress)
    )
    report["stages"]["probe"] = f"{p.get('ok')} ok, {p.get('rejected')} rejected with a reason (tiny generated videos)"
    report["stages"]["dedupe"] = _dedupe_demo(probe_dir, rows, cfg)
    return report


def _dedupe_demo(folder: Path, corpus: list[dict], cfg: QuickstartConfig) -> str:
    """Plant transformed copies of held-out 'benchmark' videos in a corpus and remove them."""
    targets, planted = [], []
    for i in range(3):
        frames = textured_frames(64, width=96, height=64, seed=100 + i)
        targets.append({"video_id": f"bench{i}", "uri": str(write_video(folder / f"bench{i}.mp4", frames)), "hashtags": []})
        copy = (frames[16:48], frames[:, :, ::-1], frames[:, ::2, ::2])[i]  # sub-clip, flip, rescale
        path = write_video(folder / f"copy_of_bench{i}.mp4", copy, options={"crf": "30"})
        planted.append({"video_id": f"copy_of_bench{i}", "uri": str(path)})
    write_table("videos", pa.Table.from_pylist(targets), folder / "benchmark.parquet")
    rows = [dict(r, label_id=0, label="demo", matched_label_ids=[0]) for r in corpus + planted]
    write_table("manifest", pa.Table.from_pylist(rows), folder / "corpus_manifest.parquet")
    s = dedupe_manifest(
        DedupeConfig(
            manifest=folder / "corpus_manifest.parquet", targets=folder / "benchmark.parquet",
            out=folder / "clean_manifest.parquet", report=folder / "overlaps.parquet", workers=0, progress=cfg.progress,
        )
    )
    return (
        f"{s['removed']} removed of {len(planted)} planted copies (sub-clip, flip, rescale) among "
        f"{len(rows)} corpus videos; {s['sources_rejected']} unreadable kept and counted"
    )


def _labels_in(summary: dict) -> str:
    sizes = summary.get("sizes") or []
    if isinstance(sizes, list) and sizes and isinstance(sizes[-1], dict) and "labels" in sizes[-1]:
        return f" (largest covers {sizes[-1]['labels']} labels)"
    return ""
