"""One writer per output (issue 15 item 4): weaksup.locks.output_lock and the CLI's run()."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import typer

from weaksup.errors import InputError
from weaksup.locks import lock_path, output_lock

HOLD = textwrap.dedent("""
    import sys, time
    from weaksup.locks import output_lock
    with output_lock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes stdin
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of tmp_path/'out.parquet' until the test ends."""
    out = tmp_path / "out.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield out, proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_second_writer_is_refused_naming_the_pid(holder):
    out, proc = holder
    assert lock_path(out).read_text().strip() == str(proc.pid)
    with pytest.raises(InputError, match=rf"is being written by another weaksup job \(pid {proc.pid}\)"):
        with output_lock(out):
            pass
    # the holder's pid is still there after the refused attempt
    assert lock_path(out).read_text().strip() == str(proc.pid)


def test_lock_is_free_again_after_the_holder_ends(holder):
    out, proc = holder
    proc.stdin.close()
    proc.wait(timeout=20)
    assert not lock_path(out).exists()  # removed on exit
    with output_lock(out):
        assert lock_path(out).read_text().strip() != str(proc.pid)


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=20)
    out = tmp_path / "parts_out"
    lock_path(out).write_text(f"{dead.pid}\n")
    import os

    with output_lock(out):
        assert lock_path(out).read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()


def test_reentrant_in_one_process_and_none_is_no_lock(tmp_path):
    out = tmp_path / "a" / "b.parquet"
    with output_lock(out):
        with output_lock(out):
            assert lock_path(out).exists()
        assert lock_path(out).exists()
    assert not lock_path(out).exists()
    with output_lock(None):
        pass


def test_cli_run_locks_the_configs_out(holder, capsys):
    from weaksup.cli.common import run

    out, proc = holder
    called = []
    with pytest.raises(typer.Exit) as info:
        run(lambda cfg: called.append(cfg), SimpleNamespace(out=out))
    assert info.value.exit_code == 2
    assert not called
    err = " ".join(capsys.readouterr().err.split())
    assert f"{out} is being written by another weaksup job (pid {proc.pid})" in err
    # another output is not affected, and the lock is held during the call
    other = out.with_name("other.parquet")
    assert run(lambda cfg: lock_path(cfg.out).exists(), SimpleNamespace(out=other)) is True
    assert not lock_path(other).exists()


def test_cli_run_locked_for_closures(holder, capsys):
    from weaksup.cli.common import run_locked

    out, proc = holder
    with pytest.raises(typer.Exit) as info:
        run_locked(out, lambda: pytest.fail("ran without the lock"))
    assert info.value.exit_code == 2
    assert f"(pid {proc.pid})" in " ".join(capsys.readouterr().err.split())
    other = out.with_name("other")
    assert run_locked(other, lambda x: (x, lock_path(other).exists()), 7) == (7, True)
    assert not lock_path(other).exists()
