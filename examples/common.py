"""Shared helpers of the toy replication (see examples/README.md).

One corpus for every finding, the quickstart's design scaled for statistics: 600 web videos
of 6 motion classes (Zipf frequencies, noisy hashtags, actions only in a window of long
videos), a target benchmark of 4 *other* classes (diagonal motions) in another visual
domain with 10 training and 75 test videos per class (300 test videos), and 60 of those
test videos planted, transformed, in the web corpus (and found by ``dedupe``). A second,
balanced corpus of the web classes is the test bed in the pre-training domain (finding 3
evaluates tail classes there).

Every arm runs with several seeds (``--seeds``, default 0 1 2); each result is a (seeds x
test videos) matrix of hits, and every comparison is a paired bootstrap over test videos
and seeds (:mod:`weaksup.eval.compare`): "reproduced" means the 95% interval of the
difference excludes 0 in the paper's direction. Stages cache under ``--out`` (default
``/tmp/weaksup-examples``), keyed by their settings, so scripts share pre-training runs.
Recipe: the quickstart's (r2plus1d_10, 8 frames of 40x40, bf16, batch 16, LR 0.01, 500
steps; fine-tuning 15 epochs at LR 0.005, backbone at 0.1x), 4 centre clips per test video.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.eval.compare import Comparison, compare_arms, hits_matrix
from weaksup.eval.report import read_predictions
from weaksup.quickstart import QuickstartConfig, cpu_name
from weaksup.synth.corpus import DIAGONALS
from weaksup.tables import write_table

DEFAULT_OUT = Path("/tmp/weaksup-examples")
HERE = Path(__file__).parent
CORPUS = dict(
    seed=0,
    n_videos=600,
    n_classes=6,
    n_target_train_per_class=10,
    n_target_test_per_class=75,
    n_planted=60,
    target_classes=DIAGONALS,
)
STEPS = 500
CLIPS = 4
CHANCE = 1 / len(DIAGONALS)


def args(doc: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="run/cache folder (default %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of every arm")
    p.add_argument("--steps", type=int, default=STEPS, help="pre-training steps (default %(default)s)")
    return p.parse_args()


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def __str__(self) -> str:
        return f"{self.seconds:.0f} s"


def corpus(
    out: Path, web_videos: int = CORPUS["n_videos"], whole_action: bool = False, shot_length_s: float = 0.0
) -> dict[str, Path]:
    """The corpus, its label space, the raw and deduplicated manifests and a web-domain test bed (cached).

    ``web_videos``: the same design with more (or fewer) web videos, in its own folder; the
    target benchmark is the same (it depends on the seed and target settings only).
    ``whole_action``: every web video shows its action from start to end (by default videos
    longer than 8 s show it in a window of 25-75% of their length), in its own folder.
    ``shot_length_s``: web videos longer than this are cut into shots of about this length,
    each a new scene showing the action throughout (``SynthCorpusConfig.shot_length_s``).

    ``web_a``/``web_b``: a second, independent corpus of the same web classes in the web
    domain, balanced (100 videos a class), clean and short, labelled by the truth, split in
    halves: the fc-only train and test sets of finding 3 (tail classes of the pre-training
    label space).
    """
    from weaksup.synth.corpus import SynthCorpusConfig, synth_corpus

    root = Path(out) / (
        "corpus_v2"
        + ("" if web_videos == CORPUS["n_videos"] else f"_{web_videos}web")
        + ("_wholeaction" if whole_action else "")
        + (f"_shots{shot_length_s:g}s" if shot_length_s else "")
    )
    c, d = root / "corpus", root / "data"
    paths = dict(
        root=root,
        corpus=c,
        target=c / "target",
        labels=d / "labels.parquet",
        truth=c / "truth.parquet",
        manifest=d / "manifest.parquet",
        clean=d / "clean.parquet",
        planted=c / "planted.parquet",
        web_a=d / "web_a.parquet",
        web_b=d / "web_b.parquet",
    )
    paths["pool"], paths["raw_pool"] = paths["clean"], paths["manifest"]
    if not paths["web_b"].exists():
        variant = dict(shot_length_s=shot_length_s)
        if whole_action:
            variant["partial_action_after_s"] = SynthCorpusConfig.max_duration_s
        synth_corpus(
            SynthCorpusConfig(out=c, workers=2, **dict(CORPUS, n_videos=web_videos), **variant), progress=False
        )
        _label_match_dedupe(
            c / "labels.txt",
            c / "videos.parquet",
            paths["target"],
            paths["labels"],
            paths["manifest"],
            paths["clean"],
            d / "overlaps.parquet",
        )
        web = root / "web_test"
        synth_corpus(
            SynthCorpusConfig(
                out=web,
                seed=7,
                n_videos=600,
                n_classes=CORPUS["n_classes"],
                zipf_exponent=0.0,
                missing_tag_rate=0.0,
                wrong_tag_rate=0.0,
                second_label_rate=0.0,
                min_duration_s=2.0,
                max_duration_s=8.0,
                n_target_train_per_class=0,
                n_target_test_per_class=0,
                n_planted=0,
                workers=2,
            ),
            progress=False,
        )
        _truth_halves(web / "truth.parquet", paths["web_a"], paths["web_b"])
    return paths


def corpus_posted_as_shown(out: Path) -> dict[str, Path]:
    """The corpus with each planted copy posted under the hashtag of its own target class (cached).

    The paper's contamination: Kinetics test videos on Instagram carry the hashtag of the
    action they show, and IG-Kinetics's label space contains Kinetics's. Here the same video
    files as :func:`corpus`; only the copies' class tags change (their other tags stay), and
    the label space is the web classes plus the 4 target classes. ``raw_pool`` is the match
    of that table (copies kept), ``pool`` its deduplicated version.
    """
    from weaksup.labels.hashtags import normalize_hashtag, relevant_hashtags

    base = corpus(out)
    root = base["root"] / "posted_as_shown"
    paths = dict(
        base, root=root, labels=root / "labels.parquet", raw_pool=root / "manifest.parquet", pool=root / "clean.parquet"
    )
    if paths["pool"].exists():
        return paths
    root.mkdir(parents=True, exist_ok=True)
    web_names = (base["corpus"] / "labels.txt").read_text().split("\n")
    web_names = [n for n in web_names if n.strip()]
    class_tags = {t for n in web_names for t in relevant_hashtags(n)}
    target = {r["video_id"]: r["label"] for r in pq.read_table(base["target"] / "test.parquet").to_pylist()}
    shown_as = {r["web_video_id"]: target[r["target_video_id"]] for r in pq.read_table(base["planted"]).to_pylist()}
    videos = pq.read_table(base["corpus"] / "videos.parquet")
    tags = [
        [name.replace(" ", "")] + [t for t in old if normalize_hashtag(t) not in class_tags] if name else old
        for name, old in zip(
            (shown_as.get(v) for v in videos.column("video_id").to_pylist()), videos.column("hashtags").to_pylist()
        )
    ]
    videos = videos.set_column(
        videos.schema.get_field_index("hashtags"), "hashtags", pa.array(tags, videos.schema.field("hashtags").type)
    )
    write_table("videos", videos, root / "videos.parquet")
    (root / "labels.txt").write_text("\n".join(web_names + list(DIAGONALS)) + "\n")
    _label_match_dedupe(
        root / "labels.txt",
        root / "videos.parquet",
        base["target"],
        paths["labels"],
        paths["raw_pool"],
        paths["pool"],
        root / "overlaps.parquet",
    )
    return paths


def _label_match_dedupe(
    labels_txt: Path, videos: Path, target: Path, labels: Path, manifest: Path, clean: Path, report: Path
) -> None:
    """The corpus's pool: its label space, the match (min 10 videos a label) and the match
    deduplicated against the target's test videos."""
    from weaksup.assembly.match import MatchConfig, match_videos
    from weaksup.dedupe.dedupe import DedupeConfig, dedupe_manifest
    from weaksup.labels.build import BuildLabelsConfig, build_labels

    build_labels(BuildLabelsConfig(sources=("file",), labels_file=labels_txt, out=labels))
    match_videos(MatchConfig(videos=videos, labels=labels, out=manifest, min_videos=10, seed=0, progress=False))
    dedupe_manifest(
        DedupeConfig(
            manifest=manifest, targets=target / "test.parquet", out=clean, report=report, workers=2, progress=False
        )
    )


