"""Which device a run uses: one rule for train, extract and fc-only (core; imports torch only)."""

from __future__ import annotations

import torch

from weaksup.errors import InputError


def uses_cuda(device: str) -> bool:
    """Whether config device ``device`` (auto, cpu, cuda) means CUDA here."""
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda requested but no CUDA device is available (use --device cpu or auto)")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())
