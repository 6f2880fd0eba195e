"""Child process of :mod:`llm_cmdp_env.judge.verify`: a zygote that judges answers in forked checker processes.

It imports math-verify once, writes ``{"ready": pid}`` (or ``{"fatal": message}``) and then serves JSON lines:
a request ``{"id", "pred", "ref", "timeout"}`` goes to an idle checker (forked from the zygote when none is
idle, so several requests may be in flight at once) and is answered ``{"id", "answer"}`` with ``"equal"``,
``"not_equal"``, ``"error"`` (math-verify raised, or the checker died) or ``"timeout"``: the checker is killed
``timeout`` seconds after it received the request, so a hostile answer never holds up a later one and a
check's clock never counts start-up. A checker that answered in time is kept for the next request (math-verify's
lazy set-up is then paid once: ~8 ms per check instead of ~30 ms in a fresh fork); verdicts do not depend on
which checker answers (math-verify is deterministic; only its caches warm up). ``{"id", "cancel": true}`` kills
that request's checker (answer ``"cancelled"``). Infrastructure failures (fork failed) are answered
``{"id", "failed": message}``.

The zygote ignores SIGINT (a Ctrl-C in the terminal is the parent's business) and exits, killing its checkers,
at end of stdin, which is when the parent process exits or dies. On Linux each checker also gets
``PR_SET_PDEATHSIG`` so it dies with the zygote, and on every platform the CPU time of each check is capped a
little above its timeout (``RLIMIT_CPU``), so it cannot outlive a killed zygote for long. A checker's address
space is capped at the zygote's size plus :data:`EXTRA_MEMORY_BYTES` (``RLIMIT_AS``, Linux), so a hostile answer
cannot eat the machine's memory (allocations fail: verdict "error").
"""

from __future__ import annotations

import gc
import json
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

EXTRA_MEMORY_BYTES = 2 << 30
"""Address space (bytes) a checker may add to the zygote's before allocations fail (verdict "error")."""

_PR_SET_PDEATHSIG = 1
_WARM_UP = [  # one of each common kind of answer: a fresh checker starts with math-verify's lazy set-up done
    ("\\frac{1}{2}", "0.5"),
    ("x^2", "2x"),
    ("(x+1)^2", "x^2+2x+1"),
    ("3\\pi", "9.42"),
    ("\\sqrt{2}", "1.41"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("[0,1)", "(0,1]"),
    ("x=2", "2"),
    ("\\sin(x)^2+\\cos(x)^2", "1"),
    ("\\log(8)", "3\\log(2)"),
    ("e^{i\\pi}", "-1"),
    ("\\begin{pmatrix}1&2\\end{pmatrix}", "\\begin{pmatrix}1&2\\end{pmatrix}"),
    ("2 \\le x", "x \\ge 2"),
    ("\\text{(A)}", "A"),
    ("\\binom{5}{2}", "10"),
]


def _judge(pred: str, ref: str) -> str:
    from math_verify import parse, verify

    gold = parse(f"${ref}$", parsing_timeout=None)
    target = parse(f"${pred}$", parsing_timeout=None)
    ok = bool(gold) and bool(target) and verify(gold, target, timeout_seconds=None)
    return "equal" if ok else "not_equal"


def _pdeathsig_setter() -> Callable[[], object] | None:
    """Return a function that makes the calling process receive SIGKILL when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _memory_limit() -> int | None:
    """Return the RLIMIT_AS to give checkers: our current address space + EXTRA_MEMORY_BYTES."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, IndexError):
        return None
    limit = size + EXTRA_MEMORY_BYTES
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    return limit


def _limit_memory(memory_limit: int | None) -> None:
    """Cap a checker's address space (Linux), so a hostile answer cannot eat the machine's memory."""
    try:
        import resource
    except ImportError:
        return
    if memory_limit is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU (below) would otherwise dump core


def _limit_cpu(timeout: float) -> None:
    """A backstop should nobody be left to kill us: the CPU time of this check may not exceed its timeout by
    more than 2 s (CPU time never exceeds wall time, so this never fires while the zygote is there)."""
    try:
        import resource
    except ImportError:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used.ru_utime + used.ru_stime + timeout) + 2
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _checker(requests_fd: int, answers_fd: int, zygote_pid: int, setup: dict[str, Any]) -> None:
    """Body of a forked checker: judge one request after another (``{"pred", "ref", "timeout"}`` lines in, one
    answer line out) until its request pipe closes. Never returns. A checker is reused while it answers in time
    (math-verify's lazy set-up is paid once, not per answer); one that overruns is killed by the zygote."""
    try:
        for fd in setup["close_fds"]:
            os.close(fd)
        if setup["pdeathsig"] is not None:
            setup["pdeathsig"]()
        if os.getppid() != zygote_pid:  # the zygote died before PR_SET_PDEATHSIG took effect
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # never write on the zygote's reply channel
        _limit_memory(setup["memory_limit"])
        with os.fdopen(requests_fd, "rb") as requests:
            for line in requests:
                msg = json.loads(line)
                _limit_cpu(float(msg["timeout"]))
                try:
                    answer = _judge(str(msg["pred"]), str(msg["ref"]))
                except BaseException:  # noqa: B036 - anything math-verify/sympy raises (MemoryError too) is "error"
                    answer = "error"
                os.write(answers_fd, (answer + "\n").encode())
    finally:
        os._exit(0)


