"""Finding 5 (paper Table 4): pre-training on video clips beats pre-training on frames and inflating.

Arm A: R2D-18 pre-trained on single frames of the web videos, inflated ("center") to R3D-18
(weaksup.models.inflate_r2d_to_r3d). Arm B: R3D-18 pre-trained on 8-frame clips of the same
videos, same steps and seed. Both are fine-tuned on the target's 8-frame clips (plus R3D-18 from scratch).
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import common as C
from weaksup.eval.network import resolve_checkpoint
from weaksup.models import build_model, inflate_r2d_to_r3d
from weaksup.train.checkpoint import checkpoint_name

a = C.args(__doc__)
t = C.Timer()
p = C.corpus(a.out)
frames = a.out / f"pretrain_r2d18_frames_{a.steps}_s{a.seed}"
clips = a.out / f"pretrain_r3d18_clips_{a.steps}_s{a.seed}"
C.pretrain(p["clean"], p["labels"], frames, a.steps, a.seed, arch="r2d_18", frames=1)
C.pretrain(p["clean"], p["labels"], clips, a.steps, a.seed, arch="r3d_18", frames=8)

inflated = a.out / f"inflated_r3d18_{a.steps}_s{a.seed}"
if not (inflated / "checkpoints").exists():
    ck = torch.load(resolve_checkpoint(frames), map_location="cpu", weights_only=True)
    r2d = build_model("r2d_18", num_classes=ck["model"]["fc.weight"].shape[0])
    r2d.load_state_dict(ck["model"])
    r3d = inflate_r2d_to_r3d(r2d, build_model("r3d_18", num_classes=r2d.fc.out_features), method="center")
    ck = dict(ck, model=r3d.state_dict(), arch="r3d_18", config=dict(ck.get("config") or {}, arch="r3d_18", frames=8))
    (inflated / "checkpoints").mkdir(parents=True)
    torch.save(ck, inflated / "checkpoints" / checkpoint_name(a.steps))

run = a.out / f"frames_vs_clips_s{a.seed}"
r = {name: C.finetune(p["target"], ck, run / name, a.seed, epochs=a.ft_epochs, arch="r3d_18")["top1"]
     for name, ck in (("frames_inflated", inflated), ("clips", clips), ("scratch", None))}
# fc-only as well: at this budget fine-tuning barely moves from chance
fc = {name: C.fc_only(p["target"], ck, run / f"fc_{name}", a.seed, arch="r3d_18")["top1"]
      for name, ck in (("frames_inflated", inflated), ("clips", clips), ("random", None))}
C.save(a.out, f"frames_vs_clips_s{a.seed}", dict(r, fc_only=fc, steps=a.steps, wall=str(t)))
print(f"| 5 clips > frames + inflation | frames_vs_clips.py | {C.rows(p['clean'])} web videos, R2D-18 on 1 frame -> R3D-18 vs "
      f"R3D-18 on 8-frame clips, {a.steps} steps, seed {a.seed}, fine-tuned | frames+inflation {C.pct(r['frames_inflated'])}, "
      f"clips {C.pct(r['clips'])}, scratch {C.pct(r['scratch'])}; fc-only frames+inflation {C.pct(fc['frames_inflated'])}, "
      f"clips {C.pct(fc['clips'])}, random init {C.pct(fc['random'])} | {'yes' if r['clips'] > r['frames_inflated'] else 'no'} | {t} |")
