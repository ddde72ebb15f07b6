"""weaksup.threads: the thread count follows measured step times."""

import subprocess
import sys

import torch

from weaksup.threads import ThreadTuner, thread_budget, thread_candidates


def _drive(tuner: ThreadTuner, seconds_per_clip: dict[int, float], steps: int) -> list[int]:
    used = []
    for _ in range(steps):
        n = tuner.threads
        used.append(n)
        tuner.record(seconds_per_clip[n] * 16, 16)
    return used


def test_candidates():
    assert thread_candidates(2) == (2, 1)
    assert thread_candidates(8) == (8, 4, 1)
    assert thread_candidates(1) == (1,)


def test_switches_to_fewer_threads_when_they_are_faster_and_back_when_the_load_goes():
    before = torch.get_num_threads()
    tuner = ThreadTuner(max_threads=2, probe_every=10, probe_steps=3, warmup_steps=1)
    try:
        assert tuner.threads == 2 and torch.get_num_threads() == 2
        # a busy neighbour: 2 threads 5x slower than 1 (what 2 cores showed)
        used = _drive(tuner, {2: 0.25, 1: 0.05}, 40)
        assert tuner.current == 1 and torch.get_num_threads() == 1
        assert used[-15:].count(1) >= 9  # mostly 1 thread; a probe of 2 threads (4-5 steps) per cycle
        # the neighbour is gone: 2 threads now twice as fast; the next probe finds it
        _drive(tuner, {2: 0.03, 1: 0.055}, 40)
        assert tuner.current == 2
        assert [n for _, n in tuner.summary()["switches"]] == [2, 1, 2]
    finally:
        tuner.restore()
    assert torch.get_num_threads() == before


def test_keeps_the_count_when_the_other_is_not_clearly_faster():
    tuner = ThreadTuner(max_threads=2, probe_every=10, probe_steps=3, warmup_steps=1)
    try:
        used = _drive(tuner, {2: 0.05, 1: 0.048}, 60)  # within 10%: no switch
        assert tuner.current == 2 and used.count(1) <= 3 * 6
    finally:
        tuner.restore()


def test_disabled_leaves_threads_alone():
    before = torch.get_num_threads()
    tuner = ThreadTuner(max_threads=2, enabled=False)
    _drive(tuner, {before: 1.0, 2: 1.0, 1: 0.01}, 50)
    assert torch.get_num_threads() == before and tuner.summary()["switches"] == []
    assert not ThreadTuner(max_threads=1).enabled  # nothing to choose from on one core


def test_fixed_count_is_set_for_the_run_and_given_back():
    before = torch.get_num_threads()
    tuner = ThreadTuner(max_threads=2, fixed=1)
    assert torch.get_num_threads() == 1 and not tuner.enabled
    _drive(tuner, {1: 1.0, 2: 0.01}, 60)  # never adapts, however fast another count would be
    assert torch.get_num_threads() == 1 and tuner.summary() == {"threads": 1, "adaptive": False, "switches": []}
    tuner.restore()
    assert torch.get_num_threads() == before


def test_importing_threads_and_match_engine_leaves_torch_out():
    """thread_budget sizes match's DuckDB too: importing it must not load torch (seconds, 0.5 GB)."""
    code = (
        "import sys, weaksup.threads, weaksup.assembly.match_engine; "
        "weaksup.threads.thread_budget(); print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_thread_budget_is_capped_by_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_budget() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert thread_budget() >= 1
