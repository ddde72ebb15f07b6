"""Worker processes that die with their parent.

A ``kill -9`` of a job leaves its process-pool workers (and DataLoader workers) running for
ever unless they notice. :func:`die_with_parent`, run first in every worker, asks Linux to
SIGKILL the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``), exits at once if the
parent is already gone, and starts a small watchdog thread that exits the worker when it is
re-parented or when the creating process (``parent_pid``, which differs from the direct
parent under the forkserver start method) is gone: this covers other systems too.
:func:`make_pool` is a ``ProcessPoolExecutor`` whose workers do this.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 1.0


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no libc symbol (unusual builds): the watchdog remains
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parent_gone(direct: int, parent_pid: int) -> bool:
    now = os.getppid()
    if now != direct:  # re-parented: the direct parent died
        return True
    return parent_pid != direct and not _alive(parent_pid)


def _watch(direct: int, parent_pid: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if _parent_gone(direct, parent_pid):
            os._exit(1)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this (worker) process die when its parent dies.

    ``parent_pid`` is the pid of the process that created the pool (pass ``os.getpid()``
    from there); without it the direct parent as of now is watched. If the expected parent
    is already gone (it died before this ran), the worker exits at once.
    """
    _set_pdeathsig()
    direct = os.getppid()
    expected = direct if parent_pid is None else parent_pid
    if expected != direct and not _alive(expected):  # gone before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(direct, expected), name="weaksup-parent-watch", daemon=True).start()


def _init_worker(parent_pid: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def make_pool(
    workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = (), **kwargs: Any
) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes that die with this process
    (``initializer``/``initargs`` run after :func:`die_with_parent`; other keywords as for
    ``ProcessPoolExecutor``)."""
    return ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(os.getpid(), initializer, initargs), **kwargs
    )
