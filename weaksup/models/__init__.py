"""Video ResNets (R(2+1)D, R3D, R2D), inflation, weights I/O and cost counting."""

from weaksup.models.counting import count_arch, count_macs, count_parameters
from weaksup.models.inflate import inflate_r2d_to_r3d
from weaksup.models.video_resnet import (
    ARCHS,
    VideoResNet,
    build_model,
    r2d_18,
    r2plus1d_10,
    r2plus1d_18,
    r2plus1d_34,
    r2plus1d_50,
    r2plus1d_101,
    r2plus1d_152,
    r3d_18,
)
from weaksup.models.weights import convert_weights, export_safetensors, load_weights, read_state_dict

__all__ = [
    "ARCHS",
    "VideoResNet",
    "build_model",
    "convert_weights",
    "count_arch",
    "count_macs",
    "count_parameters",
    "export_safetensors",
    "inflate_r2d_to_r3d",
    "load_weights",
    "r2d_18",
    "r2plus1d_10",
    "r2plus1d_18",
    "r2plus1d_34",
    "r2plus1d_50",
    "r2plus1d_101",
    "r2plus1d_152",
    "r3d_18",
    "read_state_dict",
]
