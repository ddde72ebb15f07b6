"""One writer per output: :func:`output_lock` on a job's ``--out``.

The lock is ``OUT.lock`` beside the output (a file or a folder alike: a file inside an output
folder could upset the checks that a folder is an earlier run's). It holds the writer's pid,
so a second job on the same output is refused with one line naming it. The lock is an
``fcntl.flock`` on that file (``filelock`` truncates the file when it tries, which would
erase the holder's pid), so the kernel releases it when its holder dies: a lock file left by
a killed job (a dead pid) is simply taken over. The file is removed when the block ends.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from weaksup import uris
from weaksup.errors import InputError
from weaksup.outputs import side_path

try:  # Linux and macOS
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, int] = {}  # lock files this process holds -> nesting depth
_held_guard = threading.Lock()


def lock_path(out: uris.PathOrUri) -> Path:
    """The lock file of a local output path: ``OUT.lock`` beside it when its folder exists;
    otherwise one in the temp folder named after the path (taking a lock must not create
    the output's folders before the job has checked its input)."""
    path = Path(os.path.abspath(uris.local_path(out)))
    if path.parent.is_dir():
        return Path(side_path(path, ".lock", whole_name=True))
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "weaksup-locks" / f"{digest}.lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _acquire(lock: Path, out: object) -> int:
    """Open and flock ``lock`` (non-blocking); InputError naming the holder's pid if taken."""
    for _ in range(20):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise InputError(f"{out} is being written by another weaksup job (pid {pid})") from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us may have removed the file between our open and our flock:
        # then we hold a lock on a file nobody else can see; start over on the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise InputError(f"{out} is being written by another weaksup job (pid unknown)")


@contextmanager
def output_lock(out: uris.PathOrUri | None) -> Iterator[None]:
    """Hold the one-writer lock of the output ``out`` for the block.

    A second holder (another process) gets :class:`InputError` "OUT is being written by
    another weaksup job (pid N)". Re-entrant within one process. ``None``, object-store
    uris and platforms without ``fcntl`` are not locked (a no-op).
    """
    if out is None or fcntl is None or not uris.is_local(out):
        yield
        return
    lock = lock_path(out)
    with _held_guard:
        if lock in _held:
            _held[lock] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[lock] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, uris.as_uri(out) if not isinstance(out, Path) else out)
    with _held_guard:
        _held[lock] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[lock]
        try:
            os.unlink(lock)  # while still holding it: nobody else can have taken it
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
