"""Finding 4: planted duplicates of target test videos inflate the target score; removing them lowers it.

The web corpus holds transformed copies of target test videos (planted.parquet). Pre-trains once on
the raw manifest (copies included) and once on the deduplicated one (same steps, same seed), then
evaluates fc-only on the target test set, overall and on the test videos that had a copy.
"""
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
import common as C
from weaksup.eval.fc_only import FcOnlyConfig, eval_fc_only

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
planted = pq.read_table(p["planted"])
in_manifest = set(pq.read_table(p["manifest"], columns=["video_id"]).column("video_id").to_pylist())
copied = sorted({tv for wv, tv in zip(planted.column("web_video_id").to_pylist(), planted.column("target_video_id").to_pylist())
                 if wv in in_manifest})
removed = C.rows(p["manifest"]) - C.rows(p["clean"])
res = {}
for name, man in (("with copies", p["manifest"]), ("deduplicated", p["clean"])):
    ckpt = a.out / (f"pretrain_clean_{a.steps}_s{a.seed}" if name == "deduplicated" else f"pretrain_raw_{a.steps}_s{a.seed}")
    C.pretrain(man, p["labels"], ckpt, a.steps, a.seed)
    fc = a.out / f"fc_{ckpt.name}"
    m = C.fc_only(p["target"], ckpt, fc, a.seed)
    test = pq.read_table(fc / "test_features.parquet")
    sub = fc / "copied_test_features.parquet"
    pq.write_table(test.filter(pc.is_in(test.column("video_id"), value_set=pa.array(copied))), sub)
    c = eval_fc_only(fc / "train_features.parquet", sub, fc / "copied", FcOnlyConfig(seed=a.seed))
    res[name] = {"top1": m["top1"], "copied_top1": c["top1"]}
C.save(a.out, f"contamination_s{a.seed}", {"copied_test_videos": copied, "removed": removed, "res": res, "wall": str(t)})
w, d = res["with copies"], res["deduplicated"]
print(f"| 4 dedupe lowers inflated score | contamination.py | {C.rows(p['manifest'])} web videos incl. copies of "
      f"{len(copied)} target test videos ({removed} removed by dedupe), {a.steps} steps, seed {a.seed} | fc-only top-1 with copies "
      f"{C.pct(w['top1'])} (on copied test videos {C.pct(w['copied_top1'])}) vs deduplicated {C.pct(d['top1'])} "
      f"({C.pct(d['copied_top1'])}) | {'yes' if w['copied_top1'] > d['copied_top1'] else 'no'} | {t} |")
