"""Paths and object-store URIs: one place that decides how an input or output is reached.

At paper scale videos and tables live in object stores (``s3://``, ``gs://``). Every
reader and writer takes a *uri*: a plain local path, a ``file://`` URI, or any fsspec URI
(``memory://``, ``s3://`` through s3fs, ``gs://`` through gcsfs, ...).

* Local paths and ``file://`` never touch fsspec (it is imported only for other schemes):
  they are opened by path, so PyAV and Arrow read local files exactly as fast as before.
* Other schemes go through fsspec. Credentials and endpoints come from fsspec's usual
  configuration (``AWS_*`` variables, ``AWS_ENDPOINT_URL`` for MinIO and the like,
  ``FSSPEC_S3_*`` variables, ``~/.config/fsspec``), the same for every stage.
* Arrow reads remote Parquet through :func:`pyarrow_filesystem`, an fsspec-backed
  ``pyarrow.fs.PyFileSystem``: always fsspec rather than pyarrow's native S3/GCS
  clients, so one configuration (endpoint, credentials, anonymous access) serves both
  PyAV and Arrow. Reads stream by byte ranges (footer, then the column chunks).
* Remote writes are atomic (:func:`upload_atomic`): object stores (S3, GCS, Azure)
  publish an object only once its upload completes (a single PUT, or the completion of a
  multipart upload), so a reader never sees half a file and the upload goes straight to
  the final name (a ``mv`` there is a second full copy, and not atomic either). Other
  fsspec filesystems get a temporary name and ``fs.mv``.

A ``pathlib.Path`` made from a URI loses a slash (``Path("s3://b/k")`` is ``s3:/b/k``;
CLI options typed ``Path`` do this): :func:`as_uri` restores it for known schemes.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePath
from typing import IO, Any, Union
from urllib.parse import unquote, urlparse

from weaksup.errors import REASON_LIMIT, InputError, first_line, one_line

PathOrUri = Union[str, "os.PathLike[str]"]

# Stores whose upload only becomes visible once complete: write straight to the final name.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oci"})
# Schemes recognised in a Path that lost its "//" even when fsspec is not installed.
_COMMON_SCHEMES = frozenset(
    {
        "file",
        "memory",
        "s3",
        "s3a",
        "gs",
        "gcs",
        "az",
        "abfs",
        "abfss",
        "adl",
        "hdfs",
        "http",
        "https",
        "hf",
        "sftp",
        "ftp",
        "oci",
    }
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_MANGLED = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):/(?!/)(.*)$", re.S)


class UnsupportedUri(ValueError):
    """A uri whose scheme no installed filesystem handles (or fsspec itself is missing)."""


def _known_schemes() -> frozenset[str]:
    try:
        from fsspec.registry import known_implementations
    except ImportError:
        return _COMMON_SCHEMES
    return _COMMON_SCHEMES | frozenset(known_implementations)


def as_uri(path: PathOrUri) -> str:
    """``path`` as a string uri; a ``Path`` built from a URI (``s3:/b/k``, also once turned
    back into a string) gets its ``//`` back when the scheme is a known filesystem's."""
    text = str(path) if isinstance(path, PurePath) else os.fspath(path)
    m = _MANGLED.match(text)
    if m and m.group(1).lower() in _known_schemes():
        kind, rest = m.groups()
        return f"{kind}:///{rest}" if kind.lower() == "file" else f"{kind}://{rest}"
    return text


def scheme(uri: PathOrUri) -> str | None:
    """The lower-cased URI scheme, or None for a plain path."""
    m = _SCHEME.match(as_uri(uri))
    return m.group(1).lower() if m else None


def is_local(uri: PathOrUri) -> bool:
    """True for plain paths and ``file://`` URIs: opened by path, without fsspec."""
    return scheme(uri) in (None, "file")


def local_path(uri: PathOrUri) -> Path:
    """The local file a uri names: a plain path (relative to the working directory) or ``file://``.

    Any other scheme raises :class:`UnsupportedUri`; test :func:`is_local` first.
    """
    text = as_uri(uri)
    kind = scheme(text)
    if kind is None:
        return Path(text)
    if kind != "file":
        raise UnsupportedUri(f"{text}: not a local path (scheme {kind!r})")
    return Path(unquote(urlparse(text).path))


