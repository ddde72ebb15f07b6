"""Shared CLI plumbing: one-line errors with exit code 2 (bad input and OS errors), and the console."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Annotated, Any, Callable, Iterator, NoReturn, Optional, TypeVar

import typer
import typer.core
from rich.console import Console

from weaksup.errors import InputError, os_error_message
from weaksup.locks import output_lock

EngineOption = Annotated[
    str,
    typer.Option(
        help="Where the work runs: local (this machine) or ray (Ray tasks, on a private Ray or the cluster of "
        '--ray-address; pip install "weaksup[ray]").'
    ),
]
RayAddressOption = Annotated[
    Optional[str],
    typer.Option(
        help="With --engine ray: join this Ray cluster (auto, ray://HOST:10001) instead of starting a local one."
    ),
]

ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
#: --resume/--no-resume of the bulk jobs (probe, fingerprint): parts stamped by input rows and settings.
PartsResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume",
        help=(
            "Continue from what an earlier run of the same input and settings left in OUT (--no-resume: delete "
            "the parts of an earlier run and start over)."
        ),
    ),
]
ResumeStrictOption = Annotated[
    bool,
    typer.Option(
        "--resume-strict",
        help="Stop (exit 2) when parts of an earlier run do not match this job's input rows or "
        "settings, instead of recomputing them with a warning.",
    ),
]

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")


def fail(message: object) -> NoReturn:
    """One line ``weaksup: error: MESSAGE`` on stderr, then exit code 2."""
    text = " ".join(str(message).split())
    err_console.print(f"weaksup: error: {text}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


def special_file_argument(tokens: list[str]) -> str | None:
    """The first command-line value naming an existing FIFO, device or socket, in words.

    Any reader of such a path blocks for ever (a FIFO) or never ends (``/dev/zero``), and
    writing to one is no better; stages check their inputs, but this guard covers every path
    option of every command in one place, before any work."""
    from weaksup.uris import special_file_kind

    for token in tokens:
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        kind = special_file_kind(value)
        if kind is not None:
            return f"{value}: is {kind}, not a regular file or folder"
    return None


class WeaksupGroup(typer.core.TyperGroup):
    """The command group: refuses special files among the arguments before parsing them."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        problem = special_file_argument(list(args))
        if problem is not None:
            fail(problem)
        return super().parse_args(ctx, args)


def declared_out(args: tuple, kwargs: dict) -> Any:
    """The ``out`` of the first argument that has one (a command's config), else None."""
    for value in (*args, *kwargs.values()):
        out = getattr(value, "out", None)
        if isinstance(out, (str, os.PathLike)):
            return out
    return None


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a library function; bad input (InputError) and the OS errors a user can act on
    (full disk, permission denied, read-only file system, a folder or file in the way, a
    missing path) become one line on stderr naming the path, and exit code 2.

    When an argument is a config with an ``out`` (the command's ``--out``), the call holds
    that output's one-writer lock (:func:`weaksup.locks.output_lock`): a second job on the
    same output exits 2 with "OUT is being written by another weaksup job (pid N)"."""
    try:
        with output_lock(declared_out(args, kwargs)):
            return fn(*args, **kwargs)
    except InputError as exc:
        fail(exc)
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        fail(message)


NOTHING_DONE_EXIT = 3  # the job ran and wrote its output, but did nothing: every row rejected, or none selected

MaxRejectFractionOption = Annotated[
    float,
    typer.Option(
        help="Stop (exit 1) when more than this fraction of the clips drawn so far failed to decode, checked after "
        "the first 100; a step with no decodable clip always stops. Not part of the run: may change on resume."
    ),
]

AllowEmptyOption = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Exit 0 even when nothing was done (every row rejected or none "
        "selected); otherwise that ends with a warning and exit code 3.",
    ),
]


def nothing_done(message: str | None, allow_empty: bool) -> None:
    """When ``message`` says the job did nothing: one warning line on stderr, then exit code 3
    unless ``allow_empty`` (the outputs are already written; only the exit code differs)."""
    if message is None:
        return
    text = " ".join(message.split())
    err_console.print(f"weaksup: warning: {text}", markup=False, highlight=False, soft_wrap=True)
    if not allow_empty:
        raise typer.Exit(NOTHING_DONE_EXIT)


def run_locked(out: Any, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`run` holding the one-writer lock of ``out``: for a command whose job is a
    closure (no config argument with an ``out`` for :func:`run` to find)."""

    def locked() -> T:
        with output_lock(out):
            return fn(*args, **kwargs)

    return run(locked)


def deprecated_option(old: str, new: str) -> None:
    """One warning line for an option renamed this release: the old name still works, once more."""
    err_console.print(
        f"weaksup: warning: {old} is deprecated and goes in the next release; use {new}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


#: The count options' old name: --videos now always names a table; a count is --num-videos.
OldVideosCountOption = Annotated[Optional[int], typer.Option("--videos", hidden=True, help="Deprecated: --num-videos.")]


#: Context settings of a command whose positional form is deprecated: the old positionals
#: arrive in ctx.args (usage and help show only the options).
OLD_POSITIONALS = {"allow_extra_args": True}


def num_videos_of(num_videos: int | None, videos: int | None) -> int | None:
    """--num-videos, or the deprecated --videos count with a warning line."""
    if videos is not None:
        deprecated_option("--videos N (a count)", "--num-videos N")
        return videos if num_videos is None else num_videos
    return num_videos


def check_option(ok: bool, message: str) -> None:
    """Refuse a bad option value before any work: one line and exit code 2 unless ``ok``."""
    if not ok:
        fail(message)


def print_summary(title: str, summary: dict) -> None:
    """A one-screen key/value table of a job's summary."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4g}"
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Library warnings (resumed with changed settings, differing protocols) as one stderr line each."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        err_console.print(f"weaksup: warning: {message}", markup=False, highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def run_bulk_command(fn: Callable[[Any], tuple[Any, dict]], cfg: Any, title: str, allow_empty: bool) -> None:
    """A bulk command's end (probe, fingerprint, fetch): run the job with one-line warnings,
    print its summary under ``title``, and exit 3 when every video was rejected (unless allowed)."""
    from weaksup.bulk import nothing_done as why_nothing_done

    with one_line_warnings():
        result, summary = run(fn, cfg)
    print_summary(title, summary)
    nothing_done(why_nothing_done(result, "video"), allow_empty)
