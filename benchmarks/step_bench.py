"""Training steps/s on CPU: our R(2+1)D-18 against torchvision's, and bf16 + channels_last_3d against fp32.

One train step = forward, cross-entropy, backward, SGD (momentum) step, on the same
random batch every time. The three configurations run interleaved step by step (so load
from other jobs on shared cores hits them alike) after a few warm-up steps each, and
each reports the median step time:

* ``torchvision fp32``: ``torchvision.models.video.r2plus1d_18`` (the baseline);
* ``weaksup fp32``: ``weaksup.models.r2plus1d_18`` with the same weights (by default it makes a
  CPU input channels_last_3d, where oneDNN is faster; weights stay as they are);
* ``weaksup fp32, cpu_channels_last=False``: the same ops as torchvision, to show where
  the fp32 difference comes from;
* ``weaksup bf16 + channels_last_3d``: the same net under ``torch.autocast("cpu", bfloat16)``
  with weights and input in channels_last_3d (oneDNN bf16 kernels; AMX where the CPU has it);
  its spatial and temporal convs then run as 2D convs (see ``weaksup/models/via2d.py``);
* ``torchvision bf16 + channels_last_3d``: the same for torchvision's net, whose native 3D
  convs get wrong/NaN bf16 weight gradients from oneDNN's AMX kernels (torch 2.14.1): the
  "finite losses" column shows whether training survives.

    python benchmarks/step_bench.py                      # 4 clips x 8 frames x 112 x 112
    python benchmarks/step_bench.py --batch 2 --steps 3  # quicker

Prints a markdown table with steps/s, clips/s, finite losses and the ratio to each row's baseline.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from weaksup.models import r2plus1d_18


@dataclass
class Config:
    name: str
    model: nn.Module
    bf16: bool = False
    channels_last: bool = False
    baseline: str | None = None
    times: list[float] = field(default_factory=list)
    finite: int = 0

    def __post_init__(self) -> None:
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.model.train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One timed train step; counts the steps whose loss is finite."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        self.opt.step()
        elapsed = time.perf_counter() - t0
        self.finite += bool(torch.isfinite(loss))
        return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--classes", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchvision.models.video import r2plus1d_18 as tv_r2plus1d_18

    torch.manual_seed(0)
    tv = tv_r2plus1d_18(num_classes=args.classes)
    ours = r2plus1d_18(num_classes=args.classes)
    ours.load_state_dict(tv.state_dict())
    ours_plain = r2plus1d_18(num_classes=args.classes, cpu_channels_last=False)
    ours_plain.load_state_dict(tv.state_dict())
    ours_bf16 = r2plus1d_18(num_classes=args.classes)
    ours_bf16.load_state_dict(tv.state_dict())
    tv_bf16 = tv_r2plus1d_18(num_classes=args.classes)
    tv_bf16.load_state_dict(tv.state_dict())
    configs = [
        Config("torchvision r2plus1d_18, fp32", tv),
        Config("weaksup r2plus1d_18, fp32", ours, baseline="torchvision r2plus1d_18, fp32"),
        Config(
            "weaksup r2plus1d_18, fp32, cpu_channels_last=False",
            ours_plain,
            baseline="torchvision r2plus1d_18, fp32",
        ),
        Config(
            "weaksup r2plus1d_18, bf16 autocast + channels_last_3d",
            ours_bf16,
            bf16=True,
            channels_last=True,
            baseline="weaksup r2plus1d_18, fp32",
        ),
        Config(
            "torchvision r2plus1d_18, bf16 autocast + channels_last_3d",
            tv_bf16,
            bf16=True,
            channels_last=True,
            baseline="torchvision r2plus1d_18, fp32",
        ),
    ]
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))

    for _ in range(args.warmup):
        for cfg in configs:
            cfg.step(x, y)
    for _ in range(args.steps):
        for cfg in configs:  # interleaved: background load hits every configuration alike
            cfg.times.append(cfg.step(x, y))

    median = {cfg.name: statistics.median(cfg.times) for cfg in configs}
    print(
        f"\nr2plus1d_18 train step (fwd + bwd + SGD), batch {args.batch} x {args.frames} x {args.size} x {args.size},"
        f" {args.classes} classes; {platform.processor() or platform.machine()}, torch {torch.__version__},"
        f" {torch.get_num_threads()} threads; median of {args.steps} interleaved steps after {args.warmup} warm-up\n"
    )
    total = args.warmup + args.steps
    print("| configuration | median s/step | min–max s | steps/s | clips/s | finite losses | vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for cfg in configs:
        m = median[cfg.name]
        ratio = f"**{median[cfg.baseline] / m:.2f}×** vs {cfg.baseline}" if cfg.baseline else "baseline"
        print(
            f"| {cfg.name} | {m:.3f} | {min(cfg.times):.3f}–{max(cfg.times):.3f} | {1 / m:.3f}"
            f" | {args.batch / m:.2f} | {cfg.finite}/{total} | {ratio} |"
        )


if __name__ == "__main__":
    main()
