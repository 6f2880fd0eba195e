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

from llm_cmdp_env.judge import verify
from tests.child_env import child_env

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


@pytest.fixture()
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt during the test, whatever the runner inherited (a job started in the
    background of a non-interactive shell has SIGINT ignored)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_interrupted_checks_do_not_shift_later_verdicts(checker_up, ctrl_c_raises):
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
    """The retry on a fresh worker gets the checking time left: a check's wall time is its timeout (+ the reply
    margin) plus the time it waited for the new worker to start (what the docs state, measured here)."""
    result = {}
    waited = verify.startup_waited()
    thread = threading.Thread(
        target=lambda: result.update(out=_timed(verify.is_equivalent, HOSTILE[0], "1", timeout=1.0))
    )
    start = time.monotonic()
    thread.start()
    pid = verify._worker_pid()
    assert _wait_until(lambda: len(_children(pid)) == 1, 3)
    grandchild = _children(pid)[0]
    time.sleep(max(0.0, 0.7 - (time.monotonic() - start)))  # late in the check: the retry gets only the rest
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    verdict, took = result["out"]
    assert verdict == (False, "timeout")  # retried on a fresh worker, not judged "wrong" silently
    assert verify._worker_pid() not in (None, pid)
    assert _wait_until(lambda: _gone(grandchild), 3)  # PR_SET_PDEATHSIG
    restart = verify.startup_waited() - waited
    assert restart > 0 and took - restart < 1.0 + 0.4, (took, restart)  # not 0.7 s + a whole timeout again


CHILD = """
import threading, time
from llm_cmdp_env.judge import verify
verify.is_equivalent("\\\\frac{1}{2}", "0.5")
threading.Thread(target=verify.is_equivalent, args=("9^{9^{9^{9}}}", "1"), kwargs={"timeout": 60}, daemon=True).start()
print(verify._worker_pid(), flush=True)
time.sleep(60)
"""


@linux_only
def test_worker_exits_when_its_parent_is_killed():
    root = Path(verify.__file__).resolve().parent.parent
    env = child_env()
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


# ---- numbers that come in: attached log-probs, float kwargs, reset options, lengths

import csv  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from llm_cmdp_env.common.interrupts import GracefulInterrupt  # noqa: E402
from llm_cmdp_env.envs.math_distill import MathDistillEnv  # noqa: E402
from llm_cmdp_env.envs.vector import MathDistillVectorEnv  # noqa: E402
from llm_cmdp_env.episode.actions import TokenAction, VectorTokenAction  # noqa: E402
from llm_cmdp_env.replay.fast_path import replay, sample_problems  # noqa: E402


def _row(env: MathDistillEnv) -> torch.Tensor:
    """A valid full log-prob row of the env's vocabulary."""
    return torch.log_softmax(torch.randn(env.vocab_size, generator=torch.Generator().manual_seed(0)), -1)


BAD_ROWS = {
    "NaN": lambda r: torch.full_like(r, float("nan")),  # gave reverse_kl cost 0.0, a perfect score
    "positive": lambda r: r + 30.0,  # raw logits
    "summing": lambda r: r - 1.0,  # unnormalised
    "+inf": lambda r: torch.where(torch.arange(len(r)) == 3, torch.tensor(float("inf")), r),
}


@pytest.mark.parametrize("what", sorted(BAD_ROWS))
@pytest.mark.parametrize("divergence", ["reverse_kl", "forward_kl", "log_ratio"])
def test_bad_attached_logprobs_are_refused_everywhere(tiny_env_kwargs, what, divergence):
    env = MathDistillEnv(divergence=divergence, **tiny_env_kwargs)
    env.reset(seed=0)
    bad = BAD_ROWS[what](_row(env))
    expect = {"+inf": r"\+inf"}.get(what, what)
    with pytest.raises(ValueError, match=expect):  # the single env
        env.step(TokenAction(5, logprobs=bad))
    venv = MathDistillVectorEnv(num_envs=2, divergence=divergence, **tiny_env_kwargs)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=expect):  # the vector env
        venv.step(VectorTokenAction(np.array([5, 6]), logprobs=torch.stack([_row(env), bad])))
    problems = sample_problems(env, 1)
    comp = [5, 6] + [7] * (env.max_new_tokens - 2)
    rows = torch.stack([_row(env)] * len(comp))
    rows[1] = bad
    with pytest.raises(ValueError, match=expect):  # the fast path
        replay(env, problems, [comp], student_logprobs=[rows])


