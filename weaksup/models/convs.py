"""The 3x3 convolution of a residual block, in three flavours injected into the same network.

A block never builds its own "3x3" conv: it calls a *conv builder*, so one VideoResNet
class gives R3D (full 3x3x3), R(2+1)D (spatial 1x3x3 then temporal 3x1x1) and R2D (1x3x3
only, frames independent). Every builder is an ``nn.Module`` subclass whose constructor is
``(in_planes, out_planes, *, mid_planes=None, stride=1)`` and which says, through
``downsample_stride``, how a 1x1x1 shortcut must stride to follow it.

Module layouts mirror torchvision's ``models/video/resnet.py`` (Conv2Plus1D is a
Sequential of conv, BN, ReLU, conv), so state-dict keys match torchvision and the public
IG-65M checkpoints. Every conv is a :class:`~weaksup.models.via2d.Conv3dVia2d` (a Conv3d
with the same parameters) so that spatial and temporal kernels can run as 2D convs.
"""

from __future__ import annotations

from typing import Protocol

import torch.nn as nn

from weaksup.models.via2d import Conv3dVia2d

Stride3 = tuple[int, int, int]


def matched_mid_planes(in_planes: int, out_planes: int, *, time_kernel: int = 3, kernel: int = 3) -> int:
    """Mid channels M of a (2+1)D conv with as many parameters as the t x d x d 3D conv.

    The 3D conv has ``t*d^2*Nin*Nout`` weights; the (2+1)D pair has ``M*(d^2*Nin + t*Nout)``,
    so ``M = floor(t*d^2*Nin*Nout / (d^2*Nin + t*Nout))`` (Tran et al. 2018, Sec. 3.5).
    """
    d2 = kernel * kernel
    return (time_kernel * d2 * in_planes * out_planes) // (d2 * in_planes + time_kernel * out_planes)


class ConvBuilder(Protocol):
    """What a block needs from an injected conv: build it, and know its shortcut stride."""

    def __call__(
        self, in_planes: int, out_planes: int, *, mid_planes: int | None = None, stride: int = 1
    ) -> nn.Module: ...

    @staticmethod
    def downsample_stride(stride: int) -> Stride3: ...


class Conv3DSimple(Conv3dVia2d):
    """Full t x 3 x 3 conv (R3D); strides time as well as space, like torchvision's r3d_18.

    ``time_kernel`` is a class attribute (see :func:`conv3d_with_time_kernel`) so that the
    builder stays a class with a static ``downsample_stride``.
    """

    time_kernel: int = 3

    def __init__(self, in_planes: int, out_planes: int, *, mid_planes: int | None = None, stride: int = 1) -> None:
        del mid_planes  # a single conv has no middle
        t = self.time_kernel
        super().__init__(
            in_planes,
            out_planes,
            kernel_size=(t, 3, 3),
            stride=(stride, stride, stride),
            padding=(t // 2, 1, 1),
            bias=False,
        )

    @staticmethod
    def downsample_stride(stride: int) -> Stride3:
        return (stride, stride, stride)


def conv3d_with_time_kernel(time_kernel: int) -> type[Conv3DSimple]:
    """A Conv3DSimple builder whose kernel spans ``time_kernel`` frames (odd, for symmetric padding)."""
    if time_kernel < 1 or time_kernel % 2 == 0:
        raise ValueError(f"time_kernel must be odd and >= 1, got {time_kernel}")
    if time_kernel == Conv3DSimple.time_kernel:
        return Conv3DSimple
    return type(f"Conv3DSimpleT{time_kernel}", (Conv3DSimple,), {"time_kernel": time_kernel})


class Conv2Plus1D(nn.Sequential):
    """(2+1)D conv: 1x3x3 spatial conv -> BN -> ReLU -> 3x1x1 temporal conv.

    The extra ReLU between the two is the point of the factorisation (twice the
    non-linearities for the same parameter count). ``mid_planes`` defaults to the
    parameter-matching rule of :func:`matched_mid_planes`.
    """

    def __init__(self, in_planes: int, out_planes: int, *, mid_planes: int | None = None, stride: int = 1) -> None:
        mid = mid_planes if mid_planes is not None else matched_mid_planes(in_planes, out_planes)
        super().__init__(
            Conv3dVia2d(
                in_planes, mid, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
            ),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            Conv3dVia2d(mid, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )

    @staticmethod
    def downsample_stride(stride: int) -> Stride3:
        return (stride, stride, stride)


class Conv2DNoTemporal(Conv3dVia2d):
    """1x3x3 conv with temporal stride 1 (R2D): every frame is convolved on its own.

    Written as a Conv3d with a time kernel of 1 so that the same weights inflate into a
    3x3x3 conv (see :mod:`weaksup.models.inflate`).
    """

    def __init__(self, in_planes: int, out_planes: int, *, mid_planes: int | None = None, stride: int = 1) -> None:
        del mid_planes
        super().__init__(
            in_planes, out_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
        )

    @staticmethod
    def downsample_stride(stride: int) -> Stride3:
        return (1, stride, stride)
