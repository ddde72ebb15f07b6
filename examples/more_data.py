"""Finding 2: more pre-training videos help (nested random subsets, same steps), fc-only on the target.

Subsets are nested prefixes of one random draw order of the deduplicated web manifest (N/8, N/4,
N/2, N); every arm pre-trains for the same number of steps with the same seed. Plots top-1 vs
videos on a log x axis (examples/more_data.png); random init is the dashed reference.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
n = C.rows(p["clean"])
sizes = (n // 8, n // 4, n // 2)
subsets = C.sample(p["clean"], "random", sizes, a.out / "subsets")
top1 = {}
for k in sizes + (n,):
    man = subsets.get(k, p["clean"])
    ckpt = a.out / (f"pretrain_random{k}_{a.steps}_s{a.seed}" if k != n else f"pretrain_clean_{a.steps}_s{a.seed}")
    C.pretrain(man, p["labels"], ckpt, a.steps, a.seed)
    top1[k] = C.fc_only(p["target"], ckpt, a.out / f"fc_{ckpt.name}", a.seed)["top1"]
rand = C.fc_only(p["target"], None, a.out / f"pretrain_vs_scratch_s{a.seed}" / "fc_rand", a.seed)["top1"]
C.save(a.out, f"more_data_s{a.seed}", {"top1": top1, "random_init": rand, "steps": a.steps, "wall": str(t)})

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.4))
n_test = 40  # target test videos; error bars: one binomial standard error
se = [100 * (v * (1 - v) / n_test) ** 0.5 for v in top1.values()]
ax.errorbar(list(top1), [100 * v for v in top1.values()], yerr=se, fmt="o-", capsize=3, label=f"pre-trained, {a.steps} steps")
ax.axhline(100 * rand, ls="--", c="gray", label="random init")
ax.axhline(25, ls=":", c="k", lw=0.8, label="chance (4 classes)")
ax.set(xscale="log", xlabel="pre-training videos (nested random subsets)", ylabel="target top-1, fc-only (%)",
       title=f"Finding 2 (toy): more pre-training data, seed {a.seed}")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(Path(__file__).parent / "more_data.png", dpi=110)
mono = all(b >= c for b, c in zip(list(top1.values())[1:], list(top1.values())[:-1]))
print(f"| 2 more videos help | more_data.py | nested random {', '.join(map(str, top1))} of {n} videos, {a.steps} steps, "
      f"seed {a.seed} | fc-only " + ", ".join(f"{k}: {C.pct(v)}" for k, v in top1.items()) + f"; random init {C.pct(rand)} "
      f"| {'yes' if mono and top1[n] > top1[sizes[0]] else 'no/partly'} | {t} |")
