"""VideoResNet and its factories: R(2+1)D-10...152, R3D-18 and an inflatable R2D-18.

One network class; the conv flavour (3D, (2+1)D, 2D), stem and block type are injected.
Input is always (B, 3, T, H, W). Weight layouts (see :mod:`weaksup.models.blocks` for the
two mid-width rules):

* ``r2plus1d_18`` and ``r3d_18`` have torchvision's parameter names and shapes
  (``mid_rule="per_block"``), so torchvision state dicts load as they are;
  ``r2plus1d_18(mid_rule="per_conv")`` is the paper's/Caffe2's R(2+1)D-18 instead.
* ``r2plus1d_34`` and the deeper ones use ``mid_rule="per_conv"``: the layout of the
  public IG-65M R(2+1)D-34 checkpoints and the widths that reproduce Table 2. Those
  checkpoints were trained in Caffe2 with BatchNorm eps 1e-3: pass ``bn_eps=1e-3`` to get
  their outputs. VMZ's R(2+1)D-152 release also max-pools after the stem (no parameters,
  so its weights load, but outputs differ); Table 2's 252 GMACs are without that pool.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from weaksup.errors import InputError
from weaksup.models.blocks import BasicBlock, Bottleneck, MidRule
from weaksup.models.convs import Conv2DNoTemporal, Conv2Plus1D, ConvBuilder, conv3d_with_time_kernel
from weaksup.models.stems import R2DStem, R2Plus1dStem, R3DStem
from weaksup.models.via2d import Conv3dVia2d

Block = type[BasicBlock] | type[Bottleneck]

LAYERS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    10: (BasicBlock, (1, 1, 1, 1)),
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
WIDTHS = (64, 128, 256, 512)


class VideoResNet(nn.Module):
    """stem -> layer1..4 -> global average pool -> (dropout) -> fc.

    ``forward_features`` returns the pooled (B, feature_dim) vector fed to fc, which is
    what fc-only evaluation trains its logistic regressor on.

    ``cpu_channels_last`` (default on): a CPU input is made channels_last_3d before the stem.
    oneDNN's kernels are faster in that layout (an fp32 r2plus1d_18 train step about 15%
    faster, see benchmarks/step_bench.py), and it lets the spatial/temporal convs run as 2D convs
    for free (:mod:`weaksup.models.via2d`). Results equal the contiguous layout's up to
    float rounding; parameters keep their layout, so state dicts are unaffected.
    """

    def __init__(
        self,
        *,
        block: Block,
        conv_builder: ConvBuilder,
        layers: Sequence[int],
        stem: Callable[[], nn.Module],
        num_classes: int = 400,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
        mid_rule: MidRule = "per_block",
        bn_eps: float = 1e-5,
        cpu_channels_last: bool = True,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 entries, got {list(layers)}")
        self.stem = stem()
        in_planes = 64
        for i, (planes, n_blocks) in enumerate(zip(WIDTHS, layers)):
            stride = 1 if i == 0 else 2
            layer, in_planes = _make_layer(
                block, conv_builder, in_planes, planes, n_blocks, stride=stride, mid_rule=mid_rule
            )
            self.add_module(f"layer{i + 1}", layer)
        self.feature_dim = in_planes
        self.cpu_channels_last = cpu_channels_last
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.feature_dim, num_classes)
        _init_weights(self, zero_init_residual=zero_init_residual)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.eps = bn_eps

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features (B, feature_dim): the layer before fc."""
        if self.cpu_channels_last and x.device.type == "cpu" and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


def _make_layer(
    block: Block,
    conv_builder: ConvBuilder,
    in_planes: int,
    planes: int,
    n_blocks: int,
    *,
    stride: int,
    mid_rule: MidRule,
) -> tuple[nn.Sequential, int]:
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or in_planes != out_planes:
        downsample = nn.Sequential(
            Conv3dVia2d(
                in_planes, out_planes, kernel_size=1, stride=conv_builder.downsample_stride(stride), bias=False
            ),
            nn.BatchNorm3d(out_planes),
        )
    blocks = [
        block(in_planes, planes, conv_builder=conv_builder, stride=stride, downsample=downsample, mid_rule=mid_rule)
    ]
    blocks += [block(out_planes, planes, conv_builder=conv_builder, mid_rule=mid_rule) for _ in range(1, n_blocks)]
    return nn.Sequential(*blocks), out_planes


