"""Training checkpoints: atomic, pruned, loadable with ``weights_only=True``.

A checkpoint is one ``torch.save``d dict holding only tensors, numbers, strings, lists and
dicts (so ``torch.load(weights_only=True)`` reads it and a checkpoint can never run code):
model, optimizer, grad scaler, step, epoch, sampler state, the RNG states of every
process (Python, NumPy, torch CPU and CUDA), the config and the arch. It is written
under a temporary name and renamed, so a kill never leaves a half-written file under a
checkpoint name; should one still be unreadable (a full disk, a copy cut short), loading
warns and falls back to the one before.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weaksup.errors import InputError, first_line
from weaksup.models.weights import load_torch_file
from weaksup.outputs import atomic_path

FORMAT = "weaksup-pretrain/1"
_NAME = re.compile(r"step_(\d+)\.pt")


class CheckpointWarning(UserWarning):
    """A checkpoint could not be read and an older one is used instead."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:09d}.pt"


def step_of(path: Path) -> int:
    m = _NAME.fullmatch(path.name)
    if m is None:
        raise ValueError(f"{path}: not a checkpoint name")
    return int(m.group(1))


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest (lowest step) first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name)), key=step_of)


def capture_rng() -> dict[str, Any]:
    """This process's RNG states as plain lists and tensors (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["name"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(folder: Path, state: dict[str, Any], *, step: int, keep: int) -> Path:
    """Write ``state`` as ``folder/step_NNNNNNNNN.pt`` atomically and keep only the last ``keep``.

    Checkpoints of later steps are removed first: a run only ever saves beyond what it
    resumed from, so they are unreadable ones it skipped, and must not outlive good ones.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(step)
    tmp = atomic_path(path)
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    for stale in list_checkpoints(folder):
        if step_of(stale) > step:
            stale.unlink(missing_ok=True)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read one checkpoint on the CPU with ``weights_only=True``; a foreign file raises ValueError."""
    state = load_torch_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"not a weaksup pre-training checkpoint (format {FORMAT!r} expected)")
    return state


def load_latest(folder: Path, *, arch: str) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint in ``folder`` (None when there is none).

    An unreadable one is skipped with a warning; a checkpoint of another arch is bad input,
    since continuing would silently train a different model into the same folder.
    """
    for path in reversed(list_checkpoints(folder)):
        try:
            state = load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle, foreign file: all mean "use an older one"
            reason = first_line(exc).split(". ")[0] or type(exc).__name__  # torch's first sentence, not its advice
            warnings.warn(
                f"{path}: unreadable checkpoint ({reason}); trying the previous one", CheckpointWarning, stacklevel=2
            )
            continue
        if state.get("arch") != arch:
            raise InputError(
                f"{path}: checkpoint is for arch {state.get('arch')!r}, this run uses {arch!r} "
                "(use --no-resume or another --out)"
            )
        return state, path
    return None


def remove_checkpoints(folder: Path) -> int:
    """Delete every checkpoint in ``folder`` (a run started with --no-resume); returns how many."""
    found = list_checkpoints(folder)
    for path in found:
        path.unlink(missing_ok=True)
    return len(found)
