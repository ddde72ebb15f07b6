"""Finding 1: pre-training on the weakly labelled web corpus beats training from scratch on the target.

Pre-trains on the deduplicated web manifest, then compares on the target benchmark
(a) fc-only: frozen features + logistic regression, pre-trained vs random-init network;
(b) full fine-tuning: from the pre-trained network vs from scratch (same seed, same steps).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import common as C

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
run = a.out / f"pretrain_vs_scratch_s{a.seed}"
ckpt = a.out / f"pretrain_clean_{a.steps}_s{a.seed}"
s = C.pretrain(p["clean"], p["labels"], ckpt, a.steps, a.seed)
r = {
    "fc_pre": C.fc_only(p["target"], ckpt, run / "fc_pre", a.seed)["top1"],
    "fc_rand": C.fc_only(p["target"], None, run / "fc_rand", a.seed)["top1"],
    "ft_pre": C.finetune(p["target"], ckpt, run / "ft_pre", a.seed, epochs=a.ft_epochs)["top1"],
    "ft_scratch": C.finetune(p["target"], None, run / "ft_scratch", a.seed, epochs=a.ft_epochs)["top1"],
    "pretrain_loss": [s["first_loss"], s["final_loss"]], "web_videos": C.rows(p["clean"]), "steps": a.steps,
    "seed": a.seed, "wall": str(t),
}
C.save(a.out, f"pretrain_vs_scratch_s{a.seed}", r)

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(4.6, 3.2))
vals = [r["fc_pre"], r["fc_rand"], r["ft_pre"], r["ft_scratch"]]
ax.bar(range(4), [100 * v for v in vals], color=["C0", "C7", "C0", "C7"])
ax.set_xticks(range(4), ["fc-only\npre-trained", "fc-only\nrandom init", "fine-tune\npre-trained", "fine-tune\nscratch"], fontsize=8)
ax.axhline(25, ls=":", c="k", lw=0.8)
ax.set(ylabel="target top-1 (%)", title=f"Finding 1 (toy), seed {a.seed}")
fig.tight_layout()
fig.savefig(Path(__file__).parent / f"pretrain_vs_scratch_s{a.seed}.png", dpi=110)
print(f"| 1 pre-training > scratch | pretrain_vs_scratch.py | {r['web_videos']} web videos, 4 classes, {a.steps} steps, "
      f"seed {a.seed} | fc-only {C.pct(r['fc_pre'])} vs {C.pct(r['fc_rand'])} (random init); fine-tune "
      f"{C.pct(r['ft_pre'])} vs {C.pct(r['ft_scratch'])} (scratch); pre-train loss {s['first_loss']:.2f}->{s['final_loss']:.2f} "
      f"| {'yes' if r['fc_pre'] > r['fc_rand'] and r['ft_pre'] > r['ft_scratch'] else 'partly/no'} | {t} |")
