"""The Ray engine: a Ray session, bounded Ray tasks, and Ray Data actor pools.

Bulk jobs (:mod:`weaksup.bulk`), match and dedupe's search run as plain Ray tasks
(:func:`ray_tasks`): the driver hands out small block descriptions a window at a time,
each task reads its own rows and writes its own parts, and only small results come back.
A task whose node dies is run again elsewhere. ``extract`` keeps a Ray Data actor pool
(:func:`ray_map`): each actor loads the network once.

Ray is an optional extra (``pip install "weaksup[ray]"``). Without ``address`` a private
local Ray with ``workers`` CPUs is started (and stopped again); with one, the job joins
that cluster (``auto`` or ``ray://host:10001``) and its CPUs decide the width.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from weaksup.errors import InputError

ENGINES = ("local", "ray")


def check_engine(engine: str, ray_address: str | None = None) -> None:
    """Reject an unknown engine, or the Ray engine when Ray is not installed, with one line."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    if ray_address and engine != "ray":
        raise InputError("--ray-address needs --engine ray")
    if engine == "ray":
        try:
            importlib.import_module("ray.data")
        except ImportError:
            raise InputError('the ray engine needs Ray Data: pip install "weaksup[ray]"') from None


@contextlib.contextmanager
def ray_session(*, address: str | None, workers: int) -> Iterator[None]:
    """Connect to ``address`` or start a local Ray with ``workers`` CPUs; leave Ray as found."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=max(1, workers), **kwargs)  # never a stray cluster on this machine
    try:
        yield
    finally:
        ray.shutdown()
        # Ray's leftover objects are freed here, not in a process this one forks later (a local
        # pool after a Ray job): a gRPC client freed in a forked child segfaults it
        gc.collect()


def ray_map(
    items: list[dict],
    fn: Callable[[pa.Table], pa.Table] | type,
    *,
    batch_size: int,
    workers: int,
    address: str | None,
    constructor_kwargs: dict[str, Any] | None = None,
) -> Iterator[pa.Table]:
    """``map_batches`` of ``fn`` over ``items`` in batches of ``batch_size``; output blocks in completion order.

    A class with ``constructor_kwargs`` runs as a pool of ``workers`` actors (state such as a
    network is built once per actor); a function runs as tasks, ``workers`` at a time
    locally, as many as the cluster has CPUs with ``address``.
    """
    import ray.data

    if not items:
        return
    n_batches = -(-len(items) // batch_size)
    width = max(1, min(workers, n_batches))
    with ray_session(address=address, workers=workers):
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        if constructor_kwargs is not None:
            compute = ray.data.ActorPoolStrategy(size=width)
        else:
            compute = ray.data.TaskPoolStrategy(size=None if address else width)
        ds = ray.data.from_items(items, override_num_blocks=n_batches).map_batches(
            fn,
            batch_size=batch_size,
            batch_format="pyarrow",
            zero_copy_batch=True,
            num_cpus=1,
            compute=compute,
            **({"fn_constructor_kwargs": constructor_kwargs} if constructor_kwargs is not None else {}),
        )
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if block.num_rows:
                yield block


def cluster_cpus() -> int:
    """CPUs of the Ray cluster this process is connected to (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def ray_tasks(
    fn: Callable[..., Any],
    args: Iterable[Any],
    *,
    shared: Any = None,
    retries: int = 3,
    max_in_flight: int | None = None,
) -> Iterator[Any]:
    """``fn(arg)`` (or ``fn(shared, arg)``) for every ``arg`` as Ray tasks, results in completion order.

    Runs inside a :func:`ray_session`. ``args`` are read lazily and at most ``max_in_flight``
    tasks (default: twice the cluster's CPUs) are out at once, so the driver holds a window
    of small task descriptions and their small results, never the job's rows. ``shared``
    (an index, a label table) is put into the object store once and every task reads that
    one copy. A task whose worker or node dies is run again (``retries`` times), so ``fn``
    must be safe to repeat: write atomically, skip what is already written.
    """
    import ray

    remote = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(fn)
    shared_ref = ray.put(shared) if shared is not None else None
    window = max_in_flight or 2 * cluster_cpus()
    pending: list[Any] = []
    it = iter(args)
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < window:
            try:
                arg = next(it)
            except StopIteration:
                exhausted = True
                break
            pending.append(remote.remote(shared_ref, arg) if shared_ref is not None else remote.remote(arg))
        if not pending:
            break
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])
