"""One exception type for bad input, so the CLI can turn it into a one-line message and exit 2;
and the one-line wording of the OS errors (full disk, permissions) that the CLI reports the same way."""

from __future__ import annotations

import errno


class InputError(Exception):
    """Bad user input: a missing/corrupt file, a malformed table, an unknown name.

    The message is one line that names the file (and line or column) and the problem.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# OS errors that are the user's situation, not a bug: reported in one line naming the path.
_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "is a directory, expected a file",
    errno.ENOTDIR: "not a directory (a file is in the way)",
    errno.EEXIST: "already exists",
    errno.ENOENT: "file or folder not found",
    errno.ENAMETOOLONG: "file name too long",
}


REASON_LIMIT = 200  # characters of an exception's text kept in a one-line reason


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most ``REASON_LIMIT`` characters), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0][:REASON_LIMIT] if text else ""


def one_line(exc: BaseException, *, with_type: bool = True, limit: int = REASON_LIMIT) -> str:
    """The one-line reason every stage writes for a failure (a rejected row's ``error``, a
    message's parenthesis): the exception's text (an OS error's ``strerror`` when it has one)
    with all whitespace collapsed to single spaces, cut at ``limit`` characters, after the
    exception's type name unless ``with_type`` is false; the bare type name when there is no text."""
    raw = getattr(exc, "strerror", None) if isinstance(exc, OSError) else None
    text = " ".join(str(raw or exc).split())[:limit]
    if not with_type:
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def os_error_message(exc: OSError) -> str | None:
    """One line for an OS error a user can act on (full disk, permissions, a file where a
    folder is needed, ...): the path(s) and the problem; None for other OS errors."""
    problem = _OS_PROBLEMS.get(exc.errno) if exc.errno is not None else None
    if problem is None:
        return None
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "an output or input"
    return " ".join(f"{where}: {problem} ({errno.errorcode.get(exc.errno, exc.errno)})".split())