def display(uri: PathOrUri) -> str:
    """How messages name an input: a plain path as pathlib writes it, a URI as given."""
    text = as_uri(uri)
    return str(Path(text)) if scheme(text) is None else text


# Text inputs (label files, label maps, pair counts) are read whole: larger ones are refused.
MAX_TEXT_BYTES = 64 << 20


def special_file_kind(path: str) -> str | None:
    """What an existing local ``path`` is when it is neither a regular file nor a folder
    ("a FIFO (named pipe)", "a character device", ...); None otherwise or when it does not exist."""
    if not path or scheme(path) not in (None, "file"):
        return None
    try:
        return _special_kind(os.stat(local_path(path)).st_mode)
    except (OSError, ValueError):
        return None


def _special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words (None for regular files and folders)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def check_input_file(uri: PathOrUri, kind: str, *, max_bytes: int | None = None, folder_ok: bool = False) -> None:
    """Refuse, with :class:`~weaksup.errors.InputError` naming the path, a local input that
    cannot be read as a ``kind`` file: missing, a folder (unless ``folder_ok``), a FIFO,
    device or socket (reading ``/dev/zero`` never ends, a FIFO blocks for ever), not
    readable, or larger than ``max_bytes``.

    Every reader checks its inputs with this before opening them. Object-store uris are not
    checked here (their readers report what the store says).
    """
    if not is_local(uri):
        return
    path = local_path(uri)
    label = display(uri)
    try:
        st = os.stat(path)  # follows symlinks: a link to /dev/zero is a device
    except FileNotFoundError:
        raise InputError(f"{label}: file not found") from None
    except NotADirectoryError:
        raise InputError(f"{label}: file not found (a part of the path is a file, not a folder)") from None
    except PermissionError:
        raise InputError(f"{label}: not readable (permission denied)") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read ({one_line(exc, with_type=False)})") from None
    if stat.S_ISDIR(st.st_mode):
        if not folder_ok:
            raise InputError(f"{label}: is a directory, expected a {kind} file")
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"{label}: folder not readable (permission denied)")
        return
    special = _special_kind(st.st_mode)
    if special is not None:
        raise InputError(f"{label}: is {special}, not a regular file; expected a {kind} file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{label}: not readable (permission denied)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputError(f"{label}: {_size(st.st_size)}, more than the {_size(max_bytes)} limit for a {kind} file")


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_input_bytes(uri: PathOrUri, kind: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a small text input (a label file, a label map), checked with
    :func:`check_input_file` first and read at most ``max_bytes`` (default
    :data:`MAX_TEXT_BYTES`; +1 to notice more): a file that grows while read, or a remote
    one, cannot make the read unbounded."""
    max_bytes = MAX_TEXT_BYTES if max_bytes is None else max_bytes
    check_input_file(uri, kind, max_bytes=max_bytes)
    with open_input(uri, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{display(uri)}: more than the {_size(max_bytes)} limit for a {kind} file")
    return data


def url_to_fs(uri: PathOrUri) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for ``uri`` (``fsspec.core.url_to_fs``).

    A missing fsspec, an unknown scheme or a store whose optional package (s3fs, gcsfs)
    is not installed raise :class:`UnsupportedUri` with a one-line reason.
    """
    text = as_uri(uri)
    try:
        import fsspec.core
    except ImportError:
        raise UnsupportedUri(
            f"{text}: reading {scheme(text) or 'this'}:// URIs needs fsspec (pip install 'weaksup[remote]')"
        ) from None
    try:
        return fsspec.core.url_to_fs(text)
    except ImportError as exc:
        first = first_line(exc) or type(exc).__name__
        raise UnsupportedUri(f"{text}: the {scheme(text)}:// store needs an optional package ({first})") from None
    except ValueError as exc:
        first = first_line(exc) or type(exc).__name__
        raise UnsupportedUri(f"{text}: unsupported uri scheme {scheme(text)!r} ({first})") from None


def open_input(uri: PathOrUri, mode: str = "rb") -> IO[Any]:
    """Open ``uri`` for reading (a local file by path; a remote one through fsspec)."""
    if is_local(uri):
        return open(local_path(uri), mode)  # noqa: SIM115 - the caller closes it
    fs, path = url_to_fs(uri)
    return fs.open(path, mode)


def unreachable_reason(exc: BaseException) -> str | None:
    """Why the store could not be reached, when fsspec's "not found" hides a network error
    (HTTP's ``info`` raises FileNotFoundError for a refused connection); None when the file
    is really missing (no cause, or an HTTP 404)."""
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        status = getattr(seen, "status", None)
        if status == 404 or isinstance(seen, FileNotFoundError):
            return None
        if isinstance(seen, (ConnectionError, TimeoutError)) or type(seen).__module__.split(".")[0] == "aiohttp":
            # The whole text, not errors.one_line's strerror: aiohttp's ClientConnectorError is an
            # OSError whose strerror drops the "Cannot connect to host HOST:PORT" that str() gives.
            text = " ".join(str(seen).split())[:REASON_LIMIT]
            return f"{type(seen).__name__}: {text}" if text else type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


def exists(uri: PathOrUri) -> bool:
    """Whether ``uri`` names an existing file or folder (prefix, in object stores).

    A store that cannot be reached raises ConnectionError (HTTP's ``exists`` would say
    False, so a refused connection would read as "file not found").
    """
    if is_local(uri):
        return local_path(uri).exists()
    fs, path = url_to_fs(uri)
    if _protocols(fs) & {"http", "https"}:
        try:
            fs.info(path)
        except FileNotFoundError as exc:
            reason = unreachable_reason(exc)
            if reason is not None:
                raise ConnectionError(reason) from None
            return False
        return True
    return bool(fs.exists(path))


def isdir(uri: PathOrUri) -> bool:
    """Whether ``uri`` names a folder (a prefix holding objects, in object stores)."""
    if is_local(uri):
        return local_path(uri).is_dir()
    fs, path = url_to_fs(uri)
    return bool(fs.isdir(path))


def join(uri: PathOrUri, name: str) -> str:
    """``uri/name``; a plain path stays a plain path."""
    text = as_uri(uri)
    if scheme(text) is None:
        return str(Path(text) / name)
    return text.rstrip("/") + "/" + name


def basename(uri: PathOrUri) -> str:
    """The last component of ``uri`` (``b.parquet`` of ``s3://a/b.parquet``)."""
    text = as_uri(uri)
    if scheme(text) is None:
        return Path(text).name
    return text.rstrip("/").rsplit("/", 1)[-1]


def sibling(uri: PathOrUri, name: str) -> str:
    """The uri of ``name`` in the folder of ``uri`` (``Path.with_name`` for URIs)."""
    text = as_uri(uri)
    if scheme(text) is None:
        return str(Path(text).with_name(name))
    head = text.rstrip("/")
    if head.count("/") > 2:
        return head.rsplit("/", 1)[0] + "/" + name
    return head[: head.index("://") + 3] + name  # memory://a -> memory://name


def pyarrow_filesystem(uri: PathOrUri) -> tuple[Any, str]:
    """(``pyarrow.fs.FileSystem``, path inside it) for Arrow readers and writers.

    Local uris get pyarrow's own ``LocalFileSystem`` (memory-mapped, multithreaded reads);
    others an fsspec-backed ``PyFileSystem`` (see the module docstring for why not
    pyarrow's native S3/GCS clients).
    """
    import pyarrow.fs as pafs

    if is_local(uri):
        return pafs.LocalFileSystem(), str(local_path(uri))
    fs, path = url_to_fs(uri)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _protocols(fs: Any) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def upload_atomic(local: PathOrUri, uri: PathOrUri) -> None:
    """Copy the local file ``local`` to the remote ``uri`` so that it appears whole or not at all.

    Object stores publish an upload only once it completes, so it goes straight to the
    final name; any other fsspec filesystem gets ``.NAME.tmp-PID`` beside it, then ``fs.mv``.
    """
    fs, path = url_to_fs(uri)
    parent = path.rstrip("/").rsplit("/", 1)[0] if "/" in path.rstrip("/") else ""
    if _protocols(fs) & ATOMIC_PUT_PROTOCOLS:
        fs.put_file(str(local), path)
        return
    if parent:
        fs.makedirs(parent, exist_ok=True)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    tmp = f"{parent}/.{name}.tmp-{os.getpid()}" if parent else f".{name}.tmp-{os.getpid()}"
    try:
        fs.put_file(str(local), tmp)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
