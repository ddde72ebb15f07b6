"""The learning sanity ladder, rungs (b)-(d), on CPU in minutes (rung (a) is tests/test_learning.py).

    python benchmarks/learning.py [--out DIR] [--seeds 0 1] [--steps 600] [--lr 0.01]

(b) a clean motion task (no tag noise, uniform classes, the action fills every video, one
    visual domain) is learnt: top-1 of the network's own classifier on held-out videos;
(c) pre-training on the noisy web corpus (the quickstart's) brings its loss well below
    chance (ln C) and below the entropy of the class prior (what predicting the class
    frequencies alone scores);
(d) features of that pre-trained network beat random-init features on held-out videos of
    the *pre-training* domain (fc-only, true labels, 95% intervals over videos and seeds).

Every rung uses the quickstart's recipe (``QuickstartConfig``): r2plus1d_10, 8 frames of
40x40, bf16, batch 16, SGD. Pass ``--lr 0.04`` to see the old recipe fail rung (b).
Prints one markdown table; the figures in benchmarks/README.md come from it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from weaksup.assembly.match import MatchConfig, match_videos
from weaksup.eval.compare import bootstrap_accuracy, compare_arms
from weaksup.eval.extract import ExtractConfig, extract_features
from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only
from weaksup.eval.report import read_predictions
from weaksup.labels.build import BuildLabelsConfig, build_labels
from weaksup.quickstart import QuickstartConfig, cpu_name
from weaksup.synth.corpus import DIAGONALS, SynthCorpusConfig, synth_corpus
from weaksup.tables import write_table
from weaksup.train.loop import pretrain


def corpus(root: Path, **kw) -> tuple[Path, Path, Path]:
    """Corpus + label space + manifest (cached in ``root``)."""
    c = root / "corpus"
    labels, manifest = root / "labels.parquet", root / "manifest.parquet"
    if not manifest.exists():
        synth_corpus(SynthCorpusConfig(out=c, workers=2, **kw), progress=False)
        build_labels(BuildLabelsConfig(sources=("file",), labels_file=c / "labels.txt", out=labels))
        match_videos(
            MatchConfig(videos=c / "videos.parquet", labels=labels, out=manifest, min_videos=1, seed=0, progress=False)
        )
    return c, labels, manifest


def split_by_truth(manifest: Path, truth: Path, out: Path, held_out: float, seed: int) -> tuple[Path, Path, Path]:
    """Hold out a share of the manifest's videos (true labels, not hashtags) in two halves.

    Returns (training manifest, held-out A, held-out B): A and B are the fc-only train and
    test sets of rung (d), labelled with the truth.
    """
    paths = out / "train.parquet", out / "heldout_a.parquet", out / "heldout_b.parquet"
    if all(p.exists() for p in paths):
        return paths
    m = pq.read_table(manifest)
    t = pq.read_table(truth, columns=["video_id", "label", "label_id"]).to_pylist()
    true = {r["video_id"]: r for r in t}
    rng = np.random.default_rng(seed)
    order = rng.permutation(m.num_rows)
    n_out = int(round(held_out * m.num_rows))
    train_rows, out_rows = np.sort(order[n_out:]), order[:n_out]
    write_table("manifest", m.take(pa.array(train_rows)), paths[0])
    for half, p in zip((out_rows[: n_out // 2], out_rows[n_out // 2 :]), paths[1:]):
        sub = m.take(pa.array(np.sort(half)))
        ids = sub.column("video_id").to_pylist()
        sub = sub.set_column(
            sub.column_names.index("label_id"), "label_id", pa.array([true[v]["label_id"] for v in ids], pa.int32())
        )
        sub = sub.set_column(sub.column_names.index("label"), "label", pa.array([true[v]["label"] for v in ids]))
        sub = sub.set_column(
            sub.column_names.index("matched_label_ids"),
            "matched_label_ids",
            pa.array([[true[v]["label_id"]] for v in ids], pa.list_(pa.int32())),
        )
        write_table("manifest", sub, p)
    return paths


def own_classifier_top1(net_dir: Path, test: Path, out: Path, clips: int) -> np.ndarray:
    """Per-video hits of the network's own classifier (10-clip protocol, scores averaged)."""
    feats = out / "scores.parquet"
    extract_features(test, feats, checkpoint=net_dir, cfg=ExtractConfig(num_clips=clips, scores=True, progress=False))
    t = pq.read_table(feats, columns=["status", "label_id", "scores"]).to_pylist()
    return np.array([int(np.argmax(r["scores"]) == r["label_id"]) for r in t if r["status"] == "ok"])