def _truth_halves(truth: Path, first: Path, second: Path) -> None:
    """A truth table as two manifests (alternate videos of each class), labelled by the truth."""
    t = pq.read_table(truth).to_pylist()
    seen: dict[int, int] = {}
    halves: tuple[list, list] = ([], [])
    for r in t:
        k = seen.get(r["label_id"], 0)
        seen[r["label_id"]] = k + 1
        halves[k % 2].append(r)
    for rs, path in zip(halves, (first, second)):
        write_table(
            "manifest",
            {
                "video_id": [r["video_id"] for r in rs],
                "uri": [r["uri"] for r in rs],
                "label_id": pa.array([r["label_id"] for r in rs], pa.int32()),
                "label": [r["label"] for r in rs],
                "matched_label_ids": pa.array([[r["label_id"]] for r in rs], pa.list_(pa.int32())),
                "duration_s": [r["duration_s"] for r in rs],
            },
            path,
        )


def rows(manifest: Path) -> int:
    return pq.ParquetFile(manifest).metadata.num_rows


def label_counts(manifest: Path) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(map(str, pq.read_table(manifest, columns=["label"]).column("label").to_pylist())))


def sample(manifest: Path, strategy: str, sizes: tuple[int, ...], out_dir: Path, seed: int = 0) -> dict[int, Path]:
    """Subsets of ``manifest`` (nested: each is a prefix of the strategy's draw order)."""
    from weaksup.assembly.sample import SampleConfig, sample_manifest

    out_dir = Path(out_dir)
    paths = {n: out_dir / f"{strategy}_{n}.parquet" for n in sizes}
    if not all(p.exists() for p in paths.values()):
        sample_manifest(
            SampleConfig(manifest=manifest, strategy=strategy, out=out_dir, sizes=tuple(sizes), series=True, seed=seed)
        )
    return paths


