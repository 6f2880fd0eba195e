"""Equivalence checking (the task reward's judge).

A completion is reduced to one final answer by :func:`llm_cmdp_env.judge.answers.find_answer` (its ``#### ...`` line
by the rule of :mod:`llm_cmdp_env.judge.answers`, then ``\\boxed{...}``, then "the answer is ...", then the last
number), and compared with the reference by
:func:`is_equivalent`: exact rational arithmetic when both sides are plain numbers (the common case, no
sympy), otherwise math-verify (symbolic equivalence) in a worker process. A process, not math-verify's own
signal alarm, because a hostile answer such as ``9^{9^{9^9}}`` blocks inside C code where no signal handler
runs, and because signals only work in the main thread. The worker (:mod:`llm_cmdp_env.judge._worker`)
imports math-verify once and hands each check to a forked checker process, killed ``timeout`` seconds after it
starts (a checker that answered in time serves the next check), so a verdict never depends on earlier checks
or on the worker's start-up; replies are matched to requests by id, several threads can check at once, and
the worker and its checkers exit when this process dies. :func:`prewarm` starts it
early. An answer that times out, or is longer than :data:`MAX_ANSWER_CHARS`, is judged incorrect and the
:class:`Verdict` says why.
"""

from __future__ import annotations

import atexit
import itertools
import json
import math
import numbers
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

from llm_cmdp_env.judge.answers import MAX_ANSWER_CHARS, clean, find_answer

DEFAULT_TIMEOUT = 5.0

_PLAIN_NUMBER_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?$")


@dataclass(frozen=True)
class Verdict:
    """The judge's decision on one completion.

    Attributes
    ----------
    correct : bool
        True if the extracted answer equals the reference.
    extracted : str or None
        The final answer found in the completion (None if none was found; the ``####`` line's text when it is
        ambiguous).
    reason : str
        ``"equal"``, ``"not_equal"``, ``"no_answer"``, ``"ambiguous"``, ``"too_long"``, ``"timeout"`` or
        ``"error"``.
    """

    correct: bool
    extracted: str | None
    reason: str


