"""`weaksup quickstart`: the whole pipeline on an embedded synthetic web-video corpus.

README's first command. It needs no download and no GPU: ``synth-corpus`` makes a small
web corpus of motion-class videos with noisy hashtags and a target benchmark (other
classes, another visual domain; some of its test videos are planted, transformed, in the
web corpus); then every stage runs on it as a user would run them, each writing its
tables into ``OUT``:

build-labels (the corpus's class list) → match → sample (sqrt) → probe → splits (short,
long, long-center) → stats → dedupe against the target's test videos → pretrain on the
clean manifest → extract target features (pre-trained and random-init networks) →
eval fc-only (both) → eval finetune (from the pre-trained network and from scratch, each
with two seeds).

The final report gives the counts at each stage, the planted copies found, the
pre-training loss and, for fc-only and fine-tuning, the target's top-1 with and without
pre-training, each with a 95% interval and the interval of the gain (paired bootstrap over
test videos and seeds, :mod:`weaksup.eval.compare`), beside the chance level. Training
flips are off throughout: the corpus has left/right classes, which a mirror image swaps.
Every finished stage leaves a stamp in ``OUT/.quickstart/``: a rerun with the same
settings reuses it, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq

from weaksup.eval.compare import compare_arms, hits_matrix
from weaksup.eval.report import read_predictions
from weaksup.synth.corpus import DIAGONALS
from weaksup.train.config import TrainConfig, finetune_preset, preset


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes and recipe of the quickstart run; :meth:`small` is the CI-sized version.

    The target benchmark's classes are diagonal motions, a label set the web corpus does not
    have, in another visual domain: what transfers is the motion primitives (horizontal and
    vertical movement) the web classes teach, as in the paper, where IG-65M's hashtags are
    not the target's labels. Its test set is large (300 videos) and the fine-tuning arms run
    with several seeds, so the report's intervals can separate a real gain from noise; its
    train set is small (10 videos a class), the regime where pre-training matters.
    """

    out: Path = Path("quickstart-run")
    seed: int = 0
    videos: int = 600
    classes: int = 6
    target_classes: tuple[str, ...] = DIAGONALS
    target_train_per_class: int = 10
    target_test_per_class: int = 75
    planted: int = 12
    min_videos: int = 10  # the paper's 50, scaled to a corpus of hundreds
    pretrain_steps: int = 500
    pretrain_lr: float = 0.01
    finetune_epochs: int = 15
    finetune_lr: float = 0.005
    finetune_seeds: int = 2
    clips: int = 4  # test clips per video (the paper: 10; 4 keeps the run under 10 minutes on 2 cores)
    workers: int = 2
    from_urls: bool = False  # serve the corpus over HTTP on 127.0.0.1 and fetch it first (weaksup fetch)
    progress: bool = True
    resume: bool = True

    @classmethod
    def small(cls, out: Path, **kw: Any) -> QuickstartConfig:
        """A run of about a minute for CI: 4 classes, 120 web videos, short training."""
        return cls(
            out=out,
            videos=120,
            classes=4,
            target_train_per_class=6,
            target_test_per_class=6,
            planted=4,
            min_videos=5,
            pretrain_steps=40,
            finetune_epochs=3,
            finetune_seeds=2,
            clips=4,
            **kw,
        )

    def key(self) -> str:
        """Digest of every field that changes a result (not out, workers, progress, resume)."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("out", "workers", "progress", "resume")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # Training loads clips in-process (workers=0): on a 2-core CPU, bf16 training steps run
    # 7x slower when decoder processes compete with oneDNN's threads (46.6 vs 6.7 clips/s
    # measured), while decoding is only ~15% of a step here. Extraction (fp32) does use workers.
    # LR: 0.01 at batch 16. The earlier 0.04 made the loss rise above chance on a clean,
    # noise-free version of the task on an AVX-512 BF16 CPU and the network learnt nothing
    # from the web corpus in 500 steps (benchmarks/learning.py, rung b).
    def pretrain_config(self) -> TrainConfig:
        return preset("tiny").override(
            arch="r2plus1d_10",
            frames=8,
            crop=40,
            short_side=40,
            hflip=False,
            batch_size=16,
            max_steps=self.pretrain_steps,
            base_lr=self.pretrain_lr,
            reference_batch=16,
            warmup_fraction=0.05,
            lr_halvings=3,
            precision="bf16",
            channels_last=True,
            workers=0,
            log_every=10,
            checkpoint_every=max(self.pretrain_steps // 2, 1),
            seed=self.seed,
        )

    # Fine-tuning: the pre-training LR per clip (0.005 at batch 8), the backbone of a
    # pre-trained network at a tenth of it; a network from scratch trains every layer at the
    # full LR (eval.finetune). Both arms get the same steps.
    def finetune_config(self, seed: int | None = None) -> TrainConfig:
        return finetune_preset("finetune-tiny").override(
            frames=8,
            crop=40,
            short_side=40,
            hflip=False,
            epochs=self.finetune_epochs,
            max_steps=0,
            workers=0,
            base_lr=self.finetune_lr,
            seed=self.seed if seed is None else seed,
        )


class _Stages:
    """Runs named stages, timing each and collecting one report line per stage.

    A stage that finished in an earlier run of the same config (its stamp in
    ``OUT/.quickstart/`` names the config's key) is not run again: its result and line are
    reused, so a rerun after an interruption resumes where it stopped.
    """

    def __init__(self, out: Path, key: str, progress: bool, resume: bool) -> None:
        self.lines: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []
        self.stamps = out / ".quickstart"
        self.key, self.progress, self.resume = key, progress, resume

    def other_config(self) -> bool:
        """Whether OUT holds stages of a run with other settings (then nothing there is resumed)."""
        for stamp in self.stamps.glob("*.json") if self.stamps.is_dir() else ():
            try:
                if json.loads(stamp.read_text(encoding="utf-8")).get("key") != self.key:
                    return True
            except (OSError, ValueError):
                return True
        return False

    def _stamp(self, name: str) -> Path:
        return self.stamps / (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".json")

    def run(self, name: str, fn: Callable[[], tuple[Any, str]]) -> Any:
        from rich.console import Console

        from weaksup.tables import write_json

        stamp = self._stamp(name)
        if self.resume and stamp.is_file():
            try:
                done = json.loads(stamp.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                done = {}
            if done.get("key") == self.key:
                self.lines[name], self.seconds[name] = done["line"], done["seconds"]
                self.reused.append(name)
                if self.progress:
                    Console(stderr=True).print(
                        f"[bold]quickstart[/bold] {name}: done in an earlier run", highlight=False
                    )
                return done["value"]
        if self.progress:
            Console(stderr=True).print(f"[bold]quickstart[/bold] {name} ...", highlight=False)
        t0 = time.perf_counter()
        value, line = fn()
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.lines[name] = line
        write_json({"key": self.key, "value": value, "line": line, "seconds": self.seconds[name]}, stamp)
        return value


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run every stage on the synthetic corpus into ``cfg.out``; return the report (also report.json)."""
    from weaksup.errors import InputError
    from weaksup.tables import write_json

    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (quickstart writes a folder)")
    started = time.perf_counter()
    run = _open_run(cfg, out)
    corpus = _synth_corpus_stage(run)
    if cfg.from_urls:
        _fetch_stage(run)
    _build_labels_stage(run)
    matched = _match_stage(run)
    _sample_stage(run, matched)
    _probe_stage(run)
    _splits_stage(run)
    _stats_stage(run)
    deduped = _dedupe_stage(run)
    _card_stage(run)
    pretrained = _pretrain_stage(run)
    fc_hits, fc_top1 = _fc_only_stages(run)
    ft_hits, ft_top1, ft_seeds = _finetune_stages(run)
    report = _report(
        run, corpus, deduped, pretrained, {**fc_hits, **ft_hits}, {**fc_top1, **ft_top1}, ft_seeds, started
    )
    write_json(report, out / "report.json")
    return report


@dataclass(frozen=True)
class _Run:
    """What the stages of one quickstart run share: the config, the stage runner, whether to resume, the paths."""

    cfg: QuickstartConfig
    st: _Stages
    out: Path
    resume: bool
    pre_cfg: TrainConfig

    @property
    def corpus_dir(self) -> Path:
        return self.out / "corpus"

    @property
    def fetched_dir(self) -> Path:
        return self.out / "fetched"

    @property
    def web_videos(self) -> Path:
        """The web videos table match reads: the corpus's, or fetch's with --from-urls."""
        return self.fetched_dir / "fetched.parquet" if self.cfg.from_urls else self.corpus_dir / "videos.parquet"

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def labels(self) -> Path:
        return self.data / "labels.parquet"

    @property
    def manifest(self) -> Path:
        return self.data / "manifest.parquet"

    @property
    def probe(self) -> Path:
        return self.data / "probe.parquet"

    @property
    def clean(self) -> Path:
        return self.data / "clean_manifest.parquet"

    @property
    def target(self) -> Path:
        return self.corpus_dir / "target"

    @property
    def feats(self) -> Path:
        return self.data / "features"

    @property
    def evals(self) -> Path:
        return self.out / "eval"


def _open_run(cfg: QuickstartConfig, out: Path) -> _Run:
    """The stage runner of ``out``, resuming only stamps of this config's key."""
    st = _Stages(out, cfg.key(), cfg.progress, cfg.resume)
    # a folder of a run with other settings: every stage starts over (checkpoints, parts)
    resume = cfg.resume and not st.other_config()
    st.resume = resume
    if not resume and st.stamps.is_dir():
        shutil.rmtree(st.stamps)  # every stage runs again; no stamp of the old run may survive
    return _Run(cfg, st, out, resume, cfg.pretrain_config())


def _synth_corpus_stage(run: _Run) -> dict[str, Any]:
    from weaksup.synth.corpus import SynthCorpusConfig, synth_corpus

    cfg = run.cfg

    def corpus():
        s = synth_corpus(
            SynthCorpusConfig(
                out=run.corpus_dir,
                seed=cfg.seed,
                n_videos=cfg.videos,
                n_classes=cfg.classes,
                n_target_train_per_class=cfg.target_train_per_class,
                n_target_test_per_class=cfg.target_test_per_class,
                n_planted=cfg.planted,
                target_classes=cfg.target_classes,
                workers=cfg.workers,
            ),
            progress=cfg.progress,
        )
        return s, (
            f"{s['web_videos']} web videos ({s['planted']} planted copies of target test videos), "
            f"{s['classes']} motion classes; target: {s['target_classes']} other classes, "
            f"{s['target_train']} train / {s['target_test']} test videos"
        )

    return run.st.run("synth-corpus", corpus)


def _fetch_stage(run: _Run) -> dict[str, Any]:
    """--from-urls: the corpus folder served on 127.0.0.1, its videos fetched back as URLs."""
    import pyarrow.parquet as pq

    from weaksup.fetch.config import FetchConfig
    from weaksup.fetch.fetch import fetch_videos
    from weaksup.fetch.serve import serve_folder, urls_for
    from weaksup.outputs import atomic_output

    def fetch_stage():
        urls = run.data / "urls.parquet"
        with serve_folder(run.corpus_dir) as base:
            table = urls_for(pq.read_table(run.corpus_dir / "videos.parquet"), run.corpus_dir, base)
            with atomic_output(urls) as tmp:
                pq.write_table(table, tmp)
            cfg = FetchConfig(
                videos=urls,
                out=run.fetched_dir,
                allow_private_hosts=True,  # the server is this machine
                host_rate=0.0,
                host_concurrency=16,
                resume=False,  # a new port each run: earlier rows name other URLs
                progress=run.cfg.progress,
            )
            _, s = fetch_videos(cfg)
        if s["rejected"]:
            raise RuntimeError(f"quickstart: fetch rejected {s['rejected']} of {s['rows']} videos ({s['reasons']})")
        return s, (
            f"{s['ok']} of {s['rows']} videos fetched over HTTP from 127.0.0.1 "
            f"({s['bytes'] / 1e6:.1f} MB, {s['megabytes_per_second']} MB/s)"
        )

    return run.st.run("fetch", fetch_stage)


def _build_labels_stage(run: _Run) -> dict[str, Any]:
    from weaksup.labels.build import BuildLabelsConfig, build_labels

    def labels_stage():
        r = build_labels(
            BuildLabelsConfig(sources=("file",), labels_file=run.corpus_dir / "labels.txt", out=run.labels)
        )
        return r.summary, (
            f"{r.summary['labels']} labels, {r.summary['hashtags']} relevant hashtags, "
            f"{r.summary['collisions']} collisions"
        )

    return run.st.run("build-labels", labels_stage)


def _match_stage(run: _Run) -> dict[str, Any]:
    from weaksup.assembly.match import MatchConfig, match_videos

    cfg = run.cfg

    def match_stage():
        m = match_videos(
            MatchConfig(
                videos=run.web_videos,
                keep_columns=("url",) if cfg.from_urls else (),  # provenance into the manifest and the card
                labels=run.labels,
                out=run.manifest,
                min_videos=cfg.min_videos,
                seed=cfg.seed,
                progress=False,
            )
        )
        return m, (
            f"{m['videos_read']} videos -> {m['in_manifest']} labelled ({m['unmatched']} without a label "
            f"hashtag, {m['labels_dropped']} labels under {cfg.min_videos} videos dropped); "
            f"{m['labels_kept']} labels kept"
        )

    return run.st.run("match", match_stage)


def _sample_stage(run: _Run, matched: dict[str, Any]) -> dict[str, Any]:
    from weaksup.assembly.sample import SampleConfig, sample_manifest

    def sample_stage():
        size = max(1, matched["in_manifest"] // 2)
        s = sample_manifest(
            SampleConfig(
                manifest=run.manifest,
                strategy="sqrt",
                out=run.data / "sqrt_half.parquet",
                sizes=(size,),
                seed=run.cfg.seed,
            )
        )
        return s, f"square-root sampled subset of {size} videos in {run.data / 'sqrt_half.parquet'}"

    return run.st.run("sample", sample_stage)


def _probe_stage(run: _Run) -> dict[str, Any]:
    from weaksup.assembly.probe import ProbeConfig, probe_videos

    def probe_stage():
        _, p = probe_videos(
            ProbeConfig(videos=run.manifest, out=run.probe, workers=run.cfg.workers, progress=run.cfg.progress)
        )
        return p, f"{p.get('ok')} ok, {p.get('rejected')} rejected (container metadata, no decode)"

    return run.st.run("probe", probe_stage)


def _splits_stage(run: _Run) -> dict[str, Any]:
    from weaksup.assembly.splits import SplitsConfig, make_splits

    def splits_stage():
        counts = {}
        for kind in ("short", "long", "long-center"):
            s = make_splits(
                SplitsConfig(
                    manifest=run.manifest, probe=run.probe, kind=kind, out=run.data / "splits" / f"{kind}.parquet"
                )
            )
            counts[kind] = s.get("selected")
        return counts, ", ".join(f"{k} {v} clips" for k, v in counts.items())

    return run.st.run("splits", splits_stage)


def _stats_stage(run: _Run) -> dict[str, Any]:
    from weaksup.assembly.stats import StatsConfig, manifest_stats

    def stats_stage():
        s = manifest_stats(StatsConfig(manifest=run.manifest, out=run.out / "stats"))
        return s, f"label counts and plots in {run.out / 'stats'}"

    return run.st.run("stats", stats_stage)


def _dedupe_stage(run: _Run) -> dict[str, Any]:
    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest

    cfg, clean = run.cfg, run.clean

    def dedupe_stage():
        s = dedupe_manifest(
            DedupeConfig(
                manifest=run.manifest,
                targets=run.target / "test.parquet",
                out=clean,
                report=run.data / "overlaps.parquet",
                workers=cfg.workers,
                progress=cfg.progress,
            )
        )
        removed = set(
            pq.read_table(clean.with_name("clean_manifest.removed.parquet"), columns=["video_id"])
            .column("video_id")
            .to_pylist()
        )
        planted_ids = set(pq.read_table(run.corpus_dir / "planted.parquet").column("web_video_id").to_pylist())
        manifest_ids = set(pq.read_table(run.manifest, columns=["video_id"]).column("video_id").to_pylist())
        in_manifest = planted_ids & manifest_ids
        found = len(removed & in_manifest)
        s = dict(
            s, planted_in_manifest=len(in_manifest), planted_found=found, false_removals=len(removed - planted_ids)
        )
        return s, (
            f"{found}/{len(in_manifest)} planted copies in the manifest found and removed, "
            f"{s['false_removals']} other videos removed; {s['kept']} videos kept"
        )

    return run.st.run("dedupe", dedupe_stage)


def _card_stage(run: _Run) -> dict[str, Any]:
    """The dataset card of the cleaned manifest (weaksup card): what a hub would show of it."""
    from weaksup.assembly.card import CardConfig, write_card

    def card_stage():
        s = write_card(
            CardConfig(
                manifest=run.clean,
                out=run.out / "DATASET_CARD.md",
                fetched=run.fetched_dir / "fetched.parquet" if run.cfg.from_urls else None,
                dedupe_report=run.data / "overlaps.parquet",
                title="weaksup quickstart corpus",
            )
        )
        return s, f"{run.out / 'DATASET_CARD.md'} and its label plot"

    return run.st.run("card", card_stage)


def _pretrain_stage(run: _Run) -> dict[str, Any]:
    from weaksup.train.loop import pretrain

    pre_cfg = run.pre_cfg

    def pretrain_stage():
        s = pretrain(
            pre_cfg,
            manifest=run.clean,
            out=run.out / "pretrain",
            labels=run.labels,
            resume=run.resume,
            progress=run.cfg.progress,
        )
        return s, (
            f"{pre_cfg.arch}, {s['steps']} steps x {pre_cfg.batch_size} clips: loss {s['first_loss']:.3f} -> "
            f"{s['final_loss']:.3f} at {s['clips_per_s']:.0f} clips/s"
        )

    return run.st.run("pretrain", pretrain_stage)


def _fc_only_stages(run: _Run) -> tuple[dict[str, list[dict[str, int]]], dict[str, float]]:
    """Extract target features with the pre-trained and a random-init network, eval fc-only on each.

    Returns each arm's hits (one {video_id: 1/0} per seed, here one) and top-1.
    """
    hits: dict[str, list[dict[str, int]]] = {}
    top1: dict[str, float] = {}
    for name, ckpt in (("pre-trained", run.out / "pretrain"), ("random init", None)):
        v = _fc_only_arm(run, name, ckpt)
        hits[f"fc-only, {name}"], top1[f"fc-only, {name}"] = [v["hits"]], v["top1"]
    return hits, top1


def _fc_only_arm(run: _Run, name: str, ckpt: Path | None) -> dict[str, Any]:
    from weaksup.eval.extract import ExtractConfig, extract_features
    from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only

    cfg, pre_cfg, feats, evals = run.cfg, run.pre_cfg, run.feats, run.evals

    def extract_stage():
        tag = "pretrained" if ckpt else "random"
        for split in ("train", "test"):
            extract_features(
                run.target / f"{split}.parquet",
                feats / f"{tag}_{split}.parquet",
                checkpoint=ckpt,
                resume=run.resume,
                cfg=ExtractConfig(
                    arch=pre_cfg.arch,
                    num_clips=cfg.clips,
                    frames=pre_cfg.frames,
                    crop=pre_cfg.crop,
                    short_side=pre_cfg.short_side,
                    workers=cfg.workers,
                    progress=cfg.progress,
                    seed=cfg.seed,
                ),
            )
        r = eval_fc_only(
            feats / f"{tag}_train.parquet",
            feats / f"{tag}_test.parquet",
            evals / f"fc_only_{tag}",
            FcOnlyConfig(seed=cfg.seed),
        )
        value = {"top1": r["top1"], "hits": read_predictions(evals / f"fc_only_{tag}")}
        return value, (
            f"top-1 {100 * r['top1']:.1f}% (clip level {100 * r['clip_top1']:.1f}%), "
            f"penalty {r['protocol']['penalty']:g} ({r['protocol'].get('penalty_search_scheme', '')})"
        )

    return run.st.run(f"extract + eval fc-only ({name})", extract_stage)


def _finetune_stages(run: _Run) -> tuple[dict[str, list[dict[str, int]]], dict[str, float], list[int]]:
    """Fine-tune from the pre-trained network and from scratch, one stage per seed.

    Returns each arm's hits (one {video_id: 1/0} per seed), its top-1 averaged over seeds, and the seeds.
    """
    ft_seeds = [run.cfg.seed + k for k in range(run.cfg.finetune_seeds)]
    hits: dict[str, list[dict[str, int]]] = {}
    top1: dict[str, float] = {}
    for name, ckpt in (("pre-trained", run.out / "pretrain"), ("from scratch", None)):
        arm = f"fine-tune, {name}"
        hits[arm] = [_finetune_seed(run, name, ckpt, ft_seed)["hits"] for ft_seed in ft_seeds]
        top1[arm] = sum(sum(h.values()) / len(h) for h in hits[arm]) / len(hits[arm])
    return hits, top1, ft_seeds


def _finetune_seed(run: _Run, name: str, ckpt: Path | None, ft_seed: int) -> dict[str, Any]:
    from weaksup.eval.finetune import finetune

    cfg, target, evals = run.cfg, run.target, run.evals

    def finetune_stage():
        tag = ("pretrained" if ckpt else "scratch") + f"_s{ft_seed}"
        r = finetune(
            replace(cfg.finetune_config(ft_seed), arch=run.pre_cfg.arch),
            train_manifest=target / "train.parquet",
            test_manifest=target / "test.parquet",
            checkpoint=ckpt,
            out=evals / f"finetune_{tag}",
            num_clips=cfg.clips,
            resume=run.resume,
            progress=cfg.progress,
        )
        value = {"top1": r["top1"], "hits": read_predictions(evals / f"finetune_{tag}")}
        return value, (
            f"top-1 {100 * r['top1']:.1f}% (clip level {100 * r['clip_top1']:.1f}%), "
            f"{r['protocol']['steps']} steps, final train loss {r['protocol']['final_train_loss']:.3f}"
        )

    return run.st.run(f"eval finetune ({name}, seed {ft_seed})", finetune_stage)


def _report(
    run: _Run,
    corpus: dict[str, Any],
    deduped: dict[str, Any],
    pretrained: dict[str, Any],
    hits: dict[str, list[dict[str, int]]],
    top1: dict[str, float],
    ft_seeds: list[int],
    started: float,
) -> dict[str, Any]:
    """The run's report: each stage's line and seconds, the arms' top-1 and their comparisons with intervals."""
    cfg, st = run.cfg, run.st
    chance = 1.0 / corpus["target_classes"]
    comparisons = {
        "fc-only": _compare(
            hits["fc-only, pre-trained"],
            hits["fc-only, random init"],
            chance,
            cfg.seed,
            a="pre-trained",
            b="random init",
        ),
        "fine-tune": _compare(
            hits["fine-tune, pre-trained"],
            hits["fine-tune, from scratch"],
            chance,
            cfg.seed,
            a="pre-trained",
            b="from scratch",
        ),
    }
    return {
        "out": str(run.out),
        "stages": st.lines,
        "seconds": st.seconds,
        "reused_stages": st.reused,
        "target_top1": {k: round(v, 4) for k, v in top1.items()},
        "comparisons": comparisons,
        "chance": round(chance, 4),
        "planted_found": f"{deduped['planted_found']}/{deduped['planted_in_manifest']}",
        "pretrain_loss": [pretrained["first_loss"], pretrained["final_loss"]],
        "corpus": {
            k: corpus[k] for k in ("web_videos", "classes", "target_classes", "target_train", "target_test", "planted")
        },
        "clips": cfg.clips,
        "finetune_seeds": ft_seeds,
        "cpu": cpu_name(),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _compare(
    hits_a: list[dict[str, int]], hits_b: list[dict[str, int]], chance: float, seed: int, *, a: str, b: str
) -> dict[str, Any]:
    """Arm a vs arm b on the test videos both scored (seeds x videos), paired bootstrap."""
    videos = sorted(set.intersection(*(set(h) for h in hits_a + hits_b)))
    if not videos:
        raise ValueError("the two arms have no test video in common")
    ma, mb = list(hits_matrix(hits_a, videos)), list(hits_matrix(hits_b, videos))
    if len(ma) != len(mb):  # one pre-trained network, several random inits: repeat to pair seeds
        ma, mb = (ma * len(mb), mb) if len(ma) == 1 else (ma, mb * len(ma))
    result = compare_arms(ma, mb, seed=seed, chance=chance).to_dict()
    return {"arms": [a, b], **result}


def cpu_name() -> str:
    """The CPU model and whether it has AMX or AVX-512 BF16 (bf16 speed and results depend on it)."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    bf16 = "AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags else "no bf16 instructions"
    return f"{name} ({bf16})"


def report_tables(report: dict[str, Any]) -> list:
    """The one-screen summary: stages with their result and seconds, then pre-trained vs not, with intervals."""
    from rich.table import Table

    stages = Table(title=f"weaksup quickstart -> {report['out']} ({report['wall_s']:.0f} s)", title_justify="left")
    stages.add_column("stage", style="bold")
    stages.add_column("result")
    stages.add_column("s", justify="right")
    for name, line in report["stages"].items():
        reused = " (earlier run)" if name in report.get("reused_stages", ()) else ""
        stages.add_row(name, line + reused, f"{report['seconds'][name]:.0f}")
    corpus = report["corpus"]
    acc = Table(
        title=(
            f"target benchmark: video-level top-1 on {corpus['target_test']} test videos, {corpus['target_classes']} "
            f"classes (chance {100 * report['chance']:.1f}%), {report['clips']} centre clips per video; "
            "95% intervals by bootstrap over test videos and seeds"
        ),
        title_justify="left",
    )
    acc.add_column("protocol", style="bold")
    acc.add_column("with pre-training", justify="right")
    acc.add_column("without", justify="right")
    acc.add_column("gain (points)", justify="right")
    acc.add_column("seeds", justify="right")
    for protocol, label in (
        ("fc-only", "fc-only (frozen features + logistic regression)"),
        ("fine-tune", "full fine-tuning"),
    ):
        cmp = report["comparisons"][protocol]
        a, b, d = cmp["a"], cmp["b"], cmp["a_minus_b"]
        gain = f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
        style = "green" if d["low"] > 0 else "red" if d["high"] < 0 else "yellow"
        acc.add_row(
            label,
            f"{100 * a['mean']:.1f}% [{100 * a['low']:.1f}, {100 * a['high']:.1f}]",
            f"{100 * b['mean']:.1f}% [{100 * b['low']:.1f}, {100 * b['high']:.1f}] ({cmp['arms'][1]})",
            f"[{style}]{gain}[/{style}]",
            str(cmp["seeds"]),
        )
    acc.caption = f"CPU: {report.get('cpu', 'unknown')}"
    return [stages, acc]


def load_report(out: Path) -> dict[str, Any]:
    return json.loads((Path(out) / "report.json").read_text())