def _init_weights(model: nn.Module, *, zero_init_residual: bool) -> None:
    """torchvision's init: Kaiming (fan_out) convs, unit BN, small-normal fc."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    if zero_init_residual:  # each block starts as identity: helps very deep nets early on
        for m in model.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                last = m.conv3 if isinstance(m, Bottleneck) else m.conv2
                nn.init.zeros_(last[-1].weight)


def _r2plus1d(depth: int, *, num_classes: int, **kwargs: Any) -> VideoResNet:
    block, layers = LAYERS[depth]
    kwargs.setdefault("mid_rule", "per_block" if depth == 18 else "per_conv")
    return VideoResNet(
        block=block, conv_builder=Conv2Plus1D, layers=layers, stem=R2Plus1dStem, num_classes=num_classes, **kwargs
    )


def r2plus1d_10(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-10: basic blocks [1, 1, 1, 1] (the R(2+1)D paper's small ablation net)."""
    return _r2plus1d(10, num_classes=num_classes, **kwargs)


def r2plus1d_18(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-18: basic blocks [2, 2, 2, 2]; torchvision's ``r2plus1d_18`` layout (``mid_rule="per_block"``)."""
    return _r2plus1d(18, num_classes=num_classes, **kwargs)


def r2plus1d_34(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-34: basic blocks [3, 4, 6, 3]; the layout of the public IG-65M checkpoints (``per_conv``)."""
    return _r2plus1d(34, num_classes=num_classes, **kwargs)


def r2plus1d_50(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-50: bottleneck blocks [3, 4, 6, 3]."""
    return _r2plus1d(50, num_classes=num_classes, **kwargs)


def r2plus1d_101(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-101: bottleneck blocks [3, 4, 23, 3]."""
    return _r2plus1d(101, num_classes=num_classes, **kwargs)


def r2plus1d_152(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-152: bottleneck blocks [3, 8, 36, 3]."""
    return _r2plus1d(152, num_classes=num_classes, **kwargs)


def r3d_18(*, num_classes: int = 400, time_kernel: int = 3, **kwargs: Any) -> VideoResNet:
    """R3D-18: full t x 3 x 3 convs, time strided in layers 2-4; torchvision's ``r3d_18`` layout at t = 3."""
    block, layers = LAYERS[18]
    return VideoResNet(
        block=block,
        conv_builder=conv3d_with_time_kernel(time_kernel),
        layers=layers,
        stem=partial(R3DStem, time_kernel=time_kernel),
        num_classes=num_classes,
        **kwargs,
    )


def r2d_18(*, num_classes: int = 400, **kwargs: Any) -> VideoResNet:
    """R2D-18 on clips: 1 x k x k kernels, no temporal stride, pooled over time and space.

    Frames are processed independently and the pooled features are the mean over frames
    of per-frame features, so it is an image ResNet-18 (without max-pool, like the video
    nets) applied to each frame; its weights have the R3D-18 names with a time kernel of 1,
    ready for :func:`weaksup.models.inflate.inflate_r2d_to_r3d`.
    """
    block, layers = LAYERS[18]
    return VideoResNet(
        block=block, conv_builder=Conv2DNoTemporal, layers=layers, stem=R2DStem, num_classes=num_classes, **kwargs
    )


ARCHS: dict[str, Callable[..., VideoResNet]] = {
    "r2plus1d_10": r2plus1d_10,
    "r2plus1d_18": r2plus1d_18,
    "r2plus1d_34": r2plus1d_34,
    "r2plus1d_50": r2plus1d_50,
    "r2plus1d_101": r2plus1d_101,
    "r2plus1d_152": r2plus1d_152,
    "r3d_18": r3d_18,
    "r2d_18": r2d_18,
}


def build_model(arch: str, *, num_classes: int, **kwargs: Any) -> VideoResNet:
    """The named architecture; unknown names are bad input (one line listing the known ones)."""
    try:
        factory = ARCHS[arch]
    except KeyError:
        raise InputError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}") from None
    if num_classes < 1:
        raise InputError(f"num_classes must be >= 1, got {num_classes}")
    return factory(num_classes=num_classes, **kwargs)
