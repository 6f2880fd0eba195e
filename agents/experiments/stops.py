"""How a sweep's run or phase ends early on Ctrl-C / SIGTERM: finished runs are kept and the same command
continues."""

from __future__ import annotations

__all__ = ["RunStopped", "SweepInterrupted"]


class RunStopped(RuntimeError):
    """A run's training was interrupted (Ctrl-C, SIGTERM): nothing was recorded; it starts again next time."""


class SweepInterrupted(Exception):
    """A phase stopped on Ctrl-C / SIGTERM: ``done`` of its ``total`` runs finished and were recorded."""

    def __init__(self, phase: str, done: int, total: int) -> None:
        super().__init__(f"interrupted: {done} of the {total} runs of the {phase} phase finished and are recorded; "
                         "run the same command again to continue (finished runs are skipped)")
        self.phase, self.done, self.total = phase, done, total