def test_valid_rows_with_impossible_tokens_are_accepted(tiny_env_kwargs):
    env = MathDistillEnv(divergence="reverse_kl", **tiny_env_kwargs)
    env.reset(seed=0)
    row = _row(env)
    row[:10] = float("-inf")  # tokens the policy never picks: zero probability is a log-prob of -inf
    row = torch.log_softmax(row, -1)
    _, _, _, _, info = env.step(TokenAction(20, logprobs=row))
    assert np.isfinite(info["cost"]) and info["cost"] >= 0


@pytest.mark.parametrize("value, match", [([-1.0, -2.0], "shape"), (0.5, "positive"), (float("-inf"), "could not"),
                                          (float("nan"), "NaN")])
def test_bad_taken_token_logprob_is_refused(tiny_env_kwargs, value, match):
    env = MathDistillEnv(divergence="log_ratio", **tiny_env_kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(TokenAction(5, logprob=value))  # [1, 2] silently used the first value before


def test_wrong_shapes_of_attached_logprobs(tiny_env_kwargs):
    env = MathDistillEnv(divergence="reverse_kl", **tiny_env_kwargs)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(TokenAction(5, logprobs=_row(env)[:-1]))
    venv = MathDistillVectorEnv(num_envs=2, divergence="reverse_kl", **tiny_env_kwargs)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="one per sub-env"):
        venv.step(VectorTokenAction(np.array([5, 6]), logprobs=_row(env)[None]))


@pytest.mark.parametrize("kwarg, value", [("format_reward", float("nan")), ("format_reward", float("inf")),
                                          ("verify_timeout", float("inf")), ("verify_timeout", 0.0),
                                          ("max_new_tokens", 0), ("max_new_tokens", 2.5)])
def test_float_and_int_kwargs_are_checked_at_construction(tiny_env_kwargs, kwarg, value):
    with pytest.raises((ValueError, TypeError), match=kwarg):
        MathDistillEnv(**{**tiny_env_kwargs, kwarg: value})


@pytest.mark.parametrize("options, error, match", [
    ({"problem": -1}, IndexError, "out of range"),  # -1 silently picked the last problem before
    ({"problem": 10**12}, IndexError, "out of range"),
    ({"problem": True}, TypeError, "Problem or an int"),
    ([("problem", 1)], TypeError, "must be a dict"),
    ({"problme": 3}, ValueError, "unknown reset options"),
])
def test_bad_reset_options(tiny_env_kwargs, tmp_path, options, error, match):
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"}) + "\n"
                            for i in range(5)))
    env = MathDistillEnv(**{**tiny_env_kwargs, "dataset": str(path)})
    with pytest.raises(error, match=match):
        env.reset(options=options)
    venv = MathDistillVectorEnv(num_envs=1, **{**tiny_env_kwargs, "dataset": str(path)})
    vector_options = {"problems": [options["problem"]]} if "problem" in options else options
    with pytest.raises(error, match=match.replace("dict", "dict")):
        venv.reset(options=vector_options)


def test_lengths_are_checked_against_the_position_table(tiny_env_kwargs):
    # the tiny teacher has 1024 positions: refused at construction, not ~900 steps in
    with pytest.raises(ValueError, match=r"160 \+ 2000 = 2160 exceeds the teacher's 1024 positions"):
        MathDistillEnv(**{**tiny_env_kwargs, "max_new_tokens": 2000})
    with pytest.raises(ValueError, match="exceeds"):  # refused before allocating gigabytes of observation
        MathDistillEnv(**{**tiny_env_kwargs, "max_new_tokens": 10**12})
    with pytest.raises(ValueError, match="exceeds the teacher's"):
        gym.make_vec("MathDistill-v0", num_envs=2, **{**tiny_env_kwargs, "max_prompt_tokens": 1020})


def test_graceful_interrupt_first_signal_sets_a_flag_second_raises(ctrl_c_raises):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with GracefulInterrupt(out=lambda m: None) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # restored


