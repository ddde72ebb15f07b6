"""A DataLoader set up for clip datasets: failed videos dropped, one thread per worker.

Each worker process decodes whole clips, so parallelism comes from the workers; torch's
own intra-op threads inside a worker would only fight them for the same cores (the
normalisation of a 3x8x112x112 clip gains nothing from them). Items that failed to
decode (None) are dropped by :func:`~weaksup.data.dataset.collate_skip_none`, so a batch
can be smaller than ``batch_size`` and is None when all of its items failed.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from weaksup.data.dataset import collate_skip_none
from weaksup.pools import die_with_parent


def single_thread_worker(worker_id: int, parent_pid: int | None = None) -> None:
    """``worker_init_fn``: one torch thread per worker process (the workers are the parallelism),
    and the worker dies with its parent (``parent_pid``: the loader's process; by default the
    worker's parent as it starts), see :func:`weaksup.pools.die_with_parent`."""
    die_with_parent(parent_pid)
    torch.set_num_threads(1)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    sampler: Sampler | None = None,
    shuffle: bool = False,
    seed: int = 0,
    workers: int = 2,
    pin_memory: bool = torch.cuda.is_available(),
    prefetch_factor: int = 2,
    persistent_workers: bool | None = None,
    drop_last: bool = False,
    multiprocessing_context: Any = None,
) -> DataLoader:
    """A DataLoader over a clip dataset with :func:`collate_skip_none` and single-threaded workers.

    ``shuffle`` (without a ``sampler``) draws the order from a generator seeded by ``seed``,
    so the order is reproducible; a sampler (e.g. DistributedSampler) takes precedence.
    ``persistent_workers`` defaults to True whenever there are workers: processes that live
    across epochs keep their imports and decoder setup, and the dataset's shared epoch
    counter still reaches them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if sampler is not None and shuffle:
        raise ValueError("give either a sampler or shuffle=True, not both")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    extra: dict[str, Any] = {}
    if workers > 0:
        extra.update(
            prefetch_factor=prefetch_factor,
            persistent_workers=True if persistent_workers is None else persistent_workers,
            worker_init_fn=functools.partial(single_thread_worker, parent_pid=os.getpid()),
            multiprocessing_context=multiprocessing_context,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else False,
        generator=generator,
        num_workers=workers,
        collate_fn=collate_skip_none,
        pin_memory=pin_memory,
        drop_last=drop_last,
        **extra,
    )
