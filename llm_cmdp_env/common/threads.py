"""How many torch threads to use on a CPU that other processes share.

Threads beyond the free cores wait for each other at every kernel: measured on the 2-core machine
(benchmarks/shared_cpu.py, docs/performance.md), the main job's update took 1.1 s with 2 threads when quiet, but
3.0 s with 2 threads beside one busy process, against 1.9 s with 1 thread. :func:`free_cores` picks the thread
count at start; :class:`AdaptiveThreads` follows the load during a long run (a process started next to a
training run, or one that ended).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["AdaptiveThreads", "free_cores", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _proc_stat() -> tuple[int, int]:
    """``(total, idle)`` jiffies of all CPUs since boot (Linux ``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait


def _own_jiffies() -> int:
    """CPU time of this process (all its threads), in jiffies."""
    t = os.times()
    return int((t.user + t.system) * os.sysconf("SC_CLK_TCK"))


def _fit(cores: int, busy_elsewhere: float) -> int:
    return max(1, min(cores, int(cores - busy_elsewhere + 0.5)))


def free_cores(window: float = 0.2) -> int:
    """Cores not kept busy by other processes right now (measured over ``window`` seconds from ``/proc/stat``; the
    1-minute load average where that file is missing), at least 1."""
    cores = usable_cores()
    try:
        total0, idle0 = _proc_stat()
        time.sleep(window)
        total1, idle1 = _proc_stat()
        busy = (1.0 - (idle1 - idle0) / max(1, total1 - total0)) * (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        try:
            busy = os.getloadavg()[0]
        except (OSError, AttributeError):
            busy = 0.0
    return _fit(cores, busy)


class AdaptiveThreads:
    """Set torch's thread count, at each call of :meth:`adjust`, to the cores other processes left free since the
    previous call (their busy time = all CPUs' busy time minus this process's own, so our threads never count
    against us). Does nothing where ``/proc/stat`` is missing.

    Parameters
    ----------
    set_threads : callable, optional
        Called with the new count when it changes (default ``torch.set_num_threads``).
    sample : callable, optional
        ``() -> (total_jiffies, idle_jiffies, own_jiffies)`` (for tests).
    """

    def __init__(self, set_threads: Callable[[int], None] | None = None,
                 sample: Callable[[], tuple[int, int, int]] | None = None) -> None:
        if set_threads is None:
            import torch

            set_threads = torch.set_num_threads
        self._set = set_threads
        self._sample = sample or (lambda: (*_proc_stat(), _own_jiffies()))
        self.cores = usable_cores()
        self.threads: int | None = None
        try:
            self._last: tuple[int, int, int] | None = self._sample()
        except (OSError, ValueError, IndexError):
            self._last = None

    def adjust(self) -> int | None:
        """Re-fit the thread count to the load since the last call; returns it (None when unmeasurable)."""
        if self._last is None:
            return None
        now = self._sample()
        total, idle, own = (b - a for a, b in zip(self._last, now))
        self._last = now
        if total <= 0:
            return self.threads
        ncpu = os.cpu_count() or 1
        busy_elsewhere = max(0.0, (total - idle - own) / total * ncpu)  # cores; total counts all CPUs' jiffies
        n = _fit(self.cores, busy_elsewhere)
        if n != self.threads:
            self._set(n)
            self.threads = n
        return n
