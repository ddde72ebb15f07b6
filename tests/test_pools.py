"""Workers die with their parent (issue 15 item 5): weaksup.pools.make_pool and the loader's
worker_init_fn, with the parent killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")

POOL = textwrap.dedent("""
    import os, sys, time
    from weaksup.pools import make_pool

    def pid(_):
        time.sleep(0.3)
        return os.getpid()

    if __name__ == "__main__":
        pool = make_pool(2)
        pids = set(pool.map(pid, range(4)))
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(120)
""")

LOADER = textwrap.dedent("""
    import os, sys, time
    import torch
    from torch.utils.data import Dataset
    from weaksup.data.loader import make_loader

    class Pids(Dataset):
        def __len__(self):
            return 1000
        def __getitem__(self, i):
            # the first two batches come back at once; later items are a long decode (or a
            # hang), during which torch's own idle-time parent check never runs
            time.sleep(0.05 if i < 4 else 100)
            return torch.tensor(os.getpid())

    if __name__ == "__main__":
        loader = make_loader(Pids(), batch_size=2, workers=2, pin_memory=False)
        pids = set()
        for batch in loader:
            pids.update(int(x) for x in batch)
            if len(pids) == 2:
                break
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie waiting for init to reap it is dead


def kill_parent_and_wait(script: str, tmp_path, wait_s: float = 10.0) -> list[int]:
    """Run ``script`` (prints its worker pids), SIGKILL it, return the workers still alive after ``wait_s``."""
    path = tmp_path / "parent.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        line = proc.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert workers and proc.pid not in workers, line
        assert all(_alive(p) for p in workers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        return [p for p in workers if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for p in workers:  # the workers this test started, if the change does not work
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_pool_workers_die_with_a_killed_parent(tmp_path):
    assert kill_parent_and_wait(POOL, tmp_path) == []


def test_loader_workers_die_with_a_killed_parent(tmp_path):
    assert kill_parent_and_wait(LOADER, tmp_path) == []


def test_worker_exits_when_its_expected_parent_is_already_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=20)
    code = f"from weaksup.pools import die_with_parent; die_with_parent({dead.pid}); print('survived')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "survived" not in result.stdout
