"""A trained network for evaluation: a checkpoint (or a random init) as a model plus what it was trained on.

Three kinds of ``--checkpoint`` are read, all with ``weights_only=True``:

* a pre-training run folder (``runs/r34``): its newest checkpoint in ``checkpoints/``;
* a pre-training checkpoint (``step_*.pt``): the arch, classes and clip settings come
  from the checkpoint itself;
* a plain state dict (``.pth``/``.pt``/``.safetensors``, e.g. converted IG-65M weights):
  ``--arch`` names the architecture; the classes come from ``fc.weight``.

No checkpoint at all means a randomly initialised ``arch`` (seeded): the "no
pre-training" baseline every transfer number should be compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from weaksup.errors import InputError
from weaksup.models import build_model
from weaksup.models.weights import check_fits, load_torch_file, read_state_dict
from weaksup.train.checkpoint import FORMAT, list_checkpoints


@dataclass(frozen=True)
class Network:
    """A model ready for evaluation, and where it came from."""

    model: nn.Module
    arch: str
    num_classes: int
    feature_dim: int
    source: str  # the checkpoint file, or "random init (seed N)"
    loss: str = "softmax"  # how its classifier was trained: softmax or bce
    train_config: dict[str, Any] | None = None  # the pre-training config, when the checkpoint has it

    def clip_setting(self, name: str, default: int) -> int:
        """A clip setting (frames, stride, crop, short_side) of pre-training, else ``default``."""
        if self.train_config and isinstance(self.train_config.get(name), int):
            return int(self.train_config[name])
        return default


def resolve_checkpoint(path: Path) -> Path:
    """A run folder means its newest checkpoint; a file is itself."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
        if not found:
            raise InputError(f"{path}: folder holds no checkpoints (expected checkpoints/step_*.pt)")
        return found[-1]
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint file")
    return path


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The model state dict and, for our own pre-training checkpoints, the rest of the checkpoint."""
    if path.suffix != ".safetensors":
        obj = load_torch_file(path)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return dict(obj["model"]), obj
    return read_state_dict(path), None


def load_network(
    checkpoint: Path | None, *, arch: str | None = None, num_classes: int | None = None, seed: int = 0
) -> Network:
    """The network of ``checkpoint`` (see the module notes), in eval mode on the CPU.

    ``arch``, when given, must agree with a pre-training checkpoint's own. ``num_classes``
    sizes a random init's classifier (default 1: only the features are used).
    """
    if checkpoint is None:
        if arch is None:
            raise InputError("without --checkpoint, --arch names the randomly initialised network")
        torch.manual_seed(seed)
        model = build_model(arch, num_classes=num_classes or 1)
        return Network(model.eval(), arch, num_classes or 1, model.feature_dim, f"random init (seed {seed})")
    path = resolve_checkpoint(checkpoint)
    state, full = _read(path)
    train_config = None
    loss = "softmax"
    if full is not None:
        own = str(full.get("arch"))
        if arch is not None and arch != own:
            raise InputError(f"{path}: checkpoint is a {own} but --arch says {arch}")
        arch = own
        train_config = dict(full.get("config") or {})
        loss = str(train_config.get("loss", "softmax"))
    elif arch is None:
        raise InputError(f"{path}: a plain state dict does not say its architecture; pass --arch")
    fc = state.get("fc.weight")
    if fc is None or fc.ndim != 2:
        raise InputError(f"{path}: checkpoint has no classifier 'fc.weight'; is it a video ResNet of weaksup's layout?")
    model = build_model(arch, num_classes=int(fc.shape[0]))
    check_fits(model, state, source=str(path))
    model.load_state_dict(state)
    return Network(model.eval(), arch, int(fc.shape[0]), model.feature_dim, str(path), loss, train_config)
