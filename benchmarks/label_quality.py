"""Relevant-hashtag quality: hand-checked recall and wrong-tag rate, before and after #16.

A seeded sample (``random.Random(16)``: 60 Kinetics-400 labels, then 30 ImageNet-1K
synsets, then 30 VerbNet 3.3 verbs) was judged by hand in ``docs/labels_judged.json``:
per label the tags a practitioner expects (``expected``), and every other tag the
generator made, before or after, judged harmless (``ok``) or ``wrong`` (broken word,
wrong sense or lemma, absurd order, a tag that would mislabel other videos). ``before``
holds the tags of the generator at commit 853e564 (the union over the seed's aliases of
``relevant_hashtags(alias, pos=seed.pos, max_words=3)``), stored so no git is needed.
"after" is recomputed on every run: exactly what ``weaksup build-labels --source SRC``
gives the label now (defaults: --forms practical, --max-tags 64).

    python benchmarks/label_quality.py [--judged docs/labels_judged.json] [--nltk-data DIR]

Prints a markdown table (recall = expected tags generated / expected tags; wrong =
generated tags judged wrong / generated tags; both pooled over labels), any "after" tag
that is in none of the three lists (to be judged after a generator change), and an
appendix of labels missing expected tags or having wrong ones.

``--skeleton OUT --old-hashtags FILE`` writes an unjudged file for the same sample
(``git show 853e564:weaksup/labels/hashtags.py > FILE``) instead; it never overwrites.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "853e564"
SOURCES = (("kinetics400", "Kinetics-400", 60), ("imagenet", "ImageNet", 30), ("verbnet", "VerbNet 3.3", 30))
SEED = 16


def default_nltk_data() -> str:
    return os.environ.get("NLTK_DATA") or str(REPO.parent / "shared" / "data" / "nltk_data")


def check_nltk_data(path: str) -> None:
    root = Path(path)
    if not ((root / "corpora" / "verbnet3").is_dir() or (root / "corpora" / "verbnet3.zip").is_file()):
        sys.exit(
            f"label_quality: VerbNet 3.3 corpus not found in {root} (need corpora/verbnet3.zip); "
            "pass --nltk-data DIR or set NLTK_DATA"
        )


def sample(nltk_data: str) -> dict[str, list]:
    """The judged sample: one Random(16) drawing from the three sources in turn."""
    from weaksup.labels.sources import imagenet_labels, kinetics400_labels, named_labels

    rng = random.Random(SEED)
    return {
        "kinetics400": rng.sample(kinetics400_labels(), 60),
        "imagenet": rng.sample(imagenet_labels(), 30),
        "verbnet": rng.sample(named_labels("verbnet", verbnet_version="3.3", nltk_data=nltk_data), 30),
    }


def after_tags(seeds: dict[str, list], nltk_data: str) -> dict[tuple[str, str, str], tuple[str, list[str]]]:
    """(source, source_id, first alias) -> (label, hashtags) as `weaksup build-labels` writes them."""
    import pyarrow.parquet as pq

    from weaksup.errors import InputError
    from weaksup.labels.build import BuildLabelsConfig, build_labels

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for src, chosen in seeds.items():
            path = Path(tmp) / f"{src}.parquet"
            try:
                build_labels(BuildLabelsConfig(sources=(src,), out=path, nltk_data=nltk_data))
            except InputError as exc:
                sys.exit(f"label_quality: build-labels --source {src}: {str(exc).splitlines()[0]}")
            rows = pq.read_table(path, columns=["label", "source_id", "aliases", "hashtags"]).to_pylist()
            for seed in chosen:
                # merged spelling variants carry "id1; id2" and several aliases
                match = [
                    r
                    for r in rows
                    if seed.source_id in (r["source_id"] or "").split("; ") and seed.aliases[0] in r["aliases"]
                ]
                if len(match) != 1:
                    sys.exit(
                        f"label_quality: {src} {seed.source_id} {seed.label!r}: {len(match)} rows in "
                        f"build-labels' output"
                    )
                out[(src, seed.source_id, seed.aliases[0])] = (match[0]["label"], sorted(match[0]["hashtags"]))
    return out


def write_skeleton(out: Path, old_hashtags: Path, nltk_data: str) -> None:
    if out.exists():
        sys.exit(f"label_quality: {out} exists; not overwriting judged labels")
    spec = importlib.util.spec_from_file_location("hashtags_before", old_hashtags)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    seeds = sample(nltk_data)
    after = after_tags(seeds, nltk_data)
    rows = []
    for src, chosen in seeds.items():
        for s in chosen:
            before = set().union(*(old.relevant_hashtags(a, pos=s.pos, max_words=3) for a in s.aliases))
            rows.append(
                {
                    "source": src,
                    "source_id": s.source_id,
                    "label": after[(src, s.source_id, s.aliases[0])][0],
                    "expected": [],
                    "ok": [],
                    "wrong": [],
                    "before": sorted(before),
                }
            )
    out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(rows)} labels to judge")


def pct(n: int, d: int) -> str:
    return f"{n / d:.3f}" if d else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judged", type=Path, default=REPO / "docs" / "labels_judged.json")
    parser.add_argument("--nltk-data", default=default_nltk_data(), help="folder with corpora/verbnet3.zip")
    parser.add_argument("--skeleton", type=Path, help="write an unjudged file for the sample here instead")
    parser.add_argument("--old-hashtags", type=Path, help="with --skeleton: hashtags.py of the 'before' commit")
    args = parser.parse_args()
    check_nltk_data(args.nltk_data)
    if args.skeleton:
        if not args.old_hashtags:
            sys.exit("label_quality: --skeleton needs --old-hashtags FILE")
        write_skeleton(args.skeleton, args.old_hashtags, args.nltk_data)
        return
    if not args.judged.is_file():
        sys.exit(f"label_quality: {args.judged}: no such file")
    judged = json.loads(args.judged.read_text(encoding="utf-8"))

    from weaksup import __version__
    from weaksup.quickstart import cpu_name

    seeds = sample(args.nltk_data)
    after = after_tags(seeds, args.nltk_data)
    by_key = {(j["source"], j["source_id"], j["label"]): j for j in judged}
    stats: dict[str, dict[str, int]] = {}
    unjudged: list[tuple[str, list[str]]] = []
    appendix: list[str] = []
    for src, chosen in seeds.items():
        st = stats.setdefault(
            src,
            dict.fromkeys(
                ["labels", "expected", "hit_b", "hit_a", "gen_b", "gen_a", "wrong_b", "wrong_a", "unjudged"], 0
            ),
        )
        for s in chosen:
            label, tags_after = after[(src, s.source_id, s.aliases[0])]
            j = by_key.get((src, s.source_id, label))
            if j is None:
                sys.exit(
                    f"label_quality: {args.judged} has no entry for {src} {s.source_id} {label!r} "
                    "(the sample or the label names changed; make a new one with --skeleton)"
                )
            exp, ok, wrong = set(j["expected"]), set(j["ok"]), set(j["wrong"])
            before, now = set(j["before"]), set(tags_after)
            st["labels"] += 1
            st["expected"] += len(exp)
            st["hit_b"] += len(exp & before)
            st["hit_a"] += len(exp & now)
            st["gen_b"] += len(before)
            st["gen_a"] += len(now)
            st["wrong_b"] += len(wrong & before)
            st["wrong_a"] += len(wrong & now)
            new = sorted(now - exp - ok - wrong)
            st["unjudged"] += len(new)
            if new:
                unjudged.append((f"{label} ({src} {s.source_id})", new))
            missing, bad = sorted(exp - now), sorted(wrong & now)
            if missing or bad:
                appendix.append(
                    f"- {label} ({src}): recall {len(exp & now)}/{len(exp)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; wrong {', '.join(bad)}" if bad else "")
                )

    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    print(
        f"Relevant hashtags, hand-checked: before = generator at commit {BEFORE_COMMIT}, "
        f"after = `weaksup build-labels` now (weaksup {__version__}{', HEAD ' + head if head else ''}; "
        "--forms practical, --max-tags 64)"
    )
    print(f"Sample: random.Random({SEED}); {datetime.date.today().isoformat()}; CPU: {cpu_name()}")
    print()
    print(
        "| labels | recall before | recall after | wrong before | wrong after | tags/label before | tags/label "
        "after | unjudged after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total = dict.fromkeys(next(iter(stats.values())), 0)
    rows = []
    for src, name, _n in SOURCES:
        st = stats[src]
        for k in total:
            total[k] += st[k]
        rows.append((f"{name} ({st['labels']})", st))
    rows.append((f"all ({total['labels']})", total))
    for name, st in rows:
        print(
            f"| {name} | {pct(st['hit_b'], st['expected'])} | {pct(st['hit_a'], st['expected'])} "
            f"| {pct(st['wrong_b'], st['gen_b'])} | {pct(st['wrong_a'], st['gen_a'])} "
            f"| {st['gen_b'] / st['labels']:.1f} | {st['gen_a'] / st['labels']:.1f} | {st['unjudged']} |"
        )
    print()
    print(
        f"Expected tags: {total['expected']}; generated before {total['gen_b']} ({total['wrong_b']} wrong), "
        f"after {total['gen_a']} ({total['wrong_a']} wrong)."
    )
    if unjudged:
        print()
        print("Unjudged after-tags (judge them in the JSON):")
        for name, tags in unjudged:
            print(f"- {name}: {', '.join(tags)}")
    print()
    print(f"Labels with after-recall < 1 or wrong after-tags ({len(appendix)}):")
    print()
    print("\n".join(appendix) if appendix else "(none)")


if __name__ == "__main__":
    main()
