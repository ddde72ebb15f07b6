"""Conv3dVia2d: an ``nn.Conv3d`` whose 1 x k x k and k x 1 x 1 kernels can run as 2D convolutions.

Same parameters, same state-dict entries, same result up to float rounding; only the
kernel that computes it changes. Why:

* **Correct bf16 training on CPU.** With torch 2.14.1 (oneDNN 3.12) on AMX CPUs, the bf16
  *weight gradient* of 3D convolutions (``brgconv_bwd_w``) is wrong (10-50% error) or NaN
  for many shapes, e.g. R(2+1)D-18's layer2 spatial convs on 8-frame 112x112 clips, so
  bf16 autocast training diverges at the first step. Forward and input gradients are fine,
  and 2D convolutions are fine, so computing these convs as 2D dodges it. Full 3x3x3
  kernels (R3D) have no 2D form and stay exposed to it in bf16 training: on an AMD EPYC
  with AVX-512 BF16 (no AMX) the weight gradient of a 3x3x3 conv with 256 channels on
  T = 2 (R3D-18's layer3 on 8-frame clips) is off by 100% or inf, while 128 channels on
  T = 4 are right to bf16 rounding; the trainer refuses bf16 for such models on CPU
  (:func:`native_3d_convs`).
* **channels_last_3d for free.** In channels_last_3d memory, (B, C, T, H, W) is already a
  (B*T, C, H, W) channels_last batch of frames (spatial kernels) and a (B, C, T, H*W)
  channels_last image (temporal kernels): both are views, no copy.

``route`` (class attribute, overridable per module) picks the path: ``"auto"`` uses 2D on
CPU when the input is channels_last_3d (which VideoResNet makes every CPU input by
default) or the conv computes in bf16 (autocast or bf16 input), and native 3D otherwise
(GPUs, contiguous fp32); ``"2d"`` and ``"3d"`` force a path (tests, benchmarks). In fp32
channels_last_3d both paths train at the same speed. Kernels that are neither spatial nor
temporal (3x3x3) always run natively.

Views made by reshaping can give size-1 dimensions (T = 1 in layer4 of an 8-frame clip,
B = 1) strides PyTorch would not choose; CPU BatchNorm backward (torch 2.14.1) then returns
wrong input gradients for channels_last_3d inputs. :func:`canonical_strides` restores the
standard strides (a view, no copy) on everything this module hands on.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

Route = Literal["auto", "2d", "3d"]


def canonical_strides(t: Tensor, *, channels_last: bool) -> Tensor:
    """``t`` as a view with the strides a fresh tensor of its layout would have.

    Only size-1 dimensions can differ (their stride never moves the address), so this is
    always a valid view of the same memory. ``channels_last`` breaks ties when both
    layouts describe ``t`` (e.g. T = H = W = 1).
    """
    if 1 not in t.shape:
        return t
    cl_format = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    formats = (cl_format, torch.contiguous_format) if channels_last else (torch.contiguous_format, cl_format)
    for fmt in formats:
        if t.is_contiguous(memory_format=fmt):
            want = torch.empty(t.shape, device="meta", memory_format=fmt).stride()
            return t if t.stride() == want else t.as_strided(t.shape, want)
    return t


def _computes_in_bf16(x: Tensor) -> bool:
    if x.dtype == torch.bfloat16:
        return True
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def native_3d_convs(model: nn.Module) -> list[str]:
    """Names of the model's 3D convolutions that have no 2D form (time and space kernels both > 1)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1 and max(m.kernel_size[1:]) > 1
    ]


class Conv3dVia2d(nn.Conv3d):
    """A Conv3d that runs 1 x k x k (framewise) and k x 1 x 1 (temporal) kernels as 2D convs when asked."""

    route: Route = "auto"

    def _use_2d(self, x: Tensor) -> bool:
        if self.route == "3d" or self.groups != 1 or self.dilation != (1, 1, 1) or self.padding_mode != "zeros":
            return False
        if self.route == "2d":
            return True
        if x.device.type != "cpu":
            return False
        channels_last = x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
        return channels_last or _computes_in_bf16(x)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.padding, str) or not self._use_2d(x):
            return super().forward(x)
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        cl = x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
        if kt == 1 and pt == 0:  # per frame: keep every st-th frame, then a 2D conv on B*T frames
            if st != 1:
                x = x[:, :, ::st]
            b, c, t, h, w = x.shape
            frames = canonical_strides(x.transpose(1, 2).reshape(b * t, c, h, w), channels_last=cl)
            y = F.conv2d(frames, self.weight.squeeze(2), self.bias, (sh, sw), (ph, pw))
            return canonical_strides(y.reshape(b, t, *y.shape[1:]).transpose(1, 2), channels_last=cl)
        if kh == kw == 1 and sh == sw == 1 and ph == pw == 0:  # along time: a (kt, 1) conv on (B, C, T, H*W)
            b, c, t, h, w = x.shape
            series = canonical_strides(x.reshape(b, c, t, h * w), channels_last=cl)
            y = F.conv2d(series, self.weight.squeeze(-1), self.bias, (st, 1), (pt, 0))
            return canonical_strides(y.reshape(b, y.shape[1], y.shape[2], h, w), channels_last=cl)
        return super().forward(x)