def pretrain(manifest: Path, labels: Path, out: Path, steps: int, seed: int, **over: Any) -> dict:
    """Pre-train with the quickstart's recipe (or reuse the finished run in ``out``); returns the summary."""
    from weaksup.train.loop import pretrain as _pretrain

    out = Path(out)
    if (out / "summary.json").exists():
        return json.loads((out / "summary.json").read_text())
    cfg = QuickstartConfig(seed=seed, pretrain_steps=steps).pretrain_config().override(**over)
    return _pretrain(cfg, manifest=manifest, out=out, labels=labels, resume=True, progress=False)


def fc_only(
    train: Path, test: Path, checkpoint: Path | None, out: Path, seed: int, arch: str = "r2plus1d_10", frames: int = 8
) -> dict[str, int]:
    """Frozen features + logistic regression; returns {test video_id: 1 if right}."""
    from weaksup.eval.extract import ExtractConfig, extract_features
    from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only

    out = Path(out)
    if not (out / "predictions.csv").exists():
        for name, path in (("train", train), ("test", test)):
            extract_features(
                path,
                out / f"{name}_features.parquet",
                checkpoint=checkpoint,
                cfg=ExtractConfig(
                    arch=arch,
                    num_clips=CLIPS,
                    frames=frames,
                    crop=40,
                    short_side=40,
                    workers=1,
                    progress=False,
                    seed=seed,
                ),
            )
        eval_fc_only(out / "train_features.parquet", out / "test_features.parquet", out, FcOnlyConfig(seed=seed))
    return read_predictions(out)


def fc_only_target(paths: dict[str, Path], checkpoint: Path | None, out: Path, seed: int, **kw: Any) -> dict[str, int]:
    return fc_only(paths["target"] / "train.parquet", paths["target"] / "test.parquet", checkpoint, out, seed, **kw)


def finetune(paths: dict[str, Path], checkpoint: Path | None, out: Path, seed: int, **over: Any) -> dict[str, int]:
    """Fine-tune on the target's train set (quickstart's recipe); returns {test video_id: 1 if right}."""
    from weaksup.eval.finetune import finetune as _finetune

    out = Path(out)
    if not (out / "predictions.csv").exists():
        cfg = QuickstartConfig().finetune_config(seed)
        cfg = replace(cfg, arch=over.pop("arch", "r2plus1d_10"), **over)
        _finetune(
            cfg,
            train_manifest=paths["target"] / "train.parquet",
            test_manifest=paths["target"] / "test.parquet",
            checkpoint=checkpoint,
            out=out,
            num_clips=CLIPS,
            resume=True,
            progress=False,
        )
    return read_predictions(out)


def compare(
    a: list[dict[str, int]], b: list[dict[str, int]], videos: list[str] | None = None, chance: float | None = CHANCE
) -> Comparison:
    common = videos if videos is not None else sorted(set.intersection(*(set(h) for h in a + b)))
    return compare_arms(hits_matrix(a, common), hits_matrix(b, common), chance=chance)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def verdict(cmp: Comparison, direction: int = 1) -> str:
    """'yes' when the interval of the difference excludes 0 in the expected direction."""
    if (cmp.diff.low > 0 and direction > 0) or (cmp.diff.high < 0 and direction < 0):
        return "**yes**"
    if cmp.diff.excludes_zero():
        return "**no** (opposite direction)"
    return "no (interval includes 0)"


def save(out: Path, name: str, result: dict) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    result = dict(result, cpu=cpu_name())
    (Path(out) / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
