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

__all__ = ["GracefulInterrupt"]


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
    """

    def __init__(self, message: str = "interrupted: finishing the current step, then saving (again to stop now)",
                 out: Callable[[str], Any] = print,
                 signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.message = message
        self.out = out
        self.signals = signals
        self.requested = False
        self._old: dict[signal.Signals, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.out(self.message)

    def __enter__(self) -> GracefulInterrupt:
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