# ---- training runs: kills, corrupted checkpoints, resumed settings

def _train_args(tiny_dir, run: Path, updates: int = 4) -> list[str]:
    return ["train", "--teacher", str(tiny_dir / "teacher"), "--model", str(tiny_dir / "student"),
            "--max-new-tokens", "8", "--max-prompt-tokens", "160", "--constraint", "learned-lagrangian",
            "--budget", "40", "--updates", str(updates), "--prompts-per-update", "4", "--minibatch-size", "2",
            "--lr", "1e-2", "--eval-n", "3", "--eval-batch-size", "2", "--checkpoint-every", "1", "--threads", "1",
            "--no-progress", "--out", str(run)]


def _cli(args: list[str]) -> subprocess.Popen:
    env = child_env()
    return subprocess.Popen([sys.executable, "-m", "llm_cmdp_env.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(run: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader((run / "progress.csv").open())]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "final" / "model.safetensors"))


def _results(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    for k in ("train_seconds", "run_dir"):
        res.pop(k)
    res["last_update"].pop("seconds")
    return res


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_uninterrupted_result(tiny_dir, tmp_path, kill):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = _cli(_train_args(tiny_dir, straight))
    assert proc.wait(timeout=240) == 0, proc.stdout.read()

    proc = _cli(_train_args(tiny_dir, killed))
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "update_000002.pt").exists():  # kill during update 3
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
        time.sleep(0.02)
    proc.send_signal(kill)
    code = proc.wait(timeout=120)
    assert code == (-signal.SIGKILL if kill == signal.SIGKILL else 130)
    res = json.loads((killed / "results.json").read_text())
    assert res["before"] is not None  # the before-evaluation was on disk before training started
    if kill == signal.SIGTERM:  # graceful: checkpoint, curves and an honest status
        assert res["status"] == "interrupted" and (killed / "curves.png").is_file()

    proc = _cli(["train", "--out", str(killed), "--resume", "--no-progress", "--threads", "1"])
    out = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, out
    assert "resumed from" in out
    assert _rows(killed) == _rows(straight)
    assert _results(killed) == _results(straight)  # same before/after and eval n (3, not the default 100)
    assert _results(killed)["after"]["n"] == 3
    wa, wb = _weights(straight), _weights(killed)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


_KILL_AT = """import os, sys
real, seen = os.replace, [0]
def replace(src, dst):
    seen[0] += 1
    if seen[0] == int(os.environ["KILL_AT"]):
        os._exit(137)  # like SIGKILL: no cleanup, between two of the run's writes
    return real(src, dst)
os.replace = replace
from llm_cmdp_env.cli import run
sys.argv = ["llm-cmdp", *sys.argv[1:]]
run()
"""


def test_a_kill_between_any_two_writes_leaves_a_run_that_resumes_to_the_uninterrupted_result(tiny_dir, tmp_path):
    """Every file a run writes is renamed into place (a checkpoint and its digest in one rename). Killed just
    before each of those renames in turn, the run resumes (``--resume``; killed before its settings existed: a fresh
    start) to the weights, log and results of a run that was never killed."""
    straight = tmp_path / "straight"
    proc = _cli(_train_args(tiny_dir, straight, updates=2))
    assert proc.wait(timeout=240) == 0, proc.stdout.read()
    script = tmp_path / "kill_at.py"
    script.write_text(_KILL_AT)
    renames = 12  # config, results, progress, 5 checkpoints, curves, final/, results, curves (measured)
    runs = {k: tmp_path / f"killed_{k}" for k in range(1, renames + 1)}
    for group in (list(runs)[i: i + 4] for i in range(0, renames, 4)):  # four at a time on two cores
        procs = [subprocess.Popen([sys.executable, str(script), *_train_args(tiny_dir, runs[k], updates=2)],
                                  env=child_env(KILL_AT=str(k)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for k in group]
        assert [p.wait(timeout=300) for p in procs] == [137] * len(group)
    for group in (list(runs)[i: i + 4] for i in range(0, renames, 4)):
        procs = {k: _cli([*_train_args(tiny_dir, runs[k], updates=2), "--resume"]) for k in group}
        for k, p in procs.items():
            out = p.communicate(timeout=300)[0]
            if p.returncode and "is not a run folder" in out:  # killed before config.json: start it afresh
                p = _cli(_train_args(tiny_dir, runs[k], updates=2))
                out = p.communicate(timeout=300)[0]
            assert p.returncode == 0, (k, out)
    for k, run in runs.items():
        assert _rows(run) == _rows(straight), k
        assert _results(run) == _results(straight), k
        wa, wb = _weights(straight), _weights(run)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[n], wb[n]) for n in wa), k


def test_corrupted_checkpoints_are_named_and_skipped(tiny_dir, tmp_path, capsys):
    from llm_cmdp_agents.run.checkpoint import CheckpointError, latest_checkpoint, verify_checkpoint
    from llm_cmdp_env.cli import main

    run = tmp_path / "run"
    assert main(_train_args(tiny_dir, run, updates=3)) == 0
    ckpts = run / "checkpoints"
    latest = ckpts / "latest.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a few flipped bytes: refused, never resumed with garbage optimiser state
    latest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="latest.pt.*does not match"):
        verify_checkpoint(latest)
    assert latest_checkpoint(run) == ckpts / "update_000003.pt"
    assert "latest.pt" in capsys.readouterr().err
    half = ckpts / "update_000003.pt"
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])  # cut in half
    assert latest_checkpoint(run) == ckpts / "update_000002.pt"
    for p in ckpts.glob("*.pt"):
        p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        latest_checkpoint(run)
    shutil.rmtree(ckpts)
    assert latest_checkpoint(run) is None


