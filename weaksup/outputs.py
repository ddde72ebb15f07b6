"""Atomic outputs: temporary names, renames, whole sets of outputs, leftovers of killed runs.

Every final output is written under a temporary sibling name (``.NAME.tmp-PID``) and renamed
over ``NAME`` once complete, so a killed job never leaves a half-written file under the final
name. :func:`output_set` extends that to a command's several outputs (a table, its side
tables, its summary): inside it, renames wait until the block ends without error, so the
set appears whole or not at all (a full disk while writing the third table leaves none of
them). Temporary files of a process that no longer runs are deleted by the next writer of
the same name (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from weaksup import uris
from weaksup.errors import InputError, first_line, one_line
from weaksup.uris import PathOrUri

_TEMP_PID = re.compile(r"^\.tmp-(\d+)")


@dataclass
class _PendingSet:
    """Renames (local) and uploads (remote) that wait for the end of an :func:`output_set`."""

    renames: list[tuple[Path, Path]] = field(default_factory=list)
    uploads: list[tuple[Path, str]] = field(default_factory=list)
    folder: tempfile.TemporaryDirectory | None = None

    def upload_folder(self) -> Path:
        if self.folder is None:
            self.folder = tempfile.TemporaryDirectory(prefix="weaksup-upload-")
        return Path(self.folder.name)


_PENDING: ContextVar[_PendingSet | None] = ContextVar("weaksup_pending_outputs", default=None)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the ``.NAME.tmp-PID…`` siblings of ``path`` whose process is gone (left by a
    killed run); returns what was removed. Temporaries of live processes are kept."""
    removed: list[Path] = []
    prefix = f".{path.name}"
    try:
        candidates = list(path.parent.glob(glob.escape(prefix) + ".tmp-*"))
    except OSError:
        return removed
    for p in candidates:
        m = _TEMP_PID.match(p.name[len(prefix) :])
        if m is None or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        try:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def require_local_output(*paths: str | os.PathLike[str] | None) -> None:
    """Refuse, in one line, an object-store uri for an output that this stage writes only locally
    (folders of parts, streamed Parquet writers, checkpoints); None is skipped."""
    for path in paths:
        if path is not None and not uris.is_local(path):
            raise InputError(
                f"{uris.as_uri(path)}: this output must be a local path "
                "(write it locally, then copy it to the object store)"
            )


def out_stem(out: PathOrUri) -> str:
    """The name of ``out`` less a final ``.parquet``: how the files written beside it begin."""
    name = uris.basename(out)
    return name[: -len(".parquet")] if name.endswith(".parquet") else name


def side_path(out: PathOrUri, suffix: str, *, whole_name: bool = False, any_extension: bool = False) -> Path | str:
    """A file a command keeps beside its output ``out``: ``OUT-stem`` + ``suffix``
    (``counts.parquet`` -> ``counts.summary.json``, ``counts.rejects.parquet``), or with
    ``whole_name`` the whole name + ``suffix`` (``features.parquet.parts``, ``OUT.lock``).
    ``any_extension`` drops whatever extension ``out`` has (the bulk jobs' and sample's
    summaries: ``probe.pq`` -> ``probe.summary.json``), not only ``.parquet``.
    A Path for a local ``out``, else a uri in the same folder."""
    if whole_name:
        stem = uris.basename(out)
    elif any_extension:
        stem = Path(uris.basename(out)).stem
    else:
        stem = out_stem(out)
    name = stem + suffix
    if uris.is_local(out):
        return uris.local_path(out).with_name(name)
    return uris.sibling(out, name)


def atomic_path(path: PathOrUri, tag: str = "") -> Path:
    """A temporary sibling of the local ``path`` (``.NAME.tmp-PID[tag]``), renamed over it once
    complete; stale temporaries of ``path`` left by killed runs are deleted first.

    Writers that stream into a local file and rename it themselves (with
    :func:`commit_output`) cannot write to an object store: a remote uri is bad input here
    (use :func:`atomic_output`, which uploads).
    """
    require_local_output(path)
    path = uris.local_path(path)
    remove_stale_temps(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{tag}")


def prepare_output(path: PathOrUri) -> Path:
    """Create the folder of a local output ``path`` and return its temporary name.

    An output path that is a folder, or whose folder cannot be made (a file in the way, no
    permission), is bad input: InputError naming the path, not a traceback.
    """
    require_local_output(path)
    path = uris.local_path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an output file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{path}: cannot create output folder {path.parent} ({one_line(exc, with_type=False)})"
        ) from None
    return atomic_path(path)


