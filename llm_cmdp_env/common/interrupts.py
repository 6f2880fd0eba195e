"""Graceful Ctrl-C for long-running loops (the agent's trainer, the zoo trainer, sweeps).

The first SIGINT (or SIGTERM, what ``kill`` and batch schedulers send) only sets a flag, so the loop finishes the
step it is in, saves a checkpoint and returns; a second signal raises ``KeyboardInterrupt`` at once. Handlers
are installed only in the main thread (Python delivers signals there) and restored on exit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

__all__ = ["GracefulInterrupt", "stop_requested"]

_ACTIVE: list[GracefulInterrupt] = []  # the handlers installed now, innermost last


class GracefulInterrupt:
    """Context manager: ``with GracefulInterrupt(message) as stop: ... if stop.requested: save and leave``.

    Parameters
    ----------
    message : str
        Printed (through ``out``) at the first signal, e.g. what will be saved and how to resume.
    out : callable
        Where the message goes (default ``print``; a tqdm loop passes ``tqdm.write``).
    signals : tuple
        The signals handled (default SIGINT and SIGTERM).
    on_request : callable, optional
        Called once, at the first signal (e.g. to pass the request on to worker processes).
    """

    def __init__(self, message: str = "interrupted: finishing the current step, then saving (again to stop now)",
                 out: Callable[[str], Any] = print,
                 signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
                 on_request: Callable[[], Any] | None = None) -> None:
        self.message = message
        self.out = out
        self.signals = signals
        self.on_request = on_request
        self.requested = False
        self._old: dict[signal.Signals, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.out(self.message)
        if self.on_request is not None:
            self.on_request()

    def __enter__(self) -> GracefulInterrupt:
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._old[sig] = signal.signal(sig, self._handler)
        _ACTIVE.append(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        if self in _ACTIVE:
            _ACTIVE.remove(self)


def stop_requested() -> bool:
    """Whether a signal asked the loops running now to stop (a :class:`GracefulInterrupt` in use got one): for code
    deep inside such a loop that waits on something of its own (a child process)."""
    return any(g.requested for g in _ACTIVE)