def test_resume_keeps_the_runs_settings(tiny_dir, tmp_path, capsys):
    from llm_cmdp_env.cli import main

    run = tmp_path / "run"
    assert main(_train_args(tiny_dir, run, updates=2)) == 0
    with pytest.raises(ValueError, match="train.lr"):  # a resumed run keeps its settings
        main(["train", "--out", str(run), "--resume", "--lr", "0.5", "--no-progress"])
    assert main(["train", "--out", str(run), "--resume", "--updates", "3", "--no-progress"]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["after"]["n"] == 3 and res["before"]["n"] == 3 and res["updates"] == 3  # not the CLI default 100
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["eval"]["n"] == 3 and cfg["train"]["updates"] == 3


def test_nan_costs_are_refused_by_the_wrappers():
    from llm_cmdp_env.wrappers import apply_constraint, apply_vector_constraint
    from tests.fake_cmdp import Episode, FakeCMDP

    env = apply_constraint(FakeCMDP([Episode([float("nan")])]), "budget", budget=1.0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="nan"):
        env.step(1)
    venv = apply_vector_constraint(gym.vector.SyncVectorEnv([lambda: FakeCMDP([Episode([float("nan")])])] * 2),
                                   "budget", budget=1.0)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="nan"):
        venv.step(np.array([1, 1]))


def test_a_reused_base_env_must_be_bare_and_of_the_asked_split(tiny_env_kwargs):
    """Evaluating on a training env's problems would silently score the wrong split."""
    from llm_cmdp_agents.run.build import make_env
    from llm_cmdp_agents.run.config import EnvConfig

    cfg = EnvConfig(teacher=tiny_env_kwargs["teacher"], max_new_tokens=8, max_prompt_tokens=160,
                    constraint="budget", budget=5.0)
    train = make_env(cfg, "train")
    with pytest.raises(TypeError, match="bare MathDistillEnv"):
        make_env(cfg, "test", base=train)
    with pytest.raises(ValueError, match="'train' split, 'test' was asked"):
        make_env(cfg, "test", base=train.unwrapped)
    assert make_env(cfg, "train", base=train.unwrapped).unwrapped is train.unwrapped


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly():
    """``llm-cmdp ... | head``: the write that finds the pipe closed ends the command with status 1 and no
    traceback (before: a BrokenPipeError traceback, then a second one from the exit's flush). The command here
    prints 200 kB, more than a pipe holds, so its writes fail whether or not they start before the close."""
    code = "from llm_cmdp_env import cli; cli.main = lambda: print('x' * 200_000) or 0; cli.run()"
    job = subprocess.Popen([sys.executable, "-c", code], env=child_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    job.stdout.close()
    err = job.stderr.read()
    assert job.wait(timeout=120) == 1, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
