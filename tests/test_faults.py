"""Fault tests: interruptions, hostile inputs, dead processes, bad settings."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from llm_cmdp_env import verify

# ---- the answer checker

HOSTILE = ["9^{9^{9^{9}}}", "10^{10^{10}}", "2^{2^{40}}", "(x+1)^{100000}", "9^{9^{9^{9}}}"]
"""Answers on which sympy runs for far longer than any test timeout."""

KNOWN = [  # (prediction, reference, equal), alternating, all through math-verify (not two plain numbers)
    ("\\frac{1}{2}", "0.5", True),
    ("\\frac{1}{3}", "0.5", False),
    ("\\sqrt{4}", "2", True),
    ("\\sqrt{9}", "4", False),
    ("x+1", "1+x", True),
    ("x+2", "1+x", False),
    ("\\frac{6}{8}", "3/4", True),
    ("2^{3}", "9", False),
    ("2^{10}", "1024", True),
    ("\\frac{2}{3}", "0.6", False),
    ("\\frac{3}{4}", "0.75", True),
    ("\\sqrt{3}", "1.7", False),
    ("\\sqrt{2}\\cdot\\sqrt{2}", "2", True),
    ("3\\pi", "9", False),
    ("2x", "x+x", True),
    ("x^2", "2x", False),
    ("\\dfrac{1}{4}", "0.25", True),
    ("\\frac{5}{2}", "3", False),
    ("(x+1)^2", "x^2+2x+1", True),
    ("\\sqrt{16}", "5", False),
]
BOUND = 1.0  # a check returns within timeout + BOUND once the worker is up
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and PR_SET_PDEATHSIG")


def _assert_known_answers() -> None:
    got = [verify.is_equivalent(p, r, timeout=5) for p, r, _ in KNOWN]
    assert got == [(e, "equal" if e else "not_equal") for _, _, e in KNOWN]


def _timed(fn, *args, **kwargs):
    start = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - start


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _gone(pid: int) -> bool:
    """True if ``pid`` exited (a zombie left for init to reap counts: it burns nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_until(cond, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture()
def checker_up():
    """A running, ready worker (the first check pays the start-up)."""
    assert verify.is_equivalent("\\frac{1}{2}", "0.5") == (True, "equal")
    yield
    assert verify.is_equivalent("\\frac{1}{2}", "0.5") == (True, "equal")


def test_interrupted_checks_do_not_shift_later_verdicts(checker_up):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs to run in the main thread")
    main = threading.main_thread().ident

    def interrupt_after(delay: float) -> threading.Timer:
        timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        return timer

    # Ctrl-C while waiting on a hostile check: raised promptly, the check is abandoned
    timer = interrupt_after(0.3)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        verify.is_equivalent(HOSTILE[0], "1", timeout=3)
    assert time.monotonic() - start < 1.5
    timer.join()
    # Ctrl-C landing at various points of ordinary checks (before, during or after their reply)
    for i, delay in enumerate([0.0, 0.002, 0.005, 0.01, 0.02, 0.04]):
        pred, ref, _ = KNOWN[i]
        try:
            timer = interrupt_after(delay)
            try:
                verify.is_equivalent(pred, ref, timeout=5)
            finally:
                timer.join()
                for _ in range(1000):  # let a pending signal be handled inside this try
                    pass
        except KeyboardInterrupt:
            pass
    _assert_known_answers()


def test_stalled_worker_reply_is_discarded(checker_up):
    pid = verify._worker_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        (ok, reason), took = _timed(verify.is_equivalent, "x+1", "1+x", timeout=0.3)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (ok, reason) == (False, "timeout")
    assert took < 0.3 + BOUND + 0.2
    _assert_known_answers()  # the late "equal" for the abandoned request is never read
    assert verify._worker_pid() == pid


def test_unresponsive_worker_is_replaced(checker_up, monkeypatch):
    monkeypatch.setattr(verify, "_UNRESPONSIVE_AFTER", 0.1)
    pid = verify._worker_pid()
    os.kill(pid, signal.SIGSTOP)  # stays stopped: it is killed, not continued
    verdict, took = _timed(verify.is_equivalent, "x+1", "1+x", timeout=0.2)
    assert verdict == (False, "timeout") and took < 0.2 + BOUND + 0.2
    time.sleep(0.2)
    assert verify.is_equivalent("x+1", "1+x", timeout=5) == (True, "equal")
    assert verify._worker_pid() != pid
    assert _wait_until(lambda: _gone(pid), 3)


def test_hostile_answers_are_bounded_and_history_free(checker_up):
    took = []
    for hostile in HOSTILE:
        verdict, seconds = _timed(verify.is_equivalent, hostile, "1", timeout=0.5)
        assert verdict == (False, "timeout")
        took.append(seconds)
    assert max(took) < 0.5 + BOUND, took
    # same input, same verdict, whatever came before
    assert verify.is_equivalent("x+1", "1+x", timeout=0.5) == (True, "equal")
    assert verify.check_answer("\\boxed{\\frac{1}{3}}", "0.5", timeout=0.5).reason == "not_equal"


def test_concurrent_checks_do_not_wait_for_each_other(checker_up):
    jobs = [(h, "1", 0.5, (False, "timeout")) for h in HOSTILE[:4]]
    jobs += [(p, r, 5.0, (e, "equal" if e else "not_equal")) for p, r, e in KNOWN[:4]]
    barrier = threading.Barrier(len(jobs))
    results: dict[int, tuple] = {}

    def run(i: int) -> None:
        pred, ref, timeout, _ = jobs[i]
        barrier.wait()
        results[i] = _timed(verify.is_equivalent, pred, ref, timeout=timeout)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == len(jobs)
    for i, (_, _, timeout, expected) in enumerate(jobs):
        verdict, seconds = results[i]
        assert verdict == expected
        # hostile ones are each bounded; ordinary ones are not queued behind the hostile ones
        assert seconds < min(timeout, 0.5) + BOUND, (jobs[i], seconds)


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("inf"), float("nan"), 3601, 10**400])
def test_timeout_must_be_finite_and_positive(bad):
    with pytest.raises(ValueError, match="verify_timeout .*3600"):
        verify.validate_timeout(bad)
    with pytest.raises(ValueError, match="timeout"):
        verify.is_equivalent("\\frac{1}{2}", "0.5", timeout=bad)
    with pytest.raises(ValueError, match="timeout"):
        verify.check_answer("\\boxed{x}", "x", timeout=bad)


