"""Finding 5 (paper Table 4): pre-training on video clips beats pre-training on frames and inflating.

Arm A: R2D-18 pre-trained on single frames of the web videos, inflated ("center") to R3D-18
(weaksup.models.inflate_r2d_to_r3d). Arm B: R3D-18 pre-trained on 8-frame clips of the same
videos, same steps and seed. Both are fine-tuned on the target's 8-frame clips (the paper's
protocol) with the quickstart's fine-tuning recipe. ``--steps`` defaults to 300 here (an
R3D-18 step costs about 3 R(2+1)D-10 steps). Every run of this script computes in fp32: R3D's
full 3x3x3 convolutions have no 2D form, so they train with oneDNN's 3D kernels, whose bf16
weight gradients are wrong on these CPUs in torch 2.14.1 (``weaksup.models.via2d``; bf16
R3D-18 reached a NaN loss at step 265), and the frames arm uses fp32 too, to compare like with like.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import common as C

from weaksup.eval.network import resolve_checkpoint
from weaksup.models import build_model, inflate_r2d_to_r3d
from weaksup.train.checkpoint import checkpoint_name

if "--steps" not in sys.argv:
    sys.argv += ["--steps", "300"]
a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
hits = {"frames_inflated": [], "clips": []}
for seed in a.seeds:
    frames = a.out / f"pretrain_r2d18_frames_fp32_{a.steps}_s{seed}"
    clips = a.out / f"pretrain_r3d18_clips_fp32_{a.steps}_s{seed}"
    C.pretrain(p["pool"], p["labels"], frames, a.steps, seed, arch="r2d_18", frames=1, precision="fp32")
    C.pretrain(p["pool"], p["labels"], clips, a.steps, seed, arch="r3d_18", frames=8, precision="fp32")
    inflated = a.out / f"inflated_r3d18_fp32_{a.steps}_s{seed}"
    if not (inflated / "checkpoints").exists():
        ck = torch.load(resolve_checkpoint(frames), map_location="cpu", weights_only=True)
        r2d = build_model("r2d_18", num_classes=ck["model"]["fc.weight"].shape[0])
        r2d.load_state_dict(ck["model"])
        r3d = inflate_r2d_to_r3d(r2d, build_model("r3d_18", num_classes=r2d.fc.out_features), method="center")
        ck = dict(
            ck, model=r3d.state_dict(), arch="r3d_18", config=dict(ck.get("config") or {}, arch="r3d_18", frames=8)
        )
        (inflated / "checkpoints").mkdir(parents=True)
        torch.save(ck, inflated / "checkpoints" / checkpoint_name(a.steps))
    hits["frames_inflated"].append(
        C.finetune(p, inflated, inflated / "ft_target", seed, arch="r3d_18", precision="fp32")
    )
    hits["clips"].append(C.finetune(p, clips, clips / "ft_target", seed, arch="r3d_18", precision="fp32"))
cmp = C.compare(hits["clips"], hits["frames_inflated"])
C.save(
    a.out,
    "frames_vs_clips",
    {"seeds": a.seeds, "steps": a.steps, "finetune": cmp.to_dict(), "seconds": round(t.seconds)},
)
print(
    f"| 5. clips beat frames + inflation (Table 4) | `frames_vs_clips.py` | R2D-18 on 1 frame -> R3D-18 vs R3D-18 on "
    f"8-frame clips, fp32, {a.steps} steps, seeds {a.seeds}, fine-tuned | clips {cmp.a.percent()} vs frames+inflation "
    f"{cmp.b.percent()}; gain {cmp.diff.percent(True)} | {C.verdict(cmp)} | {t} |"
)
