"""Finding 1: pre-training on the weakly labelled web corpus beats no pre-training on the target.

For each seed: pre-train on the deduplicated web videos, then on the
target benchmark (4 diagonal-motion classes, another visual domain, 40 training / 300 test
videos) compare (a) fc-only: frozen features + logistic regression, pre-trained vs
random-init network; (b) full fine-tuning: from the pre-trained network vs from scratch,
same steps. Intervals: paired bootstrap over test videos and seeds.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
arms: dict[str, list] = {"fc_pre": [], "fc_rand": [], "ft_pre": [], "ft_scratch": []}
losses = []
for seed in a.seeds:
    ckpt = a.out / f"pretrain_pool_{a.steps}_s{seed}"
    s = C.pretrain(p["pool"], p["labels"], ckpt, a.steps, seed)
    losses.append((s["first_loss"], s["final_loss"]))
    arms["fc_pre"].append(C.fc_only_target(p, ckpt, ckpt / "fc_target", seed))
    arms["fc_rand"].append(C.fc_only_target(p, None, a.out / f"random_init_s{seed}" / "fc_target", seed))
    arms["ft_pre"].append(C.finetune(p, ckpt, ckpt / "ft_target", seed))
    arms["ft_scratch"].append(C.finetune(p, None, a.out / f"scratch_s{seed}" / "ft_target", seed))
fc, ft = C.compare(arms["fc_pre"], arms["fc_rand"]), C.compare(arms["ft_pre"], arms["ft_scratch"])
C.save(
    a.out,
    "pretrain_vs_scratch",
    {
        "seeds": a.seeds,
        "steps": a.steps,
        "web_videos": C.rows(p["pool"]),
        "losses": losses,
        "fc_only": fc.to_dict(),
        "finetune": ft.to_dict(),
        "seconds": round(t.seconds),
    },
)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6.4, 4.2))
bars = [
    ("fc-only\npre-trained", fc.a),
    ("fc-only\nrandom init", fc.b),
    ("fine-tune\npre-trained", ft.a),
    ("fine-tune\nfrom scratch", ft.b),
]
for i, (name, iv) in enumerate(bars):
    ax.bar(i, 100 * iv.mean, color="C0" if "pre-trained" in name else "C7")
    ax.errorbar(i, 100 * iv.mean, yerr=[[100 * (iv.mean - iv.low)], [100 * (iv.high - iv.mean)]], color="k", capsize=4)
ax.set_xticks(range(4), [b[0] for b in bars], fontsize=10)
ax.axhline(100 * C.CHANCE, ls=":", c="k", lw=1, label="chance (4 classes)")
ax.set_ylabel("target top-1 (%), 300 test videos", fontsize=10)
ax.set_title(f"Finding 1 (toy): pre-training vs none, {len(a.seeds)} seeds, 95% intervals", fontsize=11)
ax.legend(fontsize=9)
fig.tight_layout()
fig.savefig(C.HERE / "pretrain_vs_scratch.png", dpi=110)
print(
    f"| 1. pre-training beats none (fc-only) | `pretrain_vs_scratch.py` | {C.rows(p['pool'])} web videos, "
    f"{a.steps} steps, "
    f"seeds {a.seeds} | pre-trained {fc.a.percent()} vs random init {fc.b.percent()}; gain {fc.diff.percent(True)} "
    f"| {C.verdict(fc)} | {t} |"
)
print(
    f"| 1. pre-training beats none (fine-tune) | `pretrain_vs_scratch.py` | same networks, 15 epochs on 40 target "
    f"videos "
    f"| pre-trained {ft.a.percent()} vs scratch {ft.b.percent()}; gain {ft.diff.percent(True)} | {C.verdict(ft)} "
    f"| (above) |"
)
