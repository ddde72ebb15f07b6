"""`weaksup quickstart`: the whole pipeline on an embedded synthetic web-video corpus.

README's first command. It needs no download and no GPU: ``synth-corpus`` makes a small
web corpus of motion-class videos with noisy hashtags and a target benchmark (some of
whose test videos are planted, transformed, in the web corpus); then every stage runs
on it as a user would run them, each writing its tables into ``OUT``:

build-labels (the corpus's class list) → match → sample (sqrt) → probe → splits (short,
long, long-center) → stats → dedupe against the target's test videos → pretrain on the
clean manifest → extract target features (pre-trained and random-init networks) →
eval fc-only (both) → eval finetune (from the pre-trained network and from scratch).

The final report gives the counts at each stage, the planted copies found, the
pre-training loss and the target accuracy with and without pre-training. Training flips
are off throughout: the corpus has left/right classes, which a mirror image swaps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq

from weaksup.train.config import TrainConfig, finetune_preset, preset


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes of the quickstart run; :meth:`small` is the CI-sized version."""

    out: Path = Path("quickstart-run")
    seed: int = 0
    videos: int = 600
    classes: int = 6
    target_train_per_class: int = 12
    target_test_per_class: int = 6
    planted: int = 12
    min_videos: int = 10  # the paper's 50, scaled to a corpus of hundreds
    pretrain_steps: int = 500
    finetune_epochs: int = 10
    clips: int = 10
    workers: int = 2
    progress: bool = True

    @classmethod
    def small(cls, out: Path, **kw: Any) -> QuickstartConfig:
        """A run of about a minute for CI: 4 classes, 120 web videos, short training."""
        return cls(out=out, videos=120, classes=4, target_train_per_class=8, target_test_per_class=4, planted=4,
                   min_videos=5, pretrain_steps=40, finetune_epochs=3, clips=4, **kw)

    # Training loads clips in-process (workers=0): on a 2-core CPU, bf16 training steps run
    # 7x slower when decoder processes compete with oneDNN's threads (46.6 vs 6.7 clips/s
    # measured), while decoding is only ~15% of a step here. Extraction (fp32) does use workers.
    def pretrain_config(self) -> TrainConfig:
        return preset("tiny").override(
            arch="r2plus1d_10", frames=8, crop=40, short_side=40, hflip=False, batch_size=16, max_steps=self.pretrain_steps,
            base_lr=0.04, reference_batch=16, warmup_fraction=0.05, lr_halvings=3, precision="bf16", channels_last=True,
            workers=0, log_every=10, checkpoint_every=max(self.pretrain_steps // 2, 1), seed=self.seed,
        )

    def finetune_config(self) -> TrainConfig:
        return finetune_preset("finetune-tiny").override(
            frames=8, crop=40, short_side=40, hflip=False, epochs=self.finetune_epochs, max_steps=0, workers=0, seed=self.seed,
        )


class _Stages:
    """Runs named stages, timing each and collecting one report line per stage."""

    def __init__(self, progress: bool) -> None:
        self.lines: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.progress = progress

    def run(self, name: str, fn: Callable[[], tuple[Any, str]]) -> Any:
        from rich.console import Console

        if self.progress:
            Console(stderr=True).print(f"[bold]quickstart[/bold] {name} ...", highlight=False)
        t0 = time.perf_counter()
        value, line = fn()
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.lines[name] = line
        return value


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run every stage on the synthetic corpus into ``cfg.out``; return the report (also report.json)."""
    from weaksup.assembly.match import MatchConfig, match_videos
    from weaksup.assembly.probe import ProbeConfig, probe_videos
    from weaksup.assembly.sample import SampleConfig, sample_manifest
    from weaksup.assembly.splits import SplitsConfig, make_splits
    from weaksup.assembly.stats import StatsConfig, manifest_stats
    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
    from weaksup.eval.extract import ExtractConfig, extract_features
    from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only
    from weaksup.eval.finetune import finetune
    from weaksup.labels.build import BuildLabelsConfig, build_labels
    from weaksup.synth.corpus import SynthCorpusConfig, synth_corpus
    from weaksup.tables import write_json
    from weaksup.train.loop import pretrain

    out = Path(cfg.out)
    started = time.perf_counter()
    st = _Stages(cfg.progress)
    corpus_dir, data = out / "corpus", out / "data"

    def corpus():
        s = synth_corpus(SynthCorpusConfig(
            out=corpus_dir, seed=cfg.seed, n_videos=cfg.videos, n_classes=cfg.classes,
            n_target_train_per_class=cfg.target_train_per_class, n_target_test_per_class=cfg.target_test_per_class,
            n_planted=cfg.planted, workers=cfg.workers), progress=cfg.progress)
        return s, (f"{s['web_videos']} web videos ({s['planted']} planted copies of target test videos), "
                   f"{s['classes']} motion classes, target {s['target_train']} train / {s['target_test']} test")
    c = st.run("synth-corpus", corpus)

    labels = data / "labels.parquet"

    def labels_stage():
        r = build_labels(BuildLabelsConfig(sources=("file",), labels_file=corpus_dir / "labels.txt", out=labels))
        return r, f"{r.summary['labels']} labels, {r.summary['hashtags']} relevant hashtags, {r.summary['collisions']} collisions"
    st.run("build-labels", labels_stage)

    manifest = data / "manifest.parquet"

    def match_stage():
        m = match_videos(MatchConfig(videos=corpus_dir / "videos.parquet", labels=labels, out=manifest,
                                     min_videos=cfg.min_videos, seed=cfg.seed, progress=False))
        return m, (f"{m['videos_read']} videos -> {m['in_manifest']} labelled ({m['unmatched']} without a label hashtag, "
                   f"{m['labels_dropped']} labels under {cfg.min_videos} videos dropped); {m['labels_kept']} labels kept")
    m = st.run("match", match_stage)

    def sample_stage():
        size = max(1, m["in_manifest"] // 2)
        s = sample_manifest(SampleConfig(manifest=manifest, strategy="sqrt", out=data / "sqrt_half.parquet",
                                         sizes=(size,), seed=cfg.seed))
        return s, f"square-root sampled subset of {size} videos in {data / 'sqrt_half.parquet'}"
    st.run("sample", sample_stage)

    probe = data / "probe.parquet"

    def probe_stage():
        _, p = probe_videos(ProbeConfig(videos=manifest, out=probe, workers=cfg.workers, progress=cfg.progress))
        return p, f"{p.get('ok')} ok, {p.get('rejected')} rejected (container metadata, no decode)"
    st.run("probe", probe_stage)

    def splits_stage():
        counts = {}
        for kind in ("short", "long", "long-center"):
            s = make_splits(SplitsConfig(manifest=manifest, probe=probe, kind=kind, out=data / "splits" / f"{kind}.parquet"))
            counts[kind] = s.get("selected")
        return counts, ", ".join(f"{k} {v} clips" for k, v in counts.items())
    st.run("splits", splits_stage)

    def stats_stage():
        s = manifest_stats(StatsConfig(manifest=manifest, out=out / "stats"))
        return s, f"label counts and plots in {out / 'stats'}"
    st.run("stats", stats_stage)

    clean = data / "clean_manifest.parquet"

    def dedupe_stage():
        s = dedupe_manifest(DedupeConfig(manifest=manifest, targets=corpus_dir / "target" / "test.parquet", out=clean,
                                         report=data / "overlaps.parquet", workers=cfg.workers, progress=cfg.progress))
        removed = set(pq.read_table(clean.with_name("clean_manifest.removed.parquet"), columns=["video_id"])
                      .column("video_id").to_pylist())
        planted_ids = set(pq.read_table(corpus_dir / "planted.parquet").column("web_video_id").to_pylist())
        in_manifest = planted_ids & set(pq.read_table(manifest, columns=["video_id"]).column("video_id").to_pylist())
        found = len(removed & in_manifest)
        s = dict(s, planted_in_manifest=len(in_manifest), planted_found=found,
                 false_removals=len(removed - planted_ids))
        return s, (f"{found}/{len(in_manifest)} planted copies in the manifest found and removed, "
                   f"{s['false_removals']} other videos removed; {s['kept']} videos kept")
    d = st.run("dedupe", dedupe_stage)

    pre_cfg = cfg.pretrain_config()

    def pretrain_stage():
        s = pretrain(pre_cfg, manifest=clean, out=out / "pretrain", labels=labels, resume=False, progress=cfg.progress)
        return s, (f"{pre_cfg.arch}, {s['steps']} steps x {pre_cfg.batch_size} clips: loss {s['first_loss']:.3f} -> "
                   f"{s['final_loss']:.3f} at {s['clips_per_s']:.0f} clips/s")
    p = st.run("pretrain", pretrain_stage)

    target = corpus_dir / "target"
    feats = data / "features"
    results: dict[str, dict] = {}
    for name, ckpt in (("pre-trained", out / "pretrain"), ("random init", None)):
        def extract_stage(name=name, ckpt=ckpt):
            tag = "pretrained" if ckpt else "random"
            for split in ("train", "test"):
                extract_features(target / f"{split}.parquet", feats / f"{tag}_{split}.parquet", checkpoint=ckpt,
                                 cfg=ExtractConfig(arch=pre_cfg.arch, num_clips=cfg.clips, frames=pre_cfg.frames,
                                                   crop=pre_cfg.crop, short_side=pre_cfg.short_side, workers=cfg.workers,
                                                   progress=cfg.progress, seed=cfg.seed))
            r = eval_fc_only(feats / f"{tag}_train.parquet", feats / f"{tag}_test.parquet", out / "eval" / f"fc_only_{tag}",
                             FcOnlyConfig(seed=cfg.seed))
            results[f"fc-only, {name}"] = r
            return r, f"top-1 {100 * r['top1']:.1f}% (clip level {100 * r['clip_top1']:.1f}%), penalty {r['protocol']['penalty']:g}"
        st.run(f"extract + eval fc-only ({name})", extract_stage)

    ft_cfg = cfg.finetune_config()
    for name, ckpt in (("pre-trained", out / "pretrain"), ("from scratch", None)):
        def finetune_stage(name=name, ckpt=ckpt):
            tag = "pretrained" if ckpt else "scratch"
            r = finetune(replace(ft_cfg, arch=pre_cfg.arch), train_manifest=target / "train.parquet",
                         test_manifest=target / "test.parquet", checkpoint=ckpt, out=out / "eval" / f"finetune_{tag}",
                         num_clips=cfg.clips, resume=False, progress=cfg.progress)
            results[f"fine-tune, {name}"] = r
            return r, f"top-1 {100 * r['top1']:.1f}% (clip level {100 * r['clip_top1']:.1f}%), {r['protocol']['steps']} steps"
        st.run(f"eval finetune ({name})", finetune_stage)

    report = {
        "out": str(out),
        "stages": st.lines,
        "seconds": st.seconds,
        "target_top1": {k: round(v["top1"], 4) for k, v in results.items()},
        "planted_found": f"{d['planted_found']}/{d['planted_in_manifest']}",
        "pretrain_loss": [p["first_loss"], p["final_loss"]],
        "corpus": {k: c[k] for k in ("web_videos", "classes", "target_train", "target_test", "planted")},
        "clips": cfg.clips,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_json(report, out / "report.json")
    return report


def report_tables(report: dict[str, Any]) -> list:
    """The one-screen summary: stages with their result and seconds, then the target accuracies."""
    from rich.table import Table

    stages = Table(title=f"weaksup quickstart -> {report['out']} ({report['wall_s']:.0f} s)", title_justify="left")
    stages.add_column("stage", style="bold")
    stages.add_column("result")
    stages.add_column("s", justify="right")
    for name, line in report["stages"].items():
        stages.add_row(name, line, f"{report['seconds'][name]:.0f}")
    acc = Table(title=f"target benchmark, video-level top-1 ({report['clips']} centre-crop clips averaged per video)",
                title_justify="left")
    acc.add_column("protocol", style="bold")
    acc.add_column("with pre-training", justify="right")
    acc.add_column("without", justify="right")
    t = report["target_top1"]
    acc.add_row("fc-only (frozen features + logistic regression)", f"{100 * t['fc-only, pre-trained']:.1f}%",
                f"{100 * t['fc-only, random init']:.1f}% (random init)")
    acc.add_row("full fine-tuning", f"{100 * t['fine-tune, pre-trained']:.1f}%",
                f"{100 * t['fine-tune, from scratch']:.1f}% (from scratch)")
    return [stages, acc]


def load_report(out: Path) -> dict[str, Any]:
    return json.loads((Path(out) / "report.json").read_text())