def loss_text(summary: dict) -> str:
    """'first -> final' of a run's summary (a resumed, finished run has no first loss)."""
    first, final = summary.get("first_loss"), summary.get("final_loss")
    return f"{first:.2f} -> {final:.2f}" if first is not None and final is not None else f"final {final}"


def prior_entropy(manifest: Path) -> float:
    counts = np.bincount(pq.read_table(manifest, columns=["label_id"]).column("label_id").to_numpy())
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/weaksup-learning"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument(
        "--steps", type=int, default=300, help="training steps of rung (b) (rung (c) uses the quickstart's)"
    )
    ap.add_argument(
        "--web-steps", type=int, default=600, help="training steps of rung (b'), the web classes made clean"
    )
    ap.add_argument("--lr", type=float, default=QuickstartConfig().pretrain_lr)
    ap.add_argument("--clips", type=int, default=4)
    a = ap.parse_args()
    qs = QuickstartConfig()
    recipe = replace(qs, pretrain_steps=a.steps, pretrain_lr=a.lr)
    rows: list[str] = []
    t_all = time.perf_counter()

    # (b) clean task: the quickstart target's four diagonal motions in one domain, no label noise,
    # 100 training and 50 test videos a class (the action fills every target video)
    root, hits, t0 = a.out / "clean_diagonals", [], time.perf_counter()
    if not (root / "target" / "test.parquet").exists():
        synth_corpus(
            SynthCorpusConfig(
                out=root,
                seed=1,
                n_videos=1,
                target_classes=DIAGONALS,
                n_target_train_per_class=100,
                n_target_test_per_class=50,
                n_planted=0,
                workers=2,
            ),
            progress=False,
        )
    for seed in a.seeds:
        run = root / f"run_s{seed}_lr{a.lr:g}_{a.steps}"
        s = pretrain(
            replace(recipe, seed=seed).pretrain_config(),
            manifest=root / "target" / "train.parquet",
            out=run,
            progress=False,
        )
        hits.append(own_classifier_top1(run, root / "target" / "test.parquet", run / "eval", a.clips))
        print(f"(b) seed {seed}: loss {loss_text(s)}, top-1 {hits[-1].mean():.3f}", flush=True)
    n = min(len(h) for h in hits)
    acc = bootstrap_accuracy(np.stack([h[:n] for h in hits]))
    rows.append(
        f"| (b) clean motion task: the target's {len(DIAGONALS)} diagonal motions, one domain, 400 training "
        f"videos, {a.steps} steps | held-out top-1 {acc.percent()} ({n} videos x {len(a.seeds)} seeds; chance "
        f"{100 / len(DIAGONALS):.1f}%) | >= 95% | {'pass' if acc.mean >= 0.95 else 'FAIL'} | "
        f"{time.perf_counter() - t0:.0f} |"
    )

    # (b') the web's six classes made clean: no tag noise, uniform classes, 2-6 s videos (the action fills them)
    web_recipe = replace(recipe, pretrain_steps=a.web_steps)
    c, labels, manifest = corpus(
        a.out / "clean",
        seed=1,
        n_videos=600,
        n_classes=qs.classes,
        n_target_train_per_class=0,
        n_target_test_per_class=0,
        n_planted=0,
        zipf_exponent=0.0,
        missing_tag_rate=0.0,
        wrong_tag_rate=0.0,
        second_label_rate=0.0,
        min_duration_s=2.0,
        max_duration_s=6.0,
    )
    hits, spin, t0 = [], [], time.perf_counter()
    for seed in a.seeds:
        train, held_a, held_b = split_by_truth(
            manifest, c / "truth.parquet", a.out / "clean" / f"split{seed}", 0.3, seed
        )
        test = pa.concat_tables([pq.read_table(held_a), pq.read_table(held_b)])
        write_table("manifest", test, a.out / "clean" / f"split{seed}" / "test.parquet")
        run = a.out / "clean" / f"run_s{seed}_lr{a.lr:g}_{a.web_steps}"
        s = pretrain(
            replace(web_recipe, seed=seed).pretrain_config(), manifest=train, out=run, labels=labels, progress=False
        )
        hits.append(own_classifier_top1(run, a.out / "clean" / f"split{seed}" / "test.parquet", run / "eval", a.clips))
        truth = pq.read_table(run / "eval" / "scores.parquet", columns=["status", "label"]).to_pylist()
        spin.append(np.array(["spinning" in r["label"] for r in truth if r["status"] == "ok"]))
        print(f"(b') seed {seed}: loss {loss_text(s)}, top-1 {hits[-1].mean():.3f}", flush=True)
    n = min(len(h) for h in hits)
    acc = bootstrap_accuracy(np.stack([h[:n] for h in hits]))
    h, sp = np.concatenate(hits), np.concatenate(spin)
    rows.append(
        f"| (b') the web's {qs.classes} classes made clean (information), {a.web_steps} steps | held-out top-1 "
        f"{acc.percent()} ({n} videos x {len(a.seeds)} seeds); translations {100 * h[~sp].mean():.1f}%, spinning "
        f"clockwise vs anticlockwise {bootstrap_accuracy(h[sp][None, :]).percent()} ({sp.sum()} videos; chance "
        f"between the two 50%) | - | "
        f"{'learnt' if h[sp].mean() >= 0.95 else 'spin direction not learnt'} | {time.perf_counter() - t0:.0f} |"
    )

    # (c) + (d): the quickstart's web corpus; 30% of its labelled videos held out for (d)
    c, labels, manifest = corpus(
        a.out / "web",
        seed=0,
        n_videos=qs.videos,
        n_classes=qs.classes,
        n_target_train_per_class=0,
        n_target_test_per_class=0,
        n_planted=0,
    )
    losses, hits_pre, hits_rand, t0 = [], [], [], time.perf_counter()
    chance, prior = math.log(qs.classes), prior_entropy(manifest)
    for seed in a.seeds:
        train, held_a, held_b = split_by_truth(manifest, c / "truth.parquet", a.out / "web" / f"split{seed}", 0.3, seed)
        run = a.out / "web" / f"run_s{seed}_lr{a.lr:g}"
        s = pretrain(
            replace(recipe, seed=seed, pretrain_steps=qs.pretrain_steps).pretrain_config(),
            manifest=train,
            out=run,
            labels=labels,
            progress=False,
        )
        tail = [float(r.split(",")[2]) for r in (run / "log.csv").read_text().splitlines()[1:]][-5:]
        losses.append(sum(tail) / len(tail))
        for net, hit_list, tag in ((run, hits_pre, "pre"), (None, hits_rand, "rand")):
            ev = run / f"fc_{tag}"
            for part, path in (("a", held_a), ("b", held_b)):
                extract_features(
                    path,
                    ev / f"{part}.parquet",
                    checkpoint=net,
                    cfg=ExtractConfig(
                        arch="r2plus1d_10",
                        num_clips=a.clips,
                        frames=8,
                        crop=40,
                        short_side=40,
                        progress=False,
                        seed=seed,
                    ),
                )
            eval_fc_only(ev / "a.parquet", ev / "b.parquet", ev, FcOnlyConfig(seed=seed))
            p = read_predictions(ev)
            hit_list.append([p[v] for v in sorted(p)])
        print(
            f"(c/d) seed {seed}: loss {loss_text(s)} (last 5 logs {losses[-1]:.2f}); fc-only pre "
            f"{np.mean(hits_pre[-1]):.3f} "
            f"rand {np.mean(hits_rand[-1]):.3f}",
            flush=True,
        )
    mean_loss = float(np.mean(losses))
    rows.append(
        f"| (c) web corpus (noisy tags, Zipf, partial actions), {qs.pretrain_steps} steps | final loss "
        f"{mean_loss:.2f} (mean of last 50 steps, {len(a.seeds)} seeds) vs chance ln {qs.classes} = {chance:.2f} "
        f"and class-prior entropy {prior:.2f} | well below both | "
        f"{'pass' if mean_loss < prior - 0.3 else 'FAIL'} | {time.perf_counter() - t0:.0f} |"
    )
    n = min(len(h) for h in hits_pre)
    cmp = compare_arms([h[:n] for h in hits_pre], [h[:n] for h in hits_rand], chance=1 / qs.classes)
    rows.append(
        f"| (d) fc-only on held-out web videos (true labels), pre-trained vs random init | "
        f"{cmp.a.percent()} vs {cmp.b.percent()}; difference {cmp.diff.percent(signed=True)} "
        f"({n} test videos x {len(a.seeds)} seeds) | difference > 0 | "
        f"{'pass' if cmp.diff.low > 0 else 'FAIL'} | (in c) |"
    )

    print(
        f"\nLearning ladder: lr {a.lr:g} at batch 16, seeds {a.seeds}; CPU: {cpu_name()}; "
        f"{time.perf_counter() - t_all:.0f} s in all\n"
    )
    print("| rung | measured | goal | result | s |\n|---|---|---|---|---:|")
    print(
        "| (a) one batch overfit (tests/test_learning.py, fp32 and bf16) | loss < 0.05 in 40 steps | near 0 | "
        "pass (CI) | |"
    )
    print("\n".join(rows))
    (a.out / f"ladder_lr{a.lr:g}.json").write_text(json.dumps({"rows": rows, "cpu": cpu_name()}, indent=1))


if __name__ == "__main__":
    main()
