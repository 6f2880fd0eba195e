"""Run folders and the CLI's own defaults: one writer per folder, bit-exact resume with the default
thread count, dependent defaults applied after every flag, corrupted config/results files named, and an
evaluation size the split cannot hold refused before anything is written."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_cmdp_agents.algos.registry import ALGORITHMS
from llm_cmdp_agents.run.lock import LOCK_FILE, RunLock, RunLockedError
from llm_cmdp_env.cli import main
from tests.child_env import child_env
from tests.test_faults import _results, _rows, _train_args, _weights


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ---- 1. one writer per run folder


def test_a_second_process_on_a_run_folder_gets_a_clear_error_and_writes_nothing(tiny_dir, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom llm_cmdp_agents.run.lock import RunLock\n"
                               f"RunLock({str(run)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(120)"],
                              env=child_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _files(run)
        with pytest.raises(RunLockedError, match=rf"{run}.*in use by pid {holder.pid} on host {socket.gethostname()}"):
            main(_train_args(tiny_dir, run, updates=1))
        assert _files(run) == before == [LOCK_FILE]
        holder.send_signal(signal.SIGKILL)  # dies holding it: the file stays, the kernel drops the flock
        holder.wait(timeout=30)
        assert (run / LOCK_FILE).is_file()
        notes: list[str] = []
        with RunLock(run, note=notes.append):  # a dead pid's lock is taken over, and said so
            assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
        assert notes and f"pid {holder.pid}" in notes[0] and "stale" in notes[0]
        assert _files(run) == []  # released: the lock file is gone
    finally:
        holder.kill()


def test_a_lock_left_by_another_host_needs_force(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": time.time()}))
    with pytest.raises(RunLockedError, match="host elsewhere.*--force"):
        RunLock(run).acquire()
    assert json.loads((run / LOCK_FILE).read_text())["host"] == "elsewhere"  # untouched
    with RunLock(run, force=True, note=lambda m: None):
        assert json.loads((run / LOCK_FILE).read_text())["host"] == socket.gethostname()
    assert not (run / LOCK_FILE).exists() and run.is_dir()  # released; a folder it did not make stays


def test_a_finished_run_releases_its_folder(tiny_dir, tmp_path):
    run = tmp_path / "run"
    assert main(_train_args(tiny_dir, run, updates=1)) == 0
    assert not (run / LOCK_FILE).exists()
    assert main(["train", "--out", str(run), "--resume", "--updates", "2", "--no-progress"]) == 0


# ---- 3. the default thread count: fixed at start, recorded, reused on resume


def _one_core() -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _cli(args: list[str], one_core: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llm_cmdp_env.cli", *args], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_one_core if one_core else None)


def _default_threads(args: list[str]) -> list[str]:
    i = args.index("--threads")
    return args[:i] + args[i + 2:]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_killed_run_resumed_with_default_flags_is_bit_exact(tiny_dir, tmp_path):
    """The first runs see one core (so they choose the same count whatever the load); the resume sees every
    core, and must still use the recorded count."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = _cli(_default_threads(_train_args(tiny_dir, straight)), one_core=True)
    assert proc.wait(timeout=240) == 0, proc.stdout.read()
    assert json.loads((straight / "config.json").read_text())["threads"] == 1
    proc = _cli(_default_threads(_train_args(tiny_dir, killed)), one_core=True)
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "update_000002.pt").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "timeout"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc = _cli(["train", "--out", str(killed), "--resume", "--no-progress"], one_core=False)
    out = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, out
    assert _rows(killed) == _rows(straight) and _results(killed) == _results(straight)
    wa, wb = _weights(straight), _weights(killed)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_resume_reuses_the_recorded_thread_count(tiny_dir, tmp_path, monkeypatch):
    import torch

    from llm_cmdp_env.cli import commands

    run = tmp_path / "run"
    old = torch.get_num_threads()
    try:
        monkeypatch.setattr(commands, "default_threads", lambda: 1)
        assert main(_default_threads(_train_args(tiny_dir, run, updates=1))) == 0
        assert json.loads((run / "config.json").read_text())["threads"] == 1
        seen = []
        monkeypatch.setattr(commands, "default_threads", lambda: 2)  # more cores free now
        from llm_cmdp_agents.run import folder as runs

        train_run = runs.train_run

        def spy(*a, **kw):
            seen.append((torch.get_num_threads(), kw["threads"]))
            return train_run(*a, **kw)

        monkeypatch.setattr(runs, "train_run", spy)
        assert main(["train", "--out", str(run), "--resume", "--updates", "2", "--no-progress"]) == 0
        assert seen == [(1, 1)]
        assert json.loads((run / "config.json").read_text())["threads"] == 1
    finally:
        torch.set_num_threads(old)