class _Checker:
    """A forked checker process: its request pipe, its answer pipe, and the request it works on (if any)."""

    __slots__ = ("pid", "requests_fd", "answers_fd", "rid", "deadline")

    def __init__(self, pid: int, requests_fd: int, answers_fd: int) -> None:
        self.pid, self.requests_fd, self.answers_fd = pid, requests_fd, answers_fd
        self.rid: object = None
        self.deadline = math.inf

    def kill(self) -> None:
        for fd in (self.requests_fd, self.answers_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:  # already reaped
            pass


def _reply(msg: dict[str, Any]) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def serve(setup: dict[str, Any], max_idle: int = 2) -> None:
    """Serve requests on stdin until EOF (see the module docstring for the protocol)."""
    busy: dict[int, _Checker] = {}  # answer pipe read end -> checker working on a request
    idle: list[_Checker] = []
    by_id: dict[object, int] = {}
    pending = b""
    me = os.getpid()

    def spawn() -> _Checker:
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        open_fds = [0, req_w, ans_r, *busy, *(c.answers_fd for c in idle), *(c.requests_fd for c in idle),
                    *(c.requests_fd for c in busy.values())]
        pid = os.fork()
        if pid == 0:
            _checker(req_r, ans_w, me, {**setup, "close_fds": open_fds})
        os.close(req_r)
        os.close(ans_w)
        return _Checker(pid, req_w, ans_r)

    def finish(fd: int, answer: str, reuse: bool = True) -> None:
        """Reply ``answer`` to the request of the checker reading ``fd``; a checker that overran or was cancelled
        (``reuse=False``) is killed, one that answered waits for the next request (at most ``max_idle`` wait)."""
        c = busy.pop(fd)
        by_id.pop(c.rid, None)
        rid, c.rid, c.deadline = c.rid, None, math.inf
        if reuse and len(idle) < max_idle:
            idle.append(c)
        else:
            c.kill()
        _reply({"id": rid, "answer": answer})

    def handle(line: bytes) -> None:
        try:
            msg = json.loads(line)
            rid = msg["id"]
            hash(rid)
        except (ValueError, KeyError, TypeError):
            return  # not a request; nothing to answer
        if msg.get("cancel"):
            if rid in by_id:
                finish(by_id[rid], "cancelled", reuse=False)
            else:
                _reply({"id": rid, "answer": "cancelled"})
            return
        try:
            pred, ref, timeout = str(msg["pred"]), str(msg["ref"]), float(msg["timeout"])
        except (KeyError, TypeError, ValueError):
            _reply({"id": rid, "answer": "error"})
            return
        if not (timeout > 0 and math.isfinite(timeout)):
            _reply({"id": rid, "answer": "error"})
            return
        try:
            c = idle.pop() if idle else spawn()
            data = (json.dumps({"pred": pred, "ref": ref, "timeout": timeout}) + "\n").encode()
            while data:
                data = data[os.write(c.requests_fd, data) :]
        except OSError as e:
            _reply({"id": rid, "failed": f"could not start a checker process: {e}"})
            return
        c.rid, c.deadline = rid, time.monotonic() + timeout
        busy[c.answers_fd] = c
        by_id[rid] = c.answers_fd

    try:
        while True:
            now = time.monotonic()
            wait = max(0.0, min(c.deadline for c in busy.values()) - now) if busy else None
            readable, _, _ = select.select([0, *busy, *(c.answers_fd for c in idle)], [], [], wait)
            # answers first, then deadlines, then new requests
            for fd in readable:
                if fd != 0 and fd in busy:
                    data = os.read(fd, 4096).decode(errors="replace").strip()
                    finish(fd, data if data in ("equal", "not_equal", "error") else "error")
                elif fd != 0:  # an idle checker's pipe: it died (EOF); drop it
                    for c in [c for c in idle if c.answers_fd == fd]:
                        idle.remove(c)
                        c.kill()
            now = time.monotonic()
            for fd in [fd for fd, c in busy.items() if c.deadline <= now]:
                finish(fd, "timeout", reuse=False)
            if 0 in readable:
                data = os.read(0, 1 << 16)
                if not data:
                    return  # the parent closed our stdin or died
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    handle(line)
    except BrokenPipeError:
        return  # the parent is gone
    finally:
        for c in [*busy.values(), *idle]:
            c.kill()


def main() -> None:
    """Import math-verify, announce readiness on stdout, then :func:`serve` until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited SIG_IGN would reap checkers behind our back
    try:
        import logging

        logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" on every call
        import math_verify  # noqa: F401 - a failure here is fatal
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        _reply({"fatal": f"{type(e).__name__}: {e}"})
        sys.exit(1)
    for pred, ref in _WARM_UP:  # load what math-verify and sympy import lazily once, not in every checker
        try:
            _judge(pred, ref)
        except Exception:  # noqa: BLE001 - a warm-up that fails only costs speed
            pass
    gc.collect()
    gc.freeze()  # keep the shared pages shared in the checkers
    setup = {"pdeathsig": _pdeathsig_setter(), "memory_limit": _memory_limit()}
    _reply({"ready": os.getpid()})
    serve(setup)


if __name__ == "__main__":
    main()
