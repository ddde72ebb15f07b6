"""Inflating an R2D into an R3D (paper Table 4: frame/image pre-training, then clip fine-tuning).

The paper inflates to R3D because there is no obvious way to inflate a 2D filter into a
(2+1)D pair. Our ``r2d_18`` has the R3D-18 parameter names with time kernels of 1, so
inflation is a key-by-key copy where 1 x k x k conv kernels become t x k x k:

* ``"center"``: the 2D kernel in the middle time slice, zeros elsewhere. Every inflated
  conv is then a per-frame 2D conv, exactly. R3D-18 strides time by 2 in layers 2-4, so
  in eval mode the inflated net's pooled features equal the mean of the R2D's per-frame
  features over frames 0, 8, 16, ... of the clip; on a static clip (all frames equal)
  its features and logits equal the R2D's, for any clip length.
* ``"average"`` (I3D's bootstrapping): the 2D kernel repeated t times and divided by t.
  On a static clip each conv equals the 2D conv only at time positions whose whole
  temporal window lies inside the clip; at the first and last (t // 2) positions the
  zero padding removes part of the sum (2/3 of the response for t = 3). The whole
  network therefore differs from the R2D near the clip's temporal borders, and for short
  clips those borders reach everywhere: its outputs equal the R2D's only where the
  temporal padding repeats the border frame (replicate padding), which R3D-18 does not do.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from torch import Tensor

from weaksup.errors import InputError

InflateMethod = Literal["center", "average"]


def inflate_kernel(weight: Tensor, time_kernel: int, *, method: InflateMethod = "center") -> Tensor:
    """A (O, I, 1, k, k) kernel as (O, I, time_kernel, k, k)."""
    if weight.dim() != 5 or weight.shape[2] != 1:
        raise InputError(f"can only inflate (O, I, 1, k, k) kernels, got shape {tuple(weight.shape)}")
    if method == "center":
        if time_kernel % 2 == 0:
            raise InputError(f"method 'center' needs an odd time kernel, got {time_kernel}")
        out = weight.new_zeros(weight.shape[0], weight.shape[1], time_kernel, *weight.shape[3:])
        out[:, :, time_kernel // 2] = weight[:, :, 0]
        return out
    if method == "average":
        return weight.repeat(1, 1, time_kernel, 1, 1) / time_kernel
    raise InputError(f"unknown inflation method {method!r}; known: center, average")


def inflate_r2d_to_r3d(
    r2d_model: nn.Module,
    r3d_model: nn.Module | None = None,
    *,
    time_kernel: int = 3,
    method: InflateMethod = "center",
) -> nn.Module:
    """Copy an R2D's weights into an R3D (a new ``r3d_18`` when none is given); returns the R3D.

    Every R3D tensor must have an R2D tensor of the same name and either the same shape
    (BatchNorm, 1x1x1 shortcuts, fc) or the same shape with a time kernel of 1 where the
    R3D has ``time_kernel`` (the convs, inflated with ``method``).
    """
    src = r2d_model.state_dict()
    if r3d_model is None:
        from weaksup.models.video_resnet import r3d_18

        fc = src.get("fc.weight")
        if fc is None:
            raise InputError("the 2D model has no fc.weight; pass r3d_model")
        r3d_model = r3d_18(num_classes=fc.shape[0], time_kernel=time_kernel)
    inflate_kernel(torch.zeros(1, 1, 1, 1, 1), time_kernel, method=method)  # check the method early
    dst = r3d_model.state_dict()
    missing = [k for k in dst if k not in src]
    if missing:
        raise InputError(f"the 2D model has no {missing[0]!r} ({len(missing)} of the 3D model's tensors missing)")
    new: dict[str, Tensor] = {}
    for key, target in dst.items():
        weight = src[key]
        if weight.shape == target.shape:
            new[key] = weight
        elif (
            weight.dim() == 5
            and weight.shape[2] == 1
            and target.shape[2] == time_kernel
            and weight.shape[:2] == target.shape[:2]
            and weight.shape[3:] == target.shape[3:]
        ):
            new[key] = inflate_kernel(weight, time_kernel, method=method)
        else:
            raise InputError(
                f"cannot inflate {key!r}: 2D shape {tuple(weight.shape)}, 3D shape {tuple(target.shape)}"
                f" (time_kernel={time_kernel})"
            )
    r3d_model.load_state_dict(new)
    return r3d_model
