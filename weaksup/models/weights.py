"""Reading, checking and converting checkpoints (.pth/.pt via torch.load, or .safetensors).

Checkpoints arrive from torchvision, the IG-65M PyTorch ports, DDP training runs and our
own exports, wrapped in different ways; ``read_state_dict`` unwraps them ("state_dict" or
"model" entries, "module." prefixes) and refuses anything that is not a flat
name -> tensor mapping. torch files are loaded with ``weights_only=True`` so a checkpoint
cannot run code. Every failure is an :class:`~weaksup.errors.InputError` with one line
naming the file and the first problem found.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from weaksup.errors import InputError, first_line

WRAPPER_KEYS = ("state_dict", "model")
KEY_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}" if first_line(exc) else type(exc).__name__


def load_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, quietly: a file that holds Python
    objects other than tensors and containers (a raw pickle) is refused in one line, without
    torch's warnings, and never runs code; an unreadable one names the first problem."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol 4 ...": the one-line error says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        with open(path, "rb") as fh:
            raw_pickle = fh.read(1) == b"\x80"  # pickle's PROTO opcode; a torch.save file is a zip ("PK")
        if raw_pickle and "weights only" in str(exc).lower():
            raise InputError(
                f"{path}: holds Python objects, not only tensors (a raw pickle?); checkpoints are "
                "loaded with weights_only=True and never run code from the file"
            ) from None
        raise InputError(f"{path}: not a readable torch checkpoint (truncated, or not a torch.save file)") from None
    except Exception as exc:  # zip/EOF errors
        raise InputError(f"{path}: not a readable torch checkpoint (truncated?): {_first_line(exc)}") from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The name -> tensor mapping stored in a checkpoint file, unwrapped and un-prefixed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for bad headers
            raise InputError(f"{path}: not a readable safetensors file (truncated?): {_first_line(exc)}") from None
    else:
        obj = load_torch_file(path)
    return _unwrap(obj, path)


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    while isinstance(obj, Mapping) and not _is_tensor_map(obj):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(f"{path}: not a checkpoint: holds {type(obj).__name__}, not a name -> tensor mapping")
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise InputError(f"{path}: not a checkpoint: entry {key!r} is a {type(value).__name__}, not a tensor")
        name = str(key)
        for prefix in KEY_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
        state[name] = value
    return state


def _is_tensor_map(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def check_fits(model: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """One line naming the first key or shape that differs between a model and a state dict."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise InputError(
                f"{source}: checkpoint is for another architecture: no {key!r} (model {tuple(tensor.shape)})"
            )
        if state[key].shape != tensor.shape:
            raise InputError(
                f"{source}: checkpoint is for another architecture: {key!r} has shape {tuple(state[key].shape)}"
                f", the model needs {tuple(tensor.shape)}"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise InputError(
            f"{source}: checkpoint is for another architecture: unexpected {extra[0]!r} ({len(extra)} unexpected keys)"
        )


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a checkpoint into ``model`` (strictly: every key, every shape); returns the model."""
    state = read_state_dict(path)
    check_fits(model, state, source=str(path))
    model.load_state_dict(state)
    return model


def export_safetensors(model_or_state_dict: nn.Module | Mapping[str, Tensor], path: str | os.PathLike[str]) -> Path:
    """Write a model's (or a state dict's) tensors as safetensors, atomically.

    Tensors are copied to contiguous CPU memory first: safetensors refuses shared or
    strided storage, which state dicts often have.
    """
    from safetensors.torch import save_file

    state = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else model_or_state_dict
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def convert_weights(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], arch: str, num_classes: int | None = None
) -> dict[str, Any]:
    """Check a checkpoint against ``arch`` and write it as safetensors; returns a summary.

    ``num_classes`` defaults to the rows of the checkpoint's ``fc.weight``. Every key and
    shape is checked against ``arch`` (built on the meta device, so this is instant even
    for 152 layers) before anything is written, so ``dst`` loads into
    ``build_model(arch, num_classes=...)``.
    """
    from weaksup.models.counting import count_parameters
    from weaksup.models.video_resnet import build_model

    state = read_state_dict(src)
    if num_classes is None:
        fc = state.get("fc.weight")
        if fc is None or fc.dim() != 2:
            raise InputError(f"{src}: no 2-D fc.weight to infer num_classes from; pass num_classes")
        num_classes = int(fc.shape[0])
    with torch.device("meta"):  # only the shapes are needed to check the fit
        skeleton = build_model(arch, num_classes=num_classes)
    check_fits(skeleton, state, source=str(src))
    out = export_safetensors(state, dst)
    return {
        "arch": arch,
        "num_classes": num_classes,
        "tensors": len(state),
        "parameters": count_parameters(skeleton),
        "src": str(src),
        "dst": str(out),
        "bytes": out.stat().st_size,
    }