@pytest.mark.parametrize("bad", [True, "5", None, [5]])
def test_timeout_must_be_a_number(bad):
    with pytest.raises(TypeError, match="my_timeout"):
        verify.validate_timeout(bad, name="my_timeout")


def test_validate_timeout_accepts_numbers():
    assert verify.validate_timeout(5) == 5.0
    assert verify.validate_timeout(Fraction(1, 2)) == 0.5
    assert verify.validate_timeout(verify.MAX_TIMEOUT) == verify.MAX_TIMEOUT


def test_prewarm_is_idempotent_and_start_up_is_not_timed():
    verify._SERVICE.close()
    assert verify._worker_pid() is None
    _, took = _timed(verify.prewarm)
    pid = verify._worker_pid()
    verify.prewarm()
    assert pid is not None and verify._worker_pid() == pid
    assert took < 0.5  # does not wait for math-verify's import
    verify._SERVICE.close()
    # a cold check waits for the start-up, then gets its whole (short) timeout
    assert verify.is_equivalent("\\frac{1}{2}", "0.5", timeout=0.25) == (True, "equal")


@pytest.fixture()
def broken_worker(monkeypatch, tmp_path):
    """Point the service at a stand-in worker script; restores a real worker afterwards."""
    verify._SERVICE.close()

    def use(source: str) -> None:
        script = tmp_path / "worker.py"
        script.write_text(textwrap.dedent(source))
        monkeypatch.setattr(verify, "_WORKER_SCRIPT", str(script))

    yield use
    verify._SERVICE.close()
    monkeypatch.undo()
    assert verify.is_equivalent("\\frac{1}{2}", "0.5") == (True, "equal")


def test_worker_start_failures_raise_clear_errors(broken_worker, monkeypatch):
    broken_worker('print(\'{"fatal": "ImportError: no math_verify"}\', flush=True)')
    with pytest.raises(RuntimeError, match="could not start: ImportError: no math_verify"):
        verify.is_equivalent("x", "y")
    broken_worker("import sys; sys.exit(3)")
    with pytest.raises(RuntimeError, match="died twice.*exit code 3"):
        verify.is_equivalent("x", "y")
    broken_worker("import time; time.sleep(30)")
    monkeypatch.setattr(verify, "STARTUP_TIMEOUT", 0.5)
    with pytest.raises(RuntimeError, match="did not start within 0.5 s"):
        verify.is_equivalent("x", "y")
    # plain numbers never need the worker
    assert verify.is_equivalent("3/4", "0.75") == (True, "equal")


@linux_only
def test_killed_worker_is_replaced_and_its_checks_retried(checker_up):
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(out=_timed(verify.is_equivalent, HOSTILE[0], "1", timeout=1.0))
    )
    thread.start()
    pid = verify._worker_pid()
    assert _wait_until(lambda: len(_children(pid)) == 1, 3)
    grandchild = _children(pid)[0]
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    verdict, took = result["out"]
    assert verdict == (False, "timeout")  # retried on a fresh worker, not judged "wrong" silently
    assert verify._worker_pid() not in (None, pid)
    assert _wait_until(lambda: _gone(grandchild), 3)  # PR_SET_PDEATHSIG
    assert took < 10


CHILD = """
import threading, time
from llm_cmdp_env import verify
verify.is_equivalent("\\\\frac{1}{2}", "0.5")
threading.Thread(target=verify.is_equivalent, args=("9^{9^{9^{9}}}", "1"), kwargs={"timeout": 60}, daemon=True).start()
print(verify._worker_pid(), flush=True)
time.sleep(60)
"""


@linux_only
def test_worker_exits_when_its_parent_is_killed():
    root = Path(verify.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        timer = threading.Timer(30, child.kill)  # never hang the test on a broken child
        timer.start()
        zygote = int(child.stdout.readline())
        timer.cancel()
        assert _wait_until(lambda: len(_children(zygote)) == 1, 5)  # the hostile check is running
        grandchild = _children(zygote)[0]
        child.kill()
        child.wait()
        assert _wait_until(lambda: _gone(zygote) and _gone(grandchild), 5)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_process_gets_its_own_worker(checker_up):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            if verify._worker_pid() is None and verify.is_equivalent("x+1", "1+x") == (True, "equal"):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    _assert_known_answers()
