"""CPU thread count that adapts to what else runs on the machine.

On a CPU, torch runs each op on an OpenMP team of ``torch.get_num_threads()`` threads that
meet at a barrier after every op. When another CPU-bound process takes a core, one thread
of the team waits for its core at every barrier and the whole team waits with it: on this
project's 2-core boxes a training step ran 5-10x slower beside a busy process with 2
threads (4-6 clips/s) than with 1 (19 clips/s), and alone 2 threads beat 1 by 1.8x. No
fixed count is right in both cases, and the load changes during a run, so
:class:`ThreadTuner` measures: it runs most steps at the current count and, every
``probe_every`` steps, a few at the other candidate count, and keeps whichever gave the
shorter median time per unit of work. The cost is a few probe steps at the worse count
per ``probe_every`` steps (about 5% at the defaults, when the worse count is 2x slower).

``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at barriers instead of spinning) helped less
(6.4 vs 4 clips/s beside a busy process) and costs speed alone; weaksup leaves it to the
user. benchmarks/contention.py measures all of it.

torch is imported by :class:`ThreadTuner` only, when a tuner is made: :func:`thread_budget`
also sizes thread pools that have nothing to do with torch (match's DuckDB), and importing
torch costs seconds and half a gigabyte.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_budget(processes: int = 1) -> int:
    """Threads one of ``processes`` processes on this machine may use: its share of the cores,
    never more than ``OMP_NUM_THREADS`` when the user set it."""
    share = max(1, available_cores() // max(1, processes))
    try:
        cap = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        cap = 0
    return min(share, cap) if cap > 0 else share


def thread_candidates(max_threads: int) -> tuple[int, ...]:
    """Counts worth trying: all cores, half of them, one (distinct, largest first)."""
    return tuple(sorted({max(1, max_threads), max(1, max_threads // 2), 1}, reverse=True))


@dataclass
class ThreadTuner:
    """Chooses torch's intra-op thread count from measured step times.

    Call :meth:`record` after every step with its wall time and the work it did (clips).
    ``fixed=N`` sets N threads for the run and never changes them (bit-identical reruns);
    ``enabled=False`` (e.g. on a GPU) leaves the thread count alone. A single candidate
    (one core) adapts nothing. :meth:`restore` gives the process its count back.
    """

    max_threads: int = field(default_factory=thread_budget)
    probe_every: int = 40
    probe_steps: int = 3
    warmup_steps: int = 3
    enabled: bool = True
    fixed: int = 0
    current: int = 0
    history: list[tuple[int, int]] = field(default_factory=list)  # (step, threads) at every switch
    _times: dict[int, list[float]] = field(default_factory=dict)
    _step: int = 0
    _probing: int | None = None
    _probe_left: int = 0
    _skip: int = 0
    _since_probe: int = 0
    _next_probe: int = 0

    def __post_init__(self) -> None:
        import torch

        self.original = torch.get_num_threads()
        self.touched = self.enabled and (self.fixed > 0 or self.max_threads > 1)
        self.candidates = (self.fixed,) if self.fixed > 0 else thread_candidates(self.max_threads)
        if not self.current:
            self.current = self.candidates[0]
        if self.touched:
            torch.set_num_threads(self.current)
        self.enabled = self.enabled and len(self.candidates) > 1  # from here on: "adapts"
        if self.enabled:
            self.history.append((0, self.current))
        self._skip = self.warmup_steps
        self._since_probe = max(0, self.probe_every - 5)  # the first probe early: short runs adapt too

    @property
    def threads(self) -> int:
        """The count the next step runs with."""
        return self._probing if self._probing is not None else self.current

    def record(self, seconds: float, work: float = 1.0) -> None:
        """One step took ``seconds`` for ``work`` units; may change the thread count for the next."""
        if not self.enabled:
            return
        self._step += 1
        if self._skip > 0:  # the first steps at a new count pay for the team's start-up
            self._skip -= 1
            return
        per_unit = seconds / max(work, 1e-9)
        n = self.threads
        self._times.setdefault(n, []).append(per_unit)
        self._times[n] = self._times[n][-max(self.probe_every, self.probe_steps) :]
        if self._probing is not None:
            self._probe_left -= 1
            if self._probe_left <= 0:
                self._finish_probe()
            return
        self._since_probe += 1
        if self._since_probe >= self.probe_every:
            self._start_probe()

    def _set(self, n: int) -> None:
        import torch

        torch.set_num_threads(n)
        self._skip = 1

    def _start_probe(self) -> None:
        others = [c for c in self.candidates if c != self.current]
        self._probing = others[self._next_probe % len(others)]
        self._next_probe += 1
        self._probe_left = self.probe_steps
        self._times[self._probing] = []
        self._set(self._probing)

    def _finish_probe(self) -> None:
        probe, self._probing = self._probing, None
        assert probe is not None
        recent = self._times.get(self.current, [])[-self.probe_steps * 3 :]
        tried = self._times.get(probe, [])
        if recent and tried and statistics.median(tried) < 0.9 * statistics.median(recent):
            self.current = probe
            self.history.append((self._step, probe))
            self._times[probe] = tried
        self._since_probe = 0
        self._set(self.current)

    def restore(self) -> None:
        """Give the process back the thread count it had before this tuner (the run is over)."""
        if self.touched:
            import torch

            torch.set_num_threads(self.original)

    close = restore  # contextlib.closing(tuner)

    def summary(self) -> dict[str, object]:
        """Thread counts used: the final one and every switch (step, threads)."""
        import torch

        threads = self.current if self.touched else torch.get_num_threads()
        return {"threads": threads, "adaptive": self.enabled, "switches": [list(s) for s in self.history]}
