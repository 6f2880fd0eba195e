"""One writer per run folder: an advisory lock file ``RUN/.lock`` holding the owner's pid, host and start time.

Two processes writing one run folder would interleave ``progress.csv`` rows and leave the config of one run
beside the results of the other. :class:`RunLock` is taken before anything is written to the folder and
released on exit. The lock is an ``fcntl.flock`` on the file (released by the kernel when its holder dies, so a
crashed run never blocks the folder on this host) plus the owner's identity in the file, for the error message
and for hosts where ``flock`` does not reach (network file systems):

- held by a live process: :class:`RunLockedError` naming the folder and the owner; the caller writes nothing;
- left by a process that is gone (same host, pid not running): taken over, with a note naming the stale owner;
- left by another host (its pid cannot be checked from here): refused unless ``force=True`` (``--force``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError"]

LOCK_FILE = ".lock"


class RunLockedError(FileExistsError):
    """The run folder is owned by another process."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _owner_text(owner: dict[str, Any]) -> str:
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, int | float) else "?"
    return f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')} (since {when})"


class RunLock:
    """The lock of one run folder (a context manager; :meth:`acquire` / :meth:`release` for explicit use).

    Parameters
    ----------
    run_dir : path
        The run folder; created if missing (and removed again on release if it is still empty, so a run refused
        before writing anything leaves no half-made folder).
    force : bool
        Take over a lock whose owner cannot be checked (another host's pid).
    note : callable
        Where the take-over of a stale lock is reported (default: standard error).
    what : str
        What the folder is, in messages (``"run folder"``, ``"comparison folder"``, ``"archive folder"``).
    """

    def __init__(self, run_dir: str | Path, force: bool = False, note: Any = None, what: str = "run folder") -> None:
        self.what = what
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.force = force
        self._note = note or (lambda m: print(m, file=sys.stderr))
        self._fd: int | None = None
        self._created_dir = False

    def acquire(self) -> RunLock:
        import fcntl

        if not self.run_dir.exists():
            self.run_dir.mkdir(parents=True)
            self._created_dir = True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _owner_text(self._read(fd))
                os.close(fd)
                self._cleanup_dir()
                raise RunLockedError(f"{self.what} {self.run_dir} is in use by {owner}: one process writes a "
                                     f"{self.what}; wait for it, stop it, or use another folder") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the owner released (unlinked) the file between our open and our flock: open anew
                break
            os.close(fd)
        try:
            owner = self._read(fd)
            host = socket.gethostname()
            if owner.get("pid") is not None and owner.get("pid") != os.getpid():
                if owner.get("host") == host and _pid_alive(int(owner["pid"])) and not self.force:
                    # alive yet not holding the flock: a file system without flock, or a reused pid
                    raise RunLockedError(f"{self.what} {self.run_dir} is locked by {_owner_text(owner)}, which is "
                                         "still running; if that is not a run, pass --force")
                if owner.get("host") != host and not self.force:
                    raise RunLockedError(f"{self.what} {self.run_dir} is locked by {_owner_text(owner)}: another "
                                         "host, whose process cannot be checked from here; if that run is gone, "
                                         "pass --force to take the folder over")
                self._note(f"note: taking over the stale lock of {self.run_dir} left by {_owner_text(owner)}")
            mine = {"pid": os.getpid(), "host": host, "started": time.time(), "argv": sys.argv}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self._cleanup_dir()
            raise
        self._fd = fd
        return self

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            raw = os.pread(fd, 65536, 0)
            owner = json.loads(raw.decode()) if raw.strip() else {}
            return owner if isinstance(owner, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        """Remove the lock file and unlock (the folder too if nothing else was written into it)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._created_dir:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only if empty

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
