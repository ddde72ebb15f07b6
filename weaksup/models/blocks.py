"""Residual blocks, each built around an injected conv builder (see :mod:`weaksup.models.convs`).

Two rules exist in the wild for the mid width M of a block's (2+1)D convs, and released
weights depend on which one was used:

* ``"per_block"`` (torchvision): one M per block, from the block's input and output widths,
  ``matched_mid_planes(in_planes, planes)``, used for every factorised conv in it. The
  second conv of a widening block (and the middle conv of every non-first bottleneck)
  then does not match the parameters of its 3D counterpart. torchvision's
  ``r2plus1d_18`` and its Kinetics weights use this.
* ``"per_conv"`` (Caffe2/VMZ, the paper's models): each conv gets the exact match for its
  own input and output widths. The public IG-65M R(2+1)D-34 checkpoints use this (their
  PyTorch port patches ``layerN[0].conv2[0]`` to 288/576/1152 mid channels), and it is the
  rule that reproduces the paper's Table 2 (see :mod:`weaksup.models.counting`).
"""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
from torch import Tensor

from weaksup.models.convs import ConvBuilder, matched_mid_planes
from weaksup.models.via2d import Conv3dVia2d

MidRule = Literal["per_block", "per_conv"]


def _mid(rule: MidRule, block_in: int, conv_in: int, conv_out: int) -> int:
    if rule == "per_block":
        return matched_mid_planes(block_in, conv_out)
    return matched_mid_planes(conv_in, conv_out)


class BasicBlock(nn.Module):
    """Two 3x3 convs (of whatever kind the builder makes) with an identity or 1x1x1 shortcut."""

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        *,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
        mid_rule: MidRule = "per_block",
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            conv_builder(in_planes, planes, mid_planes=_mid(mid_rule, in_planes, in_planes, planes), stride=stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            conv_builder(planes, planes, mid_planes=_mid(mid_rule, in_planes, planes, planes)),
            nn.BatchNorm3d(planes),
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += shortcut
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1x1 reduce -> 3x3 conv from the builder (strided) -> 1x1x1 expand (x4), plus shortcut.

    The paper (Sec. 3.3) puts "1x1x1 convs before and after the factorised conv" for
    depths above 34; the strided conv is the middle one, as in torchvision's video ResNet.
    """

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        *,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
        mid_rule: MidRule = "per_block",
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Sequential(
            Conv3dVia2d(in_planes, planes, kernel_size=1, bias=False), nn.BatchNorm3d(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(
            conv_builder(planes, planes, mid_planes=_mid(mid_rule, in_planes, planes, planes), stride=stride),
            nn.BatchNorm3d(planes),
            nn.ReLU(inplace=True),
        )
        self.conv3 = nn.Sequential(
            Conv3dVia2d(planes, out_planes, kernel_size=1, bias=False), nn.BatchNorm3d(out_planes)
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        out += shortcut
        return self.relu(out)
