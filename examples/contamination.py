"""Finding 4: copies of test videos in the pre-training data inflate the score; `dedupe` removes the inflation.

60 of the 300 target test videos are planted, transformed (rescaled, re-encoded, flipped,
cropped, recoloured, trimmed, embedded), among the web videos, posted under the hashtag of the
target class they show, in a label space that holds the target's classes (as Kinetics test
videos sit on Instagram under their action's hashtag, inside IG-Kinetics's label space;
``common.corpus_posted_as_shown``). For each seed the same recipe pre-trains on the raw
manifest (copies kept) and on the deduplicated one; fc-only on the target then scores the
copied test videos and the others separately. Inflation = raw minus deduplicated on the
copied videos (paired bootstrap over those videos and seeds); the other videos are the control.
"""
import sys
from pathlib import Path

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
hits = {"raw": [], "clean": []}
for seed in a.seeds:
    for name, man in (("raw", p["raw_pool"]), ("clean", p["pool"])):
        ckpt = a.out / f"pretrain_posted_{name}_{a.steps}_s{seed}"
        C.pretrain(man, p["labels"], ckpt, a.steps, seed)
        hits[name].append(C.fc_only_target(p, ckpt, ckpt / "fc_target", seed))
others = sorted(set(hits["raw"][0]) - set(copied))
on_copies = C.compare(hits["raw"], hits["clean"], copied)
on_others = C.compare(hits["raw"], hits["clean"], others)
C.save(a.out, "contamination", {"copied_test_videos": len(copied), "removed_by_dedupe": removed, "seeds": a.seeds,
                                "on_copies": on_copies.to_dict(), "on_others": on_others.to_dict(),
                                "seconds": round(t.seconds)})
print(f"| 4. copies inflate, dedupe removes it | `contamination.py` | {len(copied)} copied test videos in the raw "
      f"manifest, posted under their own class, {removed} videos removed by dedupe, seeds {a.seeds} | on the copied videos raw {on_copies.a.percent()} vs "
      f"deduplicated {on_copies.b.percent()}: {on_copies.diff.percent(True)}; on the other {len(others)}: "
      f"{on_others.diff.percent(True)} | {C.verdict(on_copies)} | {t} |")
