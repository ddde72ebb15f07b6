"""Progress bars of the long jobs: one look everywhere (rich), silent when disabled.

Every bar of the package is built here (``tests/test_progress.py`` fails if another module
imports rich's ``Progress``), so that all jobs show the same columns in the same order.
"""

from __future__ import annotations

from typing import Sequence

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def count_progress(enabled: bool, desc: str) -> Progress:
    """A bar counting items (rows, videos); the caller adds its task, with its total, by ``bar.add_task``."""
    return Progress(TextColumn(f"[bold]{desc}"), BarColumn(), MofNCompleteColumn(), disable=not enabled)


class _RateColumn(ProgressColumn):
    """Items per second: rich's estimate over the last 30 s while running, the mean once finished;
    blank until there is one (before the second update)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", style="progress.data.speed")
        return Text(f"{speed:.1f} {self.unit}/s", style="progress.data.speed")


def job_progress(
    *,
    enabled: bool,
    desc: str,
    unit: str = "items",
    rate: bool = True,
    fields: Sequence[str] = (),
) -> Progress:
    """The bar of a long job (bulk jobs, pretrain, extract, shard, dedupe, synth-corpus), one look for all:
    ``desc``, the bar, done/total ``unit``, the rate (``unit``/s; ``rate=False`` where the job shows
    its own, as pretrain's clips/s), the job's own ``fields``, the time elapsed and the time left.

    ``fields`` are rich text templates over the task's fields, e.g. ``"loss {task.fields[loss]:.4f}"``;
    the caller gives their first values to ``bar.add_task`` and new ones to ``bar.update``.
    Disabled (``enabled`` false: ``--no-progress``, a worker rank), the bar prints nothing.
    """
    columns: list[str | ProgressColumn] = [TextColumn(f"[bold]{escape(desc)}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(escape(unit)))
    if rate:
        columns.append(_RateColumn(unit or "items"))
    columns += [TextColumn(f) for f in fields]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, disable=not enabled)