def _as_fraction(s: str) -> Fraction | None:
    s = s.replace(" ", "")
    if not _PLAIN_NUMBER_RE.match(s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


# --- math-verify in a killable worker process -------------------------------------------------------

STARTUP_TIMEOUT = 60.0
"""Seconds a check waits for the worker process to come up (import math-verify) before raising RuntimeError."""

MAX_TIMEOUT = 3600.0
"""Largest accepted check ``timeout`` (the env's ``verify_timeout``), in seconds."""

_REPLY_MARGIN = 1.0  # a check stops waiting for the worker this long after its own timeout
_UNRESPONSIVE_AFTER = 5.0  # a worker silent this long after such a give-up is killed and restarted
_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
# run the script by path, not with -m: importing the package would load gymnasium and numpy (whose BLAS threads
# make fork unsafe) and slow the start; a plain subprocess never re-imports the user's __main__
_LAUNCH = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


def validate_timeout(value: object, name: str = "verify_timeout") -> float:
    """Return ``value`` as a float number of seconds in ``(0, MAX_TIMEOUT]``.

    Parameters
    ----------
    value : object
        The timeout to check.
    name : str
        How the error messages call it.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (booleans are refused too).
    ValueError
        If it is not finite, not positive, or larger than :data:`MAX_TIMEOUT`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    try:
        seconds = float(value)
    except (OverflowError, ValueError):
        seconds = math.inf
    if not 0 < seconds <= MAX_TIMEOUT:  # also refuses nan
        raise ValueError(
            f"{name} must be a finite number of seconds in (0, {MAX_TIMEOUT:g}] (MAX_TIMEOUT), got {value!r}"
        )
    return seconds


class _WorkerDied(Exception):
    """The worker process exited, or stopped reading, before answering."""


class _Worker:
    """One running ``_worker`` process; its mutable fields are guarded by the service's condition."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, _WORKER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin_fd = self.proc.stdin.fileno()
        os.set_blocking(self.stdin_fd, False)  # a stalled worker must not block a check past its deadline
        self.write_lock = threading.Lock()  # one request line at a time; guards stdin_closed
        self.stdin_closed = False
        self.started = time.monotonic()
        self.ready = False
        self.dead = False
        self.fatal: str | None = None
        self.silent_since: float | None = None  # set when a check gave up on it, cleared by any reply

    def close_stdin(self, wait: float | None = None) -> None:
        if not self.write_lock.acquire(timeout=-1 if wait is None else wait):
            return
        try:
            if not self.stdin_closed:
                self.stdin_closed = True
                assert self.proc.stdin is not None
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
        finally:
            self.write_lock.release()

    def send(self, msg: dict, deadline: float) -> None:
        """Write one request line before ``deadline`` (monotonic), or raise :class:`_WorkerDied`."""
        data = memoryview((json.dumps(msg) + "\n").encode())
        if not self.write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _WorkerDied("another thread is stuck writing to it")
        try:
            if self.stdin_closed:
                raise _WorkerDied("it was stopped")
            while data:
                try:
                    data = data[os.write(self.stdin_fd, data) :]
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.proc.kill()
                        raise _WorkerDied("it stopped reading requests") from None
                    select.select([], [self.stdin_fd], [], remaining)
                except OSError as e:  # BrokenPipeError: it exited
                    raise _WorkerDied(f"cannot write to it ({e})") from None
        finally:
            self.write_lock.release()


class _VerifyService:
    """Hands checks to the worker and files its replies by request id.

    A reader thread per worker process stores each reply under its request id and wakes the waiting threads;
    a reply whose id is no longer awaited (its check was interrupted or gave up) is dropped, so no answer can
    ever be read by a later check.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._worker: _Worker | None = None
        self._pending: dict[int, tuple[str, str] | None] = {}  # request id -> ("answer"|"failed", text)
        self._ids = itertools.count()
        self._abandoned: list[_Worker] = []
        #: seconds checks spent waiting for a worker to start (not counted in their ``timeout``)
        self.startup_waited = 0.0

    def pid(self) -> int | None:
        with self._cond:
            w = self._worker
            return w.proc.pid if w is not None and not w.dead else None

    def get(self) -> _Worker:
        """Return the running worker, starting one if there is none (does not wait for it to be ready)."""
        with self._cond:
            w = self._worker
            if w is not None and not w.dead and w.silent_since is not None:
                if time.monotonic() - w.silent_since > _UNRESPONSIVE_AFTER:
                    w.proc.kill()  # its reader thread sees EOF and fails the checks it still owes
                    w = None
            if w is None or w.dead or w.fatal is not None:
                w = self._worker = _Worker()
                threading.Thread(target=self._read, args=(w,), name="math-verify-reader", daemon=True).start()
            return w

    def _read(self, w: _Worker) -> None:
        assert w.proc.stdout is not None
        try:
            for line in w.proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                with self._cond:
                    w.silent_since = None
                    rid = msg.get("id")
                    if "ready" in msg:
                        w.ready = True
                    elif "fatal" in msg:
                        w.fatal = str(msg["fatal"])
                    elif isinstance(rid, int) and rid in self._pending and self._pending[rid] is None:
                        self._pending[rid] = (
                            ("failed", str(msg["failed"])) if "failed" in msg else ("answer", str(msg.get("answer")))
                        )
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            w.close_stdin(wait=1.0)
            w.proc.kill()
            w.proc.wait()
            w.proc.stdout.close()
            with self._cond:
                w.dead = True
                if self._worker is w:
                    self._worker = None
                self._cond.notify_all()

    def _wait_ready(self, w: _Worker) -> None:
        with self._cond:
            while not w.ready:
                if w.fatal is not None:
                    raise RuntimeError(f"the math-verify worker process could not start: {w.fatal}")
                if w.dead:
                    raise _WorkerDied(f"it exited during start-up (exit code {w.proc.returncode})")
                remaining = w.started + STARTUP_TIMEOUT - time.monotonic()
                if remaining <= 0:
                    w.proc.kill()
                    raise RuntimeError(f"the math-verify worker process did not start within {STARTUP_TIMEOUT:g} s")
                self._cond.wait(remaining)

    def _ask(self, w: _Worker, pred: str, ref: str, timeout: float) -> str:
        rid = next(self._ids)
        deadline = time.monotonic() + timeout + _REPLY_MARGIN
        reply = None
        try:
            with self._cond:
                self._pending[rid] = None
            w.send({"id": rid, "pred": pred, "ref": ref, "timeout": timeout}, deadline)
            with self._cond:
                while (reply := self._pending[rid]) is None:
                    if w.dead:
                        raise _WorkerDied(f"it exited (exit code {w.proc.returncode})")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        if w.silent_since is None:
                            w.silent_since = time.monotonic()
                        break
                    self._cond.wait(remaining)
        finally:
            # whatever happened (even KeyboardInterrupt), stop awaiting this id: a late reply is dropped
            with self._cond:
                self._pending.pop(rid, None)
            if reply is None:
                try:
                    w.send({"id": rid, "cancel": True}, time.monotonic() + 0.2)  # stop its checker now
                except _WorkerDied:
                    pass
        if reply is None:
            return "timeout"  # the worker did not answer within timeout + _REPLY_MARGIN
        kind, text = reply
        if kind == "failed":
            raise RuntimeError(f"the math-verify worker process failed: {text}")
        return text

    def check(self, pred: str, ref: str, timeout: float) -> str:
        """Return "equal", "not_equal", "timeout" or "error". A worker that dies mid-check is replaced and the check
        retried once with the checking time left of ``timeout`` (``"timeout"`` when none is left): the checking
        time of a check is at most ``timeout + _REPLY_MARGIN`` in all; waiting for a worker to start is not
        counted in it (it is added to :attr:`startup_waited`)."""
        problem, left = "", timeout
        for _ in range(2):
            w = self.get()
            t0 = time.monotonic()
            try:
                self._wait_ready(w)
            except _WorkerDied as e:
                problem = str(e)
                continue
            finally:
                self.startup_waited += time.monotonic() - t0
            t1 = time.monotonic()
            try:
                return self._ask(w, pred, ref, left)
            except _WorkerDied as e:
                problem = str(e)
                left -= time.monotonic() - t1
                if left <= 0:
                    return "timeout"
        raise RuntimeError(f"the math-verify worker process died twice while checking an answer; last: {problem}")

    def close(self) -> None:
        """Stop the worker: closing its stdin makes it kill its checker processes and exit."""
        with self._cond:
            w, self._worker = self._worker, None
        if w is None:
            return
        w.close_stdin(wait=1.0)
        try:
            w.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()

    def forget_after_fork(self) -> None:
        """In a child made by ``os.fork``: drop the parent's worker (its pipes are pointed at /dev/null)."""
        self._cond = threading.Condition()
        self._pending = {}
        w, self._worker = self._worker, None
        if w is not None:
            self._abandoned.append(w)  # never garbage-collected, so its file objects never close a reused fd
            devnull = os.open(os.devnull, os.O_RDWR)
            for f in (w.proc.stdin, w.proc.stdout):
                try:
                    os.dup2(devnull, f.fileno())  # so the worker sees EOF when the *parent* goes
                except (OSError, ValueError, AttributeError):
                    pass
            os.close(devnull)


_SERVICE = _VerifyService()
atexit.register(_SERVICE.close)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_SERVICE.forget_after_fork)


