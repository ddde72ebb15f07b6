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

:class:`ShardSampler` is the same sampler for clips in tar shards: its epoch order keeps
each shard's clips together (shards permuted, clips shuffled inside windows of the shard's
file order) and every process takes one contiguous slice of it, so a process reads few
shards, each front to back. It is still a pure function of ``(seed, epoch)`` and a position.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator

import numpy as np
from torch.utils.data import Sampler

from weaksup.errors import InputError


class ResumableSampler(Sampler[int]):
    """This process's indices of one epoch, from ``position`` on."""

    order = "table"  # what the epoch order is made of; a checkpoint of another order does not resume here

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
            if (
                weights.shape != (num_items,)
                or not np.all(np.isfinite(weights))
                or np.any(weights < 0)
                or weights.sum() <= 0
            ):
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
            "order": self.order,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` stopped; another table is bad input, another world size a warning."""
        if int(state["num_items"]) != self.num_items:
            raise InputError(
                f"checkpoint was trained on a table of {state['num_items']} rows, this one has {self.num_items} "
                "(use --no-resume or another --out)"
            )
        if state.get("order", "table") != self.order:
            raise InputError(
                f"checkpoint was trained on a {state.get('order', 'table')} order, this run reads {self.order} "
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


DEFAULT_WINDOW = 256  # clips shuffled together inside a shard (WebDataset-style local shuffle)


class ShardSampler(ResumableSampler):
    """:class:`ResumableSampler` for clips stored in shards, read (mostly) sequentially.

    ``shard_of[i]`` is the shard of item ``i``; items of a shard are in file order (their
    indices increase with their byte offset). Each epoch permutes the shards with
    ``(seed, epoch)`` and, inside every shard, shuffles its clips within consecutive windows of
    ``window`` clips of file order (None: the whole shard), so the order walks each shard front
    to back, window by window. The order is padded by wrapping to a multiple of the world size
    and each rank takes one contiguous slice (``rank * per_rank`` on), cut to whole steps as
    ResumableSampler does: equal lengths on every rank, disjoint except for the padding, and a
    rank switches shards at most once per shard of its slice. Sample weights are not supported.
    """

    order = "shards"

    def __init__(
        self,
        shard_of: np.ndarray,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        multiple_of: int = 1,
        window: int | None = DEFAULT_WINDOW,
    ) -> None:
        shard_of = np.asarray(shard_of, dtype=np.int64)
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        super().__init__(len(shard_of), seed=seed, rank=rank, world_size=world_size, multiple_of=multiple_of)
        if shard_of.min() < 0:
            raise ValueError("shard ids must be >= 0")
        self.shard_of = shard_of
        self.num_shards = int(len(np.unique(shard_of)))
        self.window = window
        # each item's window inside its shard: its position in the shard's file order // window
        by_shard = np.argsort(shard_of, kind="stable")
        sorted_shards = shard_of[by_shard]
        starts = np.flatnonzero(np.r_[True, sorted_shards[1:] != sorted_shards[:-1]])
        first = np.repeat(starts, np.diff(np.r_[starts, len(shard_of)]))
        position = np.empty(len(shard_of), np.int64)
        position[by_shard] = np.arange(len(shard_of)) - first
        self._window_of = position // window if window is not None else np.zeros(len(shard_of), np.int64)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Shards in a ``(seed, epoch)`` order, each one's clips window by window, shuffled inside windows."""
        rng = np.random.default_rng([self.seed, epoch, 0x5A4])
        top = int(self.shard_of.max()) + 1
        shard_rank = np.empty(top, np.int64)
        shard_rank[rng.permutation(top)] = np.arange(top)
        within = rng.random(self.num_items)
        return np.lexsort((within, self._window_of, shard_rank[self.shard_of])).astype(np.int64)

    def shard(self, epoch: int) -> np.ndarray:
        """This process's contiguous slice of ``epoch``'s order (padded by wrapping, whole steps)."""
        order = self.epoch_order(epoch)
        per_rank = -(-self.num_items // self.world_size)
        total = per_rank * self.world_size
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        start = self.rank * per_rank
        return order[start : start + per_rank][: self.shard_length]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "shards": self.num_shards, "window": self.window}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """As ResumableSampler's; a checkpoint of another window (another order) warns."""
        super().load_state_dict(state)
        if state.get("window", self.window) != self.window:
            warnings.warn(
                f"resuming with shuffle window {self.window} instead of {state['window']}: the rest of "
                f"epoch {state['epoch']} will not match the uninterrupted run",
                RuntimeWarning,
                stacklevel=2,
            )
