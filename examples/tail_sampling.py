"""Finding 3: square-root and tail-preserving sampling help the tail classes (vs a random subset of equal size).

Each strategy draws N/2 videos from the deduplicated web manifest (Zipf class frequencies);
every arm pre-trains for the same steps. Tail classes are the two rarest labels of the
manifest; they are scored in the pre-training label space, as the paper's Kinetics target
shares IG-Kinetics' labels: fc-only on a balanced, independent web-domain test bed (300
training / 300 test videos), top-1 on its tail-class test videos. Intervals: paired
bootstrap over those test videos and seeds.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
n = C.rows(p["pool"])
counts = C.label_counts(p["pool"])
tail = sorted(counts, key=counts.get)[:2]
import pyarrow.parquet as pq

test = pq.read_table(p["web_b"], columns=["video_id", "label"]).to_pylist()
tail_videos = sorted(r["video_id"] for r in test if r["label"] in tail)
hits = {s: [] for s in ("random", "sqrt", "tail-preserving")}
drawn = {}
for strategy in hits:
    sizes = (n // 8, n // 4, n // 2) if strategy == "random" else (n // 2,)
    man = C.sample(p["pool"], strategy, sizes, a.out / f"subsets_{strategy}")[n // 2]
    drawn[strategy] = sum(C.label_counts(man).get(c, 0) for c in tail)
    for seed in a.seeds:
        ckpt = a.out / f"pretrain_{strategy}{n // 2}_{a.steps}_s{seed}"
        C.pretrain(man, p["labels"], ckpt, a.steps, seed)
        hits[strategy].append(C.fc_only(p["web_a"], p["web_b"], ckpt, ckpt / "fc_web", seed))
sq = C.compare(hits["sqrt"], hits["random"], tail_videos, chance=1 / len(counts))
tp = C.compare(hits["tail-preserving"], hits["random"], tail_videos, chance=1 / len(counts))
allv = C.compare(hits["tail-preserving"], hits["random"], chance=1 / len(counts))
C.save(
    a.out,
    "tail_sampling",
    {
        "tail": tail,
        "counts": counts,
        "tail_videos_drawn": drawn,
        "seeds": a.seeds,
        "sqrt_vs_random_tail": sq.to_dict(),
        "tailpres_vs_random_tail": tp.to_dict(),
        "tailpres_vs_random_all": allv.to_dict(),
        "seconds": round(t.seconds),
    },
)
print(
    f"| 3. sqrt sampling helps tail classes | `tail_sampling.py` | {n // 2} of {n} videos, tail = {' & '.join(tail)} "
    f"({drawn['random']} / {drawn['sqrt']} tail videos drawn, random / sqrt), seeds {a.seeds}, {len(tail_videos)} "
    f"tail test "
    f"videos | tail top-1 sqrt {sq.a.percent()} vs random {sq.b.percent()}; gain {sq.diff.percent(True)} | "
    f"{C.verdict(sq)} | {t} |"
)
print(
    f"| 3. tail-preserving sampling helps tail classes | `tail_sampling.py` | same, {drawn['tail-preserving']} "
    f"tail videos drawn "
    f"| tail top-1 {tp.a.percent()} vs random {tp.b.percent()}; gain {tp.diff.percent(True)} (all classes: "
    f"{allv.diff.percent(True)}) | {C.verdict(tp)} | (above) |"
)
