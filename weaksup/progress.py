"""Progress bars of the long jobs: one look everywhere (rich), silent when disabled."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn


def count_progress(total: int | None, enabled: bool, desc: str) -> Progress:
    """A bar counting items (rows, videos) toward ``total``; add a task with ``bar.add_task``."""
    del total  # callers pass it to add_task; kept so the call reads like the job it tracks
    return Progress(TextColumn(f"[bold]{desc}"), BarColumn(), MofNCompleteColumn(), disable=not enabled)
