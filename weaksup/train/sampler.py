"""A deterministic, distributed, resumable sampler.

Each epoch's order is a pure function of ``(seed, epoch)``: a permutation of the table, or
(square-root sampling) ``num_items`` draws with replacement weighted by ``sample_weight``.
Every process computes the same global order and takes its own shard (``rank::world``,
padded by wrapping around so every shard has the same length, then cut to a multiple of
the per-process step so every step is full). The training loop records how many of its
shard's indices it has consumed; ``state_dict()`` holds ``(epoch, position)`` and a
resumed run continues in the middle of the epoch with exactly the indices an
uninterrupted run would have used.

The position is the loop's, not the iterator's: a DataLoader with workers pulls indices
ahead of the training step, so the loop calls :meth:`advance` for what it trained on.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator

import numpy as np
from torch.utils.data import Sampler

from weaksup.errors import InputError


class ResumableSampler(Sampler[int]):
    """This process's indices of one epoch, from ``position`` on."""

    def __init__(
        self,
        num_items: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        weights: np.ndarray | None = None,
        multiple_of: int = 1,
    ) -> None:
        if num_items < 1:
            raise InputError("sampler: the table has no rows to train on")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (num_items,) or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
                raise InputError("sampler: sample weights must be finite, non-negative, one per row, not all zero")
            weights = weights / weights.sum()
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.weights = weights
        self.multiple_of = int(multiple_of)
        self.epoch = 0
        self.position = 0
        if self.shard_length == 0:
            raise InputError(
                f"sampler: {num_items} rows over {world_size} process(es) give fewer than one step of "
                f"{multiple_of} clips per process"
            )

    @property
    def shard_length(self) -> int:
        """Indices per process per epoch: ceil(num_items / world), cut to a multiple of one step."""
        per_rank = -(-self.num_items // self.world_size)
        return per_rank // self.multiple_of * self.multiple_of

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The global order of ``epoch`` (the same on every process)."""
        rng = np.random.default_rng([self.seed, epoch, 0x5A3])
        if self.weights is not None:
            return rng.choice(self.num_items, size=self.num_items, replace=True, p=self.weights)
        order = np.arange(self.num_items, dtype=np.int64)
        rng.shuffle(order)
        return order

    def shard(self, epoch: int) -> np.ndarray:
        """This process's indices of ``epoch``: pad by wrapping to a multiple of world, take rank::world."""
        order = self.epoch_order(epoch)
        total = -(-self.num_items // self.world_size) * self.world_size
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        return order[self.rank :: self.world_size][: self.shard_length]

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        if not 0 <= position <= self.shard_length:
            raise ValueError(f"position {position} outside epoch of {self.shard_length}")
        self.epoch, self.position = int(epoch), int(position)

    def advance(self, n: int) -> None:
        """Record that the loop trained on ``n`` more of this epoch's indices."""
        self.position += int(n)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard(self.epoch)[self.position :].tolist())

    def __len__(self) -> int:
        return self.shard_length - self.position

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_items": self.num_items,
            "world_size": self.world_size,
            "weighted": self.weights is not None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` stopped; another table is bad input, another world size a warning."""
        if int(state["num_items"]) != self.num_items:
            raise InputError(
                f"checkpoint was trained on a table of {state['num_items']} rows, this one has {self.num_items} "
                "(use --no-resume or another --out)"
            )
        position = int(state["position"])
        if int(state["world_size"]) != self.world_size:
            # shards differ, so the best we can do is keep the global fraction of the epoch seen
            position = position * int(state["world_size"]) // self.world_size // self.multiple_of * self.multiple_of
            warnings.warn(
                f"resuming with {self.world_size} processes instead of {state['world_size']}: the rest of epoch "
                f"{state['epoch']} is re-sharded, so it will not match the uninterrupted run",
                RuntimeWarning,
                stacklevel=2,
            )
        self.set_epoch(int(state["epoch"]), min(position, self.shard_length))