def test_adaptive_threads_are_recorded_as_such(capsys):
    assert main(["train", "--threads", "adaptive", "--print-config"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--threads", "many", "--print-config"])
    assert "'adaptive'" in capsys.readouterr().err


# ---- 4. defaults that depend on another flag


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_algo_alone_resolves_its_own_defaults(algo, capsys):
    assert main(["train", "--algo", algo, "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["algo"] == algo
    assert cfg["train"]["group_size"] == ALGORITHMS[algo].config.default_group_size
    assert cfg["train"]["group_size"] == {"ppo": 1, "grpo": 4, "gkd": 1, "minillm": 1}[algo]


def test_dependent_defaults_follow_a_config_file_too(tmp_path, capsys):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"train": {"algo": "grpo"}}))
    assert main(["train", "--config", str(f), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["group_size"] == 4
    with pytest.raises(ValueError, match="grpo needs group_size >= 2"):  # an explicit 1 is still refused
        main(["train", "--algo", "grpo", "--group-size", "1", "--print-config"])


def test_two_runs_of_one_command_give_the_same_numbers_lora_adapters_included(tiny_dir, tmp_path):
    """LoRA adapters start from random weights: they are drawn from the run's seed, so two processes running the same
    command train the same run (and a resumed run's "before" evaluates the same untrained policy)."""
    pytest.importorskip("peft")
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        proc = subprocess.run([sys.executable, "-m", "llm_cmdp_env.cli", *_train_args(tiny_dir, run, updates=2),
                               "--lora-r", "2"], env=child_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _rows(runs[0]) == _rows(runs[1]) and _results(runs[0]) == _results(runs[1])
    assert all((_weights(runs[0])[k] == v).all() for k, v in _weights(runs[1]).items())


# ---- 7. corrupted run files; which weights an evaluation scored


def test_truncated_config_and_results_are_named(tiny_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(tiny_dir, run, updates=2)) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["weights"] == str(run / "final")
    results = run / "results.json"
    results.write_text(results.read_text()[:40])
    with pytest.raises(ValueError, match=rf"{results} is not valid JSON.*Delete it and resume"):
        main(["train", "--out", str(run), "--resume", "--updates", "3", "--no-progress"])
    config = run / "config.json"
    good = config.read_text()
    config.write_text(good[:50])
    with pytest.raises(ValueError, match=rf"{config} is not valid JSON.*llm-cmdp eval {run / 'final'}"):
        main(["eval", str(run), "--n", "2"])
    config.write_text(good)
    import shutil

    shutil.rmtree(run / "final")  # a run without final/: its newest checkpoint is what gets evaluated
    assert main(["eval", str(run), "--n", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["weights"].endswith("latest.pt")


# ---- 10. an evaluation larger than its split


def test_eval_n_larger_than_the_split_names_the_flag_and_leaves_no_folder(tiny_dir, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"})
                           for i in range(30)) + "\n")
    run = tmp_path / "run"
    args = _train_args(tiny_dir, run, updates=1)
    args[args.index("--eval-n") + 1] = "4"
    with pytest.raises(ValueError, match=r"--eval-n=4 asks for 4 problems.*'test' split.*has 3: lower --eval-n"):
        main([*args, "--dataset", str(f)])
    assert not run.exists()
    args[args.index("--eval-n") + 1] = "3"  # a single file: trained on 27 problems, evaluated on the other 3
    assert main([*args, "--dataset", str(f)]) == 0
    assert json.loads((run / "results.json").read_text())["after"]["n"] == 3


# ---- comparisons: one writer per output folder and archive; Ctrl-C, SIGTERM and a full disk end in one line


def _sweep_config(tiny_dir, tmp_path, **extra) -> dict:
    return {"out": str(tmp_path / "sweep"), "archive": str(tmp_path / "archive"), "seeds": [0, 1], "budgets": [40.0],
            "threads": 1, "references": False,
            "env": {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 4, "max_prompt_tokens": 160},
            "policy": {"model": str(tiny_dir / "student"), "device": "cpu"},
            "train": {"algo": "grpo", "group_size": 2, "updates": 2, "prompts_per_update": 2, "checkpoint_every": 0},
            "eval": {"split": "test", "n": 2, "batch_size": 2},
            "methods": [{"name": "b", "constraint": "budget"}, {"name": "t", "constraint": "none"}], **extra}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("held", ["sweep", "archive"])
def test_a_second_sweep_on_a_folder_or_an_archive_in_use_is_refused_and_writes_nothing(tiny_dir, tmp_path, held):
    from llm_cmdp_agents.experiments.compare import run_compare

    cfg = _sweep_config(tiny_dir, tmp_path)
    other = dict(cfg, out=str(tmp_path / "other"))  # another output folder, the same archive
    with RunLock(tmp_path / held, what="a test's folder"):
        before = _files(tmp_path)
        with pytest.raises(RunLockedError, match=rf"{held} is in use by pid {os.getpid()}"):
            run_compare(cfg if held == "sweep" else other, progress=False)
        assert _files(tmp_path) == before  # nothing written, no folder made
    assert run_compare(cfg, progress=False, phase="test")["runs"]  # free again: it runs


def test_two_sweeps_started_together_on_one_folder_run_once(tiny_dir, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(_sweep_config(tiny_dir, tmp_path)))
    cmd = [sys.executable, "-m", "llm_cmdp_env.cli", "compare", "--config", str(cfg), "--phase", "test",
           "--no-progress"]
    procs = [subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = next(err for (_, err), p in zip(outs, procs) if p.returncode == 2)
    assert "is in use by pid" in refused and "Traceback" not in refused
    rows = [r["update"] for r in csv.DictReader(next((tmp_path / "sweep").rglob("progress.csv")).open())]
    assert rows == ["1", "2"]  # one writer: no interleaved rows


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_sweep_ends_in_one_line_and_the_sweep_resumes(tiny_dir, tmp_path, sig):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(_sweep_config(tiny_dir, tmp_path, train={
        "algo": "grpo", "group_size": 2, "updates": 40, "prompts_per_update": 2, "checkpoint_every": 0})))
    cmd = [sys.executable, "-m", "llm_cmdp_env.cli", "compare", "--config", str(cfg), "--phase", "test",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((tmp_path / "sweep").rglob("progress.csv")) and time.time() < deadline:
        time.sleep(0.2)  # the first run is training
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to continue" in err
    assert not list((tmp_path / "sweep").rglob("eval.json"))  # the stopped run recorded nothing
    again = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "archive").rglob("seed_*.json"))) == 4


def test_a_full_disk_during_a_sweep_is_one_line_and_leaves_no_partial_record(tiny_dir, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(_sweep_config(tiny_dir, tmp_path)))
    code = ("import errno, os, sys\n"
            "import llm_cmdp_env.common.atomic_io as aio\n"
            "real = aio.os.replace\n"
            "def replace(src, dst):\n"
            "    if str(dst).endswith('eval.json'):\n"
            "        raise OSError(errno.ENOSPC, 'No space left on device', str(dst))\n"
            "    return real(src, dst)\n"
            "aio.os.replace = replace\n"
            "from llm_cmdp_env.cli import run\n"
            f"sys.argv = ['llm-cmdp', 'compare', '--config', {str(cfg)!r}, '--phase', 'test', '--no-progress']\n"
            "run()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "llm-cmdp: error: [Errno 28] No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("eval.json")) and not list(tmp_path.rglob("*.tmp"))
