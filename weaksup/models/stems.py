"""Stems: the first conv(s), which take the RGB clip to 64 channels at half spatial size.

Layouts (and so state-dict keys ``stem.0``, ``stem.1``, ...) follow torchvision. None of the
stems strides time: the clip keeps all its frames until layer2.
"""

from __future__ import annotations

import torch.nn as nn

from weaksup.models.via2d import Conv3dVia2d


class R2Plus1dStem(nn.Sequential):
    """(2+1)D stem: 1x7x7 conv to 45 channels, BN, ReLU, 3x1x1 conv to 64, BN, ReLU.

    45 mid channels as in Caffe2/VMZ, torchvision and the released IG-65M models (and the
    paper's Table 2 counts), not the parameter-matching rule, which would give
    floor(3*49*3*64 / (49*3 + 3*64)) = 83.
    """

    def __init__(self) -> None:
        super().__init__(
            Conv3dVia2d(3, 45, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            Conv3dVia2d(45, 64, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class R3DStem(nn.Sequential):
    """R3D stem: one t x 7 x 7 conv (t = 3 by default), stride (1, 2, 2), BN, ReLU."""

    def __init__(self, *, time_kernel: int = 3) -> None:
        super().__init__(
            Conv3dVia2d(
                3, 64, kernel_size=(time_kernel, 7, 7), stride=(1, 2, 2), padding=(time_kernel // 2, 3, 3), bias=False
            ),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class R2DStem(R3DStem):
    """R2D stem: the R3D stem with a time kernel of 1, i.e. a 7x7 2D conv on every frame."""

    def __init__(self) -> None:
        super().__init__(time_kernel=1)
