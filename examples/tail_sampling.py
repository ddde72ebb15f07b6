"""Finding 3: square-root and tail-preserving sampling help the tail classes (vs a random subset of equal size).

Each strategy draws N/2 videos from the deduplicated web manifest; every arm pre-trains for the
same steps with the same seed. Tail classes are the two rarest labels of the web manifest;
the score is their mean fc-only top-1 on the (balanced) target test set.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
n = C.rows(p["clean"])
counts = C.label_counts(p["clean"])
tail = sorted(counts, key=counts.get)[:2]
res = {}
for strategy in ("random", "sqrt", "tail-preserving"):
    man = C.sample(p["clean"], strategy, (n // 2,) if strategy != "random" else (n // 8, n // 4, n // 2),
                   a.out / ("subsets" if strategy == "random" else f"subsets_{strategy}"))[n // 2]
    ckpt = a.out / (f"pretrain_random{n // 2}_{a.steps}_s{a.seed}" if strategy == "random"
                    else f"pretrain_{strategy}{n // 2}_{a.steps}_s{a.seed}")
    C.pretrain(man, p["labels"], ckpt, a.steps, a.seed)
    m = C.fc_only(p["target"], ckpt, a.out / f"fc_{ckpt.name}", a.seed)
    drawn = C.label_counts(man)
    res[strategy] = {"top1": m["top1"], "tail_top1": sum(m["per_class"][c] for c in tail) / len(tail),
                     "tail_videos": sum(drawn.get(c, 0) for c in tail)}
C.save(a.out, f"tail_sampling_s{a.seed}", {"tail": tail, "counts": counts, "res": res, "wall": str(t)})
r, s, tp = res["random"], res["sqrt"], res["tail-preserving"]
print(f"| 3 sqrt / tail-preserving sampling help tail | tail_sampling.py | {n // 2} of {n} videos, tail = {', '.join(tail)}, "
      f"{a.steps} steps, seed {a.seed} | tail-class top-1 (tail videos drawn): random {C.pct(r['tail_top1'])} ({r['tail_videos']}), "
      f"sqrt {C.pct(s['tail_top1'])} ({s['tail_videos']}), tail-preserving {C.pct(tp['tail_top1'])} ({tp['tail_videos']}); "
      f"overall {C.pct(r['top1'])} / {C.pct(s['top1'])} / {C.pct(tp['top1'])} "
      f"| {'yes' if min(s['tail_top1'], tp['tail_top1']) > r['tail_top1'] else 'no/partly'} | {t} |")
