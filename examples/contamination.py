"""Finding 4: copies of test videos in the pre-training data inflate the score; `dedupe` removes the inflation.

60 of the 300 target test videos are planted, transformed (rescaled, re-encoded, flipped,
cropped, recoloured, trimmed, embedded), among the web videos, posted under the hashtag of the
target class they show, in a label space that holds the target's classes (as Kinetics test
videos sit on Instagram under their action's hashtag, inside IG-Kinetics's label space;
``common.corpus_posted_as_shown``). For each seed the same recipe pre-trains on the raw
manifest (copies kept) and on the deduplicated one; fc-only on the target then scores the
copied test videos and the others separately. Inflation = raw minus deduplicated on the
copied videos (paired bootstrap over those videos and seeds); the other videos are the control.
A second row reads the pre-trained classifier itself (its four target-class outputs, argmax,
4 centre clips): what a network memorised of the copies shows there first, before any
transfer protocol.
"""

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus_posted_as_shown(a.out)
raw_ids = set(pq.read_table(p["raw_pool"], columns=["video_id"]).column("video_id").to_pylist())
planted = pq.read_table(p["planted"]).to_pylist()
copied = sorted({r["target_video_id"] for r in planted if r["web_video_id"] in raw_ids})
removed = len(raw_ids) - C.rows(p["pool"])
names = pq.read_table(p["labels"], columns=["label"]).column("label").to_pylist()
target_ids = [names.index(c) for c in C.DIAGONALS]  # the target's classes in the pre-training label space


def head_hits(ckpt, seed):
    """{test video: 1 if the pre-trained classifier's best target class is its class}."""
    from weaksup.eval.extract import ExtractConfig, extract_features
    from weaksup.eval.network import resolve_checkpoint

    out = ckpt / "head_target" / "test_scores.parquet"
    if not out.exists():
        extract_features(
            p["target"] / "test.parquet",
            out,
            checkpoint=resolve_checkpoint(ckpt),
            cfg=ExtractConfig(
                arch="r2plus1d_10",
                num_clips=C.CLIPS,
                frames=8,
                crop=40,
                short_side=40,
                workers=1,
                progress=False,
                seed=seed,
                scores=True,
            ),
        )
    t = pq.read_table(out, columns=["video_id", "label", "scores"]).to_pylist()
    return {
        r["video_id"]: int(C.DIAGONALS[int(np.argmax(np.asarray(r["scores"])[target_ids]))] == r["label"]) for r in t
    }


hits = {"raw": [], "clean": []}
head = {"raw": [], "clean": []}
for seed in a.seeds:
    for name, man in (("raw", p["raw_pool"]), ("clean", p["pool"])):
        ckpt = a.out / f"pretrain_posted_{name}_{a.steps}_s{seed}"
        C.pretrain(man, p["labels"], ckpt, a.steps, seed)
        hits[name].append(C.fc_only_target(p, ckpt, ckpt / "fc_target", seed))
        head[name].append(head_hits(ckpt, seed))
others = sorted(set(hits["raw"][0]) - set(copied))
on_copies = C.compare(hits["raw"], hits["clean"], copied)
on_others = C.compare(hits["raw"], hits["clean"], others)
head_copies = C.compare(head["raw"], head["clean"], copied)
head_others = C.compare(head["raw"], head["clean"], others)
C.save(
    a.out,
    "contamination",
    {
        "copied_test_videos": len(copied),
        "removed_by_dedupe": removed,
        "seeds": a.seeds,
        "on_copies": on_copies.to_dict(),
        "on_others": on_others.to_dict(),
        "head_on_copies": head_copies.to_dict(),
        "head_on_others": head_others.to_dict(),
        "seconds": round(t.seconds),
    },
)
print(
    f"| 4. copies inflate, dedupe removes it | `contamination.py` | {len(copied)} copied test videos in the raw "
    f"manifest, posted under their own class, {removed} videos removed by dedupe, seeds {a.seeds} | on the copied "
    f"videos raw {on_copies.a.percent()} vs "
    f"deduplicated {on_copies.b.percent()}: {on_copies.diff.percent(True)}; on the other {len(others)}: "
    f"{on_others.diff.percent(True)} | {C.verdict(on_copies)} | {t} |"
)
print(
    f"| 4. copies inflate, dedupe removes it (pre-trained classifier) | `contamination.py` | same networks, their own "
    f"outputs for the 4 target classes | on the copied videos raw {head_copies.a.percent()} vs deduplicated "
    f"{head_copies.b.percent()}: {head_copies.diff.percent(True)}; on the other {len(others)}: "
    f"{head_others.diff.percent(True)} | {C.verdict(head_copies)} | (above) |"
)
