"""Training and extraction beside another CPU-bound process: thread policies compared.

    python benchmarks/contention.py [--out DIR] [--steps 80]

On a machine whose cores another job also uses, a torch process with one OpenMP thread
per core waits at every op's barrier for the thread whose core the neighbour holds. This
runs the quickstart's pre-training recipe (real ``pretrain``: clips decoded in-process,
r2plus1d_10, 8 frames of 40x40, bf16, batch 16) and the fc-only feature extraction, each
alone and beside a neighbour, under four thread policies:

* ``fixed N``: ``--threads N`` (N = all cores was weaksup's behaviour before);
* ``passive``: all cores with ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at barriers);
* ``adaptive``: ``--threads 0``, the default (:mod:`weaksup.threads`).

Neighbours: ``torch`` = another process multiplying matrices with torch's default threads
(what a second training or extraction job does), ``spin`` = a pure-Python loop (one core).
Each cell is one child process so environment variables take effect; the table gives
clips/s and the slow-down against the same policy alone. The goal: adaptive beside a
neighbour at most ~2-2.5x slower than alone (half the cores are gone, so 2x is the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NEIGHBOURS = {
    "torch": "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a = torch.tanh(a @ a * 1e-3)\n",
    "spin": "x = 0\nwhile True:\n    x += 1\n",
}


def child(kind: str, out: Path, threads: int, steps: int) -> None:
    """Runs in the child process: one measurement, printed as JSON."""
    from weaksup.eval.extract import ExtractConfig, extract_features
    from weaksup.quickstart import QuickstartConfig
    from weaksup.train.loop import pretrain

    corpus = out / "corpus"
    tag = f"{kind}_{threads}_{os.getpid()}"
    if kind == "train":
        cfg = (
            QuickstartConfig(pretrain_steps=steps)
            .pretrain_config()
            .override(threads=threads, checkpoint_every=10_000, log_every=10)
        )
        s = pretrain(
            cfg,
            manifest=corpus / "manifest.parquet",
            out=out / "runs" / tag,
            labels=corpus / "labels.parquet",
            resume=False,
            progress=False,
        )
        print(json.dumps({"clips_per_s": s["clips_per_s"], "threads": s["cpu_threads"]}))
    else:
        r = extract_features(
            corpus / "corpus" / "target" / "test.parquet",
            out / "runs" / f"{tag}.parquet",
            checkpoint=None,
            cfg=ExtractConfig(
                arch="r2plus1d_10",
                num_clips=4,
                frames=8,
                crop=40,
                short_side=40,
                workers=2,
                threads=threads,
                progress=False,
            ),
        )
        print(json.dumps({"clips_per_s": r["clips_per_s"]}))


def make_corpus(out: Path) -> None:
    from weaksup.assembly.match import MatchConfig, match_videos
    from weaksup.labels.build import BuildLabelsConfig, build_labels
    from weaksup.synth.corpus import DIAGONALS, SynthCorpusConfig, synth_corpus

    c = out / "corpus"
    if (c / "manifest.parquet").exists():
        return
    synth_corpus(
        SynthCorpusConfig(
            out=c / "corpus",
            seed=0,
            n_videos=300,
            n_classes=6,
            n_target_train_per_class=0,
            n_target_test_per_class=40,
            n_planted=0,
            target_classes=DIAGONALS,
        ),
        progress=False,
    )
    build_labels(
        BuildLabelsConfig(sources=("file",), labels_file=c / "corpus" / "labels.txt", out=c / "labels.parquet")
    )
    match_videos(
        MatchConfig(
            videos=c / "corpus" / "videos.parquet",
            labels=c / "labels.parquet",
            out=c / "manifest.parquet",
            min_videos=5,
            progress=False,
        )
    )


def measure(kind: str, out: Path, policy: str, neighbour: str | None, steps: int) -> dict:
    cores = len(os.sched_getaffinity(0))
    env = dict(os.environ)
    threads = {"fixed-all": cores, "fixed-1": 1, "passive": cores, "adaptive": 0}[policy]
    if policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    busy = None
    if neighbour:
        busy = subprocess.Popen([sys.executable, "-c", NEIGHBOURS[neighbour]], stdout=subprocess.DEVNULL)
        time.sleep(2)
    try:
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                kind,
                "--out",
                str(out),
                "--threads",
                str(threads),
                "--steps",
                str(steps),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if busy:
            busy.kill()
            busy.wait()
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/weaksup-contention"))
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--child", choices=["train", "extract"])
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.out, a.threads, a.steps)
        return
    from weaksup.quickstart import cpu_name

    make_corpus(a.out)
    policies = ["fixed-all", "passive", "fixed-1", "adaptive"]
    print(f"CPU: {cpu_name()}, {len(os.sched_getaffinity(0))} cores; training {a.steps} steps per cell\n")
    print("| job | policy | alone clips/s | beside `torch` clips/s (slow-down) | beside `spin` clips/s (slow-down) |")
    print("|---|---|---:|---:|---:|")
    for kind in ("train", "extract"):
        for policy in policies:
            alone = measure(kind, a.out, policy, None, a.steps)
            cells = [f"{alone['clips_per_s']:.1f}"]
            for neighbour in ("torch", "spin"):
                if neighbour == "spin" and policy not in ("fixed-all", "adaptive"):
                    cells.append("")
                    continue
                busy = measure(kind, a.out, policy, neighbour, a.steps)
                cells.append(f"{busy['clips_per_s']:.1f} ({alone['clips_per_s'] / busy['clips_per_s']:.1f}x)")
            print(f"| {kind} | {policy} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
