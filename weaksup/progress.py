"""Progress bars of the long jobs: one look everywhere (rich), silent when disabled."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn


def count_progress(enabled: bool, desc: str) -> Progress:
    """A bar counting items (rows, videos); the caller adds its task, with its total, by ``bar.add_task``."""
    return Progress(TextColumn(f"[bold]{desc}"), BarColumn(), MofNCompleteColumn(), disable=not enabled)