def commit_output(tmp: Path, final: Path) -> None:
    """Rename the complete temporary ``tmp`` over ``final``, now or, inside an
    :func:`output_set`, when the set ends without error."""
    pending = _PENDING.get()
    if pending is None:
        os.replace(tmp, final)
        return
    pending.renames = [(t, f) for t, f in pending.renames if f != final or t == tmp]
    if (tmp, final) not in pending.renames:
        pending.renames.append((tmp, final))


@contextmanager
def output_set() -> Iterator[None]:
    """The outputs written inside the block appear together when it ends, or none of them.

    Every :func:`atomic_output` / :func:`commit_output` inside waits; on success the renames
    (and uploads) run in the order the outputs were written, so a summary written last also
    lands last and marks the set complete. On any error the temporaries are deleted and
    earlier versions of the outputs stay as they were. Renames need no space, so a full disk
    stops the set before anything is renamed. A nested set belongs to its own block.
    """
    pending = _PendingSet()
    token = _PENDING.set(pending)
    ok = False
    try:
        yield
        ok = True
    finally:
        _PENDING.reset(token)
        try:
            if ok:
                for tmp, final in pending.renames:
                    os.replace(tmp, final)
                for tmp, uri in pending.uploads:
                    uris.upload_atomic(tmp, uri)
        finally:
            for tmp, _ in pending.renames:
                if tmp.exists():
                    tmp.unlink()
            if pending.folder is not None:
                pending.folder.cleanup()


@contextmanager
def separate_job() -> Iterator[None]:
    """Outputs written inside commit on their own, outside any enclosing :func:`output_set`: a
    sub-job (fingerprinting, a part of a partitioned job) whose outputs the caller reads back."""
    token = _PENDING.set(None)
    try:
        yield
    finally:
        _PENDING.reset(token)


@contextmanager
def atomic_output(path: PathOrUri) -> Iterator[Path]:
    """A temporary local file to write for ``path``: renamed (or uploaded) to ``path`` when the
    block ends without error (or when the enclosing :func:`output_set` does), deleted otherwise.
    Every writer of final outputs goes through it.

    Local paths and ``file://`` get a temporary sibling and ``os.replace``. Remote uris
    (``s3://``, ``gs://``, ``memory://``, ...) get a file in a local temporary folder,
    uploaded on success with :func:`weaksup.uris.upload_atomic` (whole or not at all), so
    every writer keeps writing a plain local file.
    """
    if uris.is_local(path):
        local = uris.local_path(path)
        tmp = prepare_output(local)
        try:
            yield tmp
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise
        try:
            commit_output(tmp, local)
        finally:
            if _PENDING.get() is None and tmp.exists():
                tmp.unlink()
        return
    uri = uris.as_uri(path)
    try:
        is_dir = uris.isdir(uri)
    except uris.UnsupportedUri as exc:
        raise InputError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - credentials, network: one line naming the uri
        raise InputError(f"{uri}: cannot reach ({type(exc).__name__}: {first_line(exc)})") from None
    if is_dir:
        raise InputError(f"{uri}: is a directory, expected an output file path")
    pending = _PENDING.get()
    if pending is not None:
        tmp = pending.upload_folder() / f"{len(pending.uploads)}-{uris.basename(uri)}"
        yield tmp
        pending.uploads.append((tmp, uri))
        return
    with tempfile.TemporaryDirectory(prefix="weaksup-upload-") as folder:
        tmp = Path(folder) / f".{uris.basename(uri)}.tmp-{os.getpid()}"
        yield tmp
        uris.upload_atomic(tmp, uri)
