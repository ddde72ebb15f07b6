"""CUDA training step: our R(2+1)D vs torchvision's, fp32 vs bf16 + channels_last_3d, and MFU.

Run on a GPU machine. One step = forward, cross-entropy, backward, SGD step on one random
batch, cudnn.benchmark on, timed with CUDA events after warm-up (median of --steps).
Model FLOP utilisation = 3 x 2 x multiply-adds per clip x clips per second / peak bf16
dense FLOP/s of the card (--peak-tflops, 989 for H100/H200 SXM).

    python benchmarks/gpu_step_bench.py --batch 16 --frames 8
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F


def step_times(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bf16: bool, warmup: int, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(warmup + steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        end.record()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--archs", default="r2plus1d_18,r2plus1d_34")
    args = ap.parse_args()

    import torchvision

    from weaksup.models import build_model
    from weaksup.models.counting import count_macs

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.device("cuda")
    print(
        f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, batch {args.batch} x {args.frames} "
        f"x 112 x 112\n"
    )
    print("| model | precision | step ms | clips/s | ratio | MFU |")
    print("|---|---|---:|---:|---:|---:|")
    for arch in args.archs.split(","):
        macs = count_macs(build_model(arch, num_classes=400), (1, 3, args.frames, 112, 112))
        runs = []
        if arch == "r2plus1d_18":
            tv = torchvision.models.video.r2plus1d_18(num_classes=400)
            runs.append(("torchvision " + arch, tv, False, False))
            runs.append(("torchvision " + arch, torchvision.models.video.r2plus1d_18(num_classes=400), True, True))
        runs.append(("weaksup " + arch, build_model(arch, num_classes=400), False, False))
        runs.append(("weaksup " + arch, build_model(arch, num_classes=400), True, True))
        base = {}
        for name, model, bf16, cl in runs:
            fmt = torch.channels_last_3d if cl else torch.contiguous_format
            model = model.to(dev, memory_format=fmt).train()
            x = torch.randn(args.batch, 3, args.frames, 112, 112, device=dev).contiguous(memory_format=fmt)
            y = torch.randint(0, 400, (args.batch,), device=dev)
            t = step_times(model, x, y, bf16=bf16, warmup=args.warmup, steps=args.steps)
            prec = "bf16 + channels_last_3d" if bf16 else "fp32 (tf32)"
            key = prec
            ratio = "" if name.startswith("torchvision") or key not in base else f"{base[key] / t:.2f}x vs torchvision"
            if name.startswith("torchvision"):
                base[key] = t
            mfu = 3 * 2 * macs * args.batch / t / (args.peak_tflops * 1e12)
            print(f"| {name} | {prec} | {1000 * t:.1f} | {args.batch / t:.0f} | {ratio} | {100 * mfu:.1f}% |")
            del model, x, y
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
