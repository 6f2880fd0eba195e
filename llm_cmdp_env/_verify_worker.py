"""Child process of :mod:`llm_cmdp_env.verify`: a zygote that judges each answer in a fresh forked grandchild.

It imports math-verify once, writes ``{"ready": pid}`` (or ``{"fatal": message}``) and then serves JSON lines:
a request ``{"id", "pred", "ref", "timeout"}`` forks one grandchild (so every verdict starts from the same
state, whatever came before) and is answered ``{"id", "answer"}`` with ``"equal"``, ``"not_equal"``,
``"error"`` (math-verify raised, or the grandchild died) or ``"timeout"`` (the grandchild is killed
``timeout`` seconds after its fork). Several requests may be in flight at once. ``{"id", "cancel": true}``
kills that request's grandchild (answer ``"cancelled"``). Infrastructure failures (fork failed) are answered
``{"id", "failed": message}``.

The zygote ignores SIGINT (a Ctrl-C in the terminal is the parent's business) and exits, killing its
grandchildren, at end of stdin, which is when the parent process exits or dies. On Linux each grandchild also
gets ``PR_SET_PDEATHSIG`` so it dies with the zygote, and on every platform its CPU time is capped a little
above its timeout (``RLIMIT_CPU``), so it cannot outlive a killed zygote for long. Its address space is capped
at the zygote's size plus :data:`EXTRA_MEMORY_BYTES` (``RLIMIT_AS``, Linux), so a hostile answer cannot eat the
machine's memory (allocations fail: verdict "error").
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
"""Address space (bytes) a grandchild may add to the zygote's before allocations fail (verdict "error")."""

_PR_SET_PDEATHSIG = 1
_WARM_UP = [  # one of each common kind of answer: makes a typical check ~10x faster in a fresh grandchild
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
    """Return the RLIMIT_AS to give grandchildren: our current address space + EXTRA_MEMORY_BYTES."""
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


def _limit_resources(memory_limit: int | None, timeout: float) -> None:
    """Cap a grandchild's address space, and its CPU time as a backstop should nobody be left to kill it."""
    try:
        import resource
    except ImportError:
        return
    if memory_limit is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, hard))
    # CPU time never exceeds wall time here, so this never fires while the zygote is there to kill us
    cpu = math.ceil(timeout) + 2
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > cpu:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would otherwise dump core
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _grandchild(write_fd: int, pred: str, ref: str, timeout: float, zygote_pid: int, setup: dict[str, Any]) -> None:
    """Body of a forked grandchild: judge one pair, write the answer to ``write_fd``, exit. Never returns."""
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
        _limit_resources(setup["memory_limit"], timeout)
        try:
            answer = _judge(pred, ref)
        except BaseException:  # noqa: B036 - anything math-verify/sympy raises (MemoryError too) is "error"
            answer = "error"
        os.write(write_fd, answer.encode())
    finally:
        os._exit(0)


class _Job:
    __slots__ = ("rid", "pid", "deadline")

    def __init__(self, rid: object, pid: int, deadline: float) -> None:
        self.rid, self.pid, self.deadline = rid, pid, deadline


def _reply(msg: dict[str, Any]) -> None:
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def serve(setup: dict[str, Any]) -> None:
    """Serve requests on stdin until EOF (see the module docstring for the protocol)."""
    jobs: dict[int, _Job] = {}  # result pipe read end -> job
    by_id: dict[object, int] = {}
    pending = b""
    me = os.getpid()

    def finish(fd: int, answer: str) -> None:
        job = jobs.pop(fd)
        by_id.pop(job.rid, None)
        try:
            os.kill(job.pid, signal.SIGKILL)
            os.waitpid(job.pid, 0)
        except OSError:  # already reaped
            pass
        os.close(fd)
        _reply({"id": job.rid, "answer": answer})

    def handle(line: bytes) -> None:
        try:
            msg = json.loads(line)
            rid = msg["id"]
            hash(rid)
        except (ValueError, KeyError, TypeError):
            return  # not a request; nothing to answer
        if msg.get("cancel"):
            if rid in by_id:
                finish(by_id[rid], "cancelled")
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
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(read_fd)
            os.close(write_fd)
            _reply({"id": rid, "failed": f"could not fork a checker process: {e}"})
            return
        if pid == 0:
            _grandchild(write_fd, pred, ref, timeout, me, {**setup, "close_fds": [0, read_fd, *jobs]})
        os.close(write_fd)
        jobs[read_fd] = _Job(rid, pid, time.monotonic() + timeout)
        by_id[rid] = read_fd

    try:
        while True:
            now = time.monotonic()
            wait = max(0.0, min(j.deadline for j in jobs.values()) - now) if jobs else None
            readable, _, _ = select.select([0, *jobs], [], [], wait)
            # results first, then deadlines, then new requests (so a pipe fd reused by a new request is never
            # mistaken for a readable old one)
            for fd in readable:
                if fd != 0 and fd in jobs:
                    data = os.read(fd, 4096).decode(errors="replace")
                    finish(fd, data if data in ("equal", "not_equal", "error") else "error")
            now = time.monotonic()
            for fd in [fd for fd, job in jobs.items() if job.deadline <= now]:
                finish(fd, "timeout")
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
        for job in jobs.values():
            try:
                os.kill(job.pid, signal.SIGKILL)
                os.waitpid(job.pid, 0)
            except OSError:
                pass


def main() -> None:
    """Import math-verify, announce readiness on stdout, then :func:`serve` until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited SIG_IGN would reap grandchildren behind our back
    try:
        import logging

        logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled" on every call
        import math_verify  # noqa: F401 - a failure here is fatal
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        _reply({"fatal": f"{type(e).__name__}: {e}"})
        sys.exit(1)
    for pred, ref in _WARM_UP:  # load what math-verify and sympy import lazily once, not in every grandchild
        try:
            _judge(pred, ref)
        except Exception:  # noqa: BLE001 - a warm-up that fails only costs speed
            pass
    gc.collect()
    gc.freeze()  # keep the shared pages shared in the grandchildren
    setup = {"pdeathsig": _pdeathsig_setter(), "memory_limit": _memory_limit()}
    _reply({"ready": os.getpid()})
    serve(setup)


if __name__ == "__main__":
    main()
