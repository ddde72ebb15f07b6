"""The progress bars: every bar is built by weaksup/progress.py (one look for all jobs), and
its builders print nothing when disabled and render their columns when enabled."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from rich.console import Console

from weaksup.progress import count_progress, job_progress

ROOT = Path(__file__).resolve().parents[1]


def _imports_rich_progress_bar(path: Path) -> bool:
    """Whether ``path`` imports rich's ``Progress`` (``from rich.progress import Progress``,
    ``import rich.progress``, or ``from rich import progress``), at any level of the module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "rich.progress":
            if any(a.name in ("Progress", "*") for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.module == "rich":
            if any(a.name == "progress" for a in node.names):
                return True
        elif isinstance(node, ast.Import) and any(a.name == "rich.progress" for a in node.names):
            return True
    return False


def test_only_progress_module_builds_rich_bars() -> None:
    own = ROOT / "weaksup" / "progress.py"
    files = [p for p in sorted((ROOT / "weaksup").rglob("*.py")) if p != own and "cli" not in p.parts]
    files += sorted((ROOT / "cli").glob("*.py"))
    offenders = [str(p.relative_to(ROOT)) for p in files if _imports_rich_progress_bar(p)]
    assert not offenders, f"build bars with weaksup.progress, not rich.progress.Progress: {offenders}"


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    for text in (
        "def f():\n    from rich.progress import BarColumn, Progress\n",
        "import rich.progress\n",
        "from rich import progress\n",
    ):
        bad.write_text(text)
        assert _imports_rich_progress_bar(bad), text
    bad.write_text("from rich.progress import ProgressColumn\n")
    assert not _imports_rich_progress_bar(bad)


def _render(bar, **task) -> str:
    """What ``bar`` prints for one task, on a plain 200-column console."""
    out = io.StringIO()
    bar.live.console = Console(file=out, width=200, force_terminal=False, color_system=None)
    with bar:
        t = bar.add_task("task", total=10, **task)
        bar.advance(t, 4)
        bar.refresh()
    return out.getvalue()


def test_disabled_bars_print_nothing() -> None:
    assert _render(job_progress(enabled=False, desc="probe")) == ""
    assert (
        _render(
            job_progress(enabled=False, desc="pretrain", rate=False, fields=("loss {task.fields[loss]}",)), loss=1.0
        )
        == ""
    )
    assert _render(count_progress(False, "match")) == ""


def test_job_bar_shows_its_columns() -> None:
    text = _render(job_progress(enabled=True, desc="extract", unit="clips"))
    assert "extract" in text and "4/10 clips" in text
    assert "0:00:0" in text  # elapsed (and remaining) time
    text = _render(
        job_progress(
            enabled=True,
            desc="pretrain",
            unit="steps",
            rate=False,
            fields=("{task.fields[clips_s]:>7.1f} clips/s", "loss {task.fields[loss]:.4f}"),
        ),
        clips_s=12.5,
        loss=0.25,
    )
    assert "pretrain" in text and "4/10 steps" in text
    assert "12.5 clips/s" in text and "loss 0.2500" in text
    assert "steps/s" not in text  # rate=False: the job's own rate field only
    text = _render(job_progress(enabled=True, desc="[odd] desc"))  # markup in a description is text
    assert "[odd] desc" in text


def test_count_bar_shows_the_description() -> None:
    text = _render(count_progress(True, "match"))
    assert "match" in text and "4/10" in text


def test_job_bar_shows_the_rate() -> None:
    bar = job_progress(enabled=True, desc="probe", unit="rows")
    out = io.StringIO()
    bar.live.console = Console(file=out, width=200, force_terminal=False, color_system=None)
    now = [100.0]
    bar.get_time = lambda: now[0]  # a clock the test moves: 10 more rows 4 s later
    with bar:
        t = bar.add_task("probe", total=100)
        bar.advance(t, 10)
        now[0] += 4
        bar.advance(t, 10)
        bar.refresh()
    assert "20/100 rows" in out.getvalue() and "2.5 rows/s" in out.getvalue()
