"""Finding 2: more pre-training videos help (nested random subsets, same steps), fc-only on the target.

Subsets are nested prefixes of one random draw order of the pre-training pool (N/8, N/4,
N/2, N); every arm pre-trains for the same number of steps. The statistic is the slope of
target top-1 against log2(videos), with a 95% interval from a paired bootstrap over test
videos and seeds; "reproduced" means the slope's interval is above 0.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
n = C.rows(p["pool"])
sizes = (n // 8, n // 4, n // 2, n)
subsets = C.sample(p["pool"], "random", sizes[:-1], a.out / "subsets_random")
hits = {k: [] for k in sizes}
for seed in a.seeds:
    for k in sizes:
        man = subsets.get(k, p["pool"])
        ckpt = a.out / (f"pretrain_random{k}_{a.steps}_s{seed}" if k != n else f"pretrain_pool_{a.steps}_s{seed}")
        C.pretrain(man, p["labels"], ckpt, a.steps, seed)
        hits[k].append(C.fc_only_target(p, ckpt, ckpt / "fc_target", seed))
rand = [C.fc_only_target(p, None, a.out / f"random_init_s{seed}" / "fc_target", seed) for seed in a.seeds]
videos = sorted(set.intersection(*(set(h) for k in sizes for h in hits[k])))
m = np.stack([C.hits_matrix(hits[k], videos) for k in sizes])  # (sizes, seeds, videos)
x = np.log2(np.array(sizes, float))
rng = np.random.default_rng(0)
slopes, accs = [], []
for _ in range(4000):
    v = rng.integers(0, m.shape[2], m.shape[2])
    s = rng.integers(0, m.shape[1], m.shape[1])
    acc = m[:, s][:, :, v].mean(axis=(1, 2))
    accs.append(acc)
    slopes.append(np.polyfit(x, acc, 1)[0])
acc_point = m.mean(axis=(1, 2))
slope = float(np.polyfit(x, acc_point, 1)[0])
lo, hi = np.percentile(slopes, [2.5, 97.5])
acc_lo, acc_hi = np.percentile(np.array(accs), [2.5, 97.5], axis=0)
rand_acc = C.hits_matrix(rand, videos).mean()
C.save(
    a.out,
    "more_data",
    {
        "sizes": sizes,
        "seeds": a.seeds,
        "steps": a.steps,
        "top1": acc_point.tolist(),
        "top1_low": acc_lo.tolist(),
        "top1_high": acc_hi.tolist(),
        "slope_per_doubling": slope,
        "slope_interval": [lo, hi],
        "random_init": rand_acc,
        "seconds": round(t.seconds),
    },
)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6.4, 4.2))
ax.errorbar(
    sizes,
    100 * acc_point,
    yerr=[100 * (acc_point - acc_lo), 100 * (acc_hi - acc_point)],
    fmt="o-",
    capsize=4,
    label=f"pre-trained, {a.steps} steps ({len(a.seeds)} seeds, 95% intervals)",
)
ax.axhline(100 * rand_acc, ls="--", c="gray", label="random init")
ax.axhline(100 * C.CHANCE, ls=":", c="k", lw=1, label="chance (4 classes)")
ax.set_xscale("log", base=2)
ax.set_xticks(sizes, [str(k) for k in sizes])
ax.set_xlabel("pre-training videos (nested random subsets)", fontsize=10)
ax.set_ylabel("target top-1, fc-only (%)", fontsize=10)
ax.set_title(f"Finding 2 (toy): more pre-training data; slope {100 * slope:+.1f} points per doubling", fontsize=11)
ax.legend(fontsize=9)
fig.tight_layout()
fig.savefig(C.HERE / "more_data.png", dpi=110)
ok = "**yes**" if lo > 0 else ("**no** (opposite direction)" if hi < 0 else "no (interval includes 0)")
print(
    f"| 2. more videos help | `more_data.py` | nested random {', '.join(map(str, sizes))} videos, {a.steps} steps, "
    f"seeds {a.seeds} | fc-only "
    + ", ".join(f"{k}: {C.pct(v)}" for k, v in zip(sizes, acc_point))
    + f"; slope {100 * slope:+.1f} points per doubling [{100 * lo:+.1f}, {100 * hi:+.1f}] | {ok} | {t} |"
)
