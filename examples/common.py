"""Shared helpers of the toy-replication examples (see examples/README.md).

Every stage caches its output under the run folder (default ``/tmp/weaksup-examples``), so
scripts that share a corpus or a pre-trained network reuse it: the corpus, the manifests and
each pre-training run are keyed by their settings. Sizes follow ``weaksup.quickstart``'s
CPU-sized configs (r2plus1d_10, 8 frames at 40x40, bf16, loader in-process, no flips).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from weaksup.quickstart import QuickstartConfig

DEFAULT_OUT = Path("/tmp/weaksup-examples")
# One toy corpus for all findings: 4 motion classes with Zipf frequencies, 400 web videos,
# target benchmark 12 train / 10 test videos per class, 20 target test videos planted in the web corpus.
CORPUS = dict(seed=0, n_videos=400, n_classes=4, n_target_train_per_class=12, n_target_test_per_class=10, n_planted=20)
STEPS = 200  # pre-training steps of batch 16 (~1.5 min on 2 cores)
CLIPS = 4  # clips per video at extraction / evaluation (the paper uses 10; 4 to save time)


def args(doc: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="run/cache folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (same for every arm)")
    p.add_argument("--steps", type=int, default=STEPS, help="pre-training steps (default %(default)s)")
    p.add_argument("--ft-epochs", type=int, default=6, help="fine-tuning epochs on the target (default %(default)s)")
    return p.parse_args()


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __str__(self) -> str:
        return f"{time.perf_counter() - self.t0:.0f} s"


def corpus(out: Path, **over) -> dict[str, Path]:
    """Make (or reuse) the synthetic corpus, its label space, manifest and deduped manifest."""
    from weaksup.assembly.match import MatchConfig, match_videos
    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
    from weaksup.labels.build import BuildLabelsConfig, build_labels
    from weaksup.synth.corpus import SynthCorpusConfig, synth_corpus

    kw = dict(CORPUS, **over)
    root = Path(out) / ("corpus_" + "_".join(f"{v}" for v in kw.values()))
    c, d = root / "corpus", root / "data"
    paths = dict(root=root, corpus=c, target=c / "target", labels=d / "labels.parquet",
                 manifest=d / "manifest.parquet", clean=d / "clean.parquet", planted=c / "planted.parquet")
    if not paths["clean"].exists():
        synth_corpus(SynthCorpusConfig(out=c, workers=2, **kw), progress=False)
        build_labels(BuildLabelsConfig(sources=("file",), labels_file=c / "labels.txt", out=paths["labels"]))
        match_videos(MatchConfig(videos=c / "videos.parquet", labels=paths["labels"], out=paths["manifest"],
                                 min_videos=5, seed=kw["seed"], progress=False))
        dedupe_manifest(DedupeConfig(manifest=paths["manifest"], targets=c / "target" / "test.parquet", out=paths["clean"],
                                     report=d / "overlaps.parquet", workers=2, progress=False))
    return paths


def rows(manifest: Path) -> int:
    return pq.ParquetFile(manifest).metadata.num_rows


def label_counts(manifest: Path) -> dict[str, int]:
    from collections import Counter

    t = pq.read_table(manifest)
    col = "label" if "label" in t.column_names else t.column_names[1]
    return dict(Counter(map(str, t.column(col).to_pylist())))


def sample(manifest: Path, strategy: str, sizes: tuple[int, ...], out_dir: Path, seed: int = 0) -> dict[int, Path]:
    """Subsets of ``manifest`` (nested: each is a prefix of the strategy's draw order)."""
    from weaksup.assembly.sample import SampleConfig, sample_manifest

    out_dir = Path(out_dir)
    paths = {n: out_dir / f"{strategy}_{n}.parquet" for n in sizes}
    if not all(p.exists() for p in paths.values()):
        sample_manifest(SampleConfig(manifest=manifest, strategy=strategy, out=out_dir, sizes=tuple(sizes), series=True,
                                     seed=seed))
    return paths


def pretrain_cfg(steps: int, seed: int, **over):
    cfg = QuickstartConfig(seed=seed, pretrain_steps=steps).pretrain_config()
    return cfg.override(log_every=10, **over) if over else cfg.override(log_every=10)


def pretrain(manifest: Path, labels: Path, out: Path, steps: int, seed: int, **over) -> dict:
    """Pre-train (or reuse the run in ``out``); returns the summary."""
    from weaksup.train.loop import pretrain as _pretrain

    out = Path(out)
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    return _pretrain(pretrain_cfg(steps, seed, **over), manifest=manifest, out=out, labels=labels, resume=False,
                     progress=False)


def fc_only(target: Path, checkpoint: Path | None, out: Path, seed: int, arch: str = "r2plus1d_10") -> dict:
    """Frozen features of the target (train, test) + logistic regression; returns metrics (+ per_class)."""
    from weaksup.eval.extract import ExtractConfig, extract_features
    from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only

    out = Path(out)
    if not (out / "metrics.json").exists():
        for split in ("train", "test"):
            extract_features(Path(target) / f"{split}.parquet", out / f"{split}_features.parquet", checkpoint=checkpoint,
                             cfg=ExtractConfig(arch=arch, num_clips=CLIPS, frames=8, crop=40, short_side=40, workers=2,
                                               progress=False, seed=seed))
        eval_fc_only(out / "train_features.parquet", out / "test_features.parquet", out, FcOnlyConfig(seed=seed))
    m = json.loads((out / "metrics.json").read_text())
    m["per_class"] = per_class(out / "per_class.csv")
    return m


def finetune(target: Path, checkpoint: Path | None, out: Path, seed: int, epochs: int = 6, **over) -> dict:
    from weaksup.eval.finetune import finetune as _finetune

    out = Path(out)
    if (out / "metrics.json").exists():
        return json.loads((out / "metrics.json").read_text())
    cfg = QuickstartConfig(seed=seed, finetune_epochs=epochs).finetune_config()
    cfg = replace(cfg, arch=over.pop("arch", "r2plus1d_10"), **over)
    return _finetune(cfg, train_manifest=Path(target) / "train.parquet", test_manifest=Path(target) / "test.parquet",
                     checkpoint=checkpoint, out=out, num_clips=CLIPS, resume=False, progress=False)


def per_class(path: Path) -> dict[str, float]:
    """Video-level top-1 per class from an eval report's per_class.csv."""
    with open(path) as f:
        rd = list(csv.DictReader(f))
    key = next(k for k in rd[0] if "top1" in k or "acc" in k or "recall" in k)
    name = next(k for k in rd[0] if k in ("class", "name", "label"))
    return {r[name]: float(r[key]) for r in rd}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def save(out: Path, name: str, result: dict) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