def prewarm(wait: bool = False) -> None:
    """Start the math-verify worker process in the background, if it is not running; returns at once, or with
    ``wait=True`` once it is ready (e.g. before timing something: its start-up takes a core for ~2 s).

    The first symbolic check otherwise pays for the start (importing math-verify, about a second). Idempotent.
    """
    w = _SERVICE.get()
    if wait:
        _SERVICE._wait_ready(w)


def startup_waited() -> float:
    """Seconds the checks of this process have spent waiting for a math-verify worker to start (import math-verify)
    since it began: the part of a check's wall time that its ``timeout`` does not bound (see :func:`is_equivalent`)."""
    return _SERVICE.startup_waited


def _worker_pid() -> int | None:
    """Process id of the running worker process (its checker processes are its children), or None."""
    return _SERVICE.pid()


def is_equivalent(prediction: str, reference: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """Decide whether two answer strings are mathematically equal.

    Returns ``(equal, reason)``. Plain numbers (integers, decimals, ``a/b``) are compared exactly in process;
    anything else goes to math-verify in the worker process with a hard ``timeout`` in seconds (then ``(False,
    "timeout")``). The bound on the call's wall time: ``timeout + 1`` s of checking in all (a worker that dies
    mid-check is replaced and the check retried once with the time left), plus the time spent waiting for a worker
    to start: none once it is running (the env starts it when it is built; :func:`prewarm`), else its start-up,
    at most :data:`STARTUP_TIMEOUT` each, two at most (:func:`startup_waited` counts it).

    Raises
    ------
    TypeError, ValueError
        If ``timeout`` is not a number in ``(0, MAX_TIMEOUT]`` (see :func:`validate_timeout`).
    RuntimeError
        If the worker process cannot be started within :data:`STARTUP_TIMEOUT`, or dies twice in a row.
    """
    timeout = validate_timeout(timeout, "timeout")
    pred, ref = clean(prediction), clean(reference)
    if len(pred) > MAX_ANSWER_CHARS:
        return False, "too_long"
    fp, fr = _as_fraction(pred), _as_fraction(ref)
    if fp is not None and fr is not None:
        return (fp == fr), ("equal" if fp == fr else "not_equal")
    if pred == ref:
        return True, "equal"
    reason = _SERVICE.check(pred, ref, timeout)
    return reason == "equal", reason


def check_answer(completion: str, reference: str, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """Extract the final answer from ``completion`` and compare it with ``reference`` (see :func:`is_equivalent`)."""
    timeout = validate_timeout(timeout, "timeout")
    found = find_answer(completion)
    if found is None:
        return Verdict(False, None, "no_answer")
    if found.answer is None:
        return Verdict(False, found.text[:MAX_ANSWER_CHARS], "ambiguous")
    extracted = found.answer
    if len(extracted) > MAX_ANSWER_CHARS:
        return Verdict(False, extracted, "too_long")
    ok, reason = is_equivalent(extracted, reference, timeout=timeout)
    return Verdict(ok, extracted, reason)
