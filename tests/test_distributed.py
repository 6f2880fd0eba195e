"""Data-parallel training (torchrun, gloo on CPU): 2 processes follow 1 process with the same global batch,
resume with another number of ranks, and stop when a rank dies."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llm_cmdp_agents.engine.distributed import World
from tests.child_env import child_env

ROOT = Path(__file__).resolve().parents[1]

#: relative tolerance on logged statistics between 1 and 2 processes (float32 reductions in another order:
#: 1e-6 seen), and absolute tolerance on the trained weights after 3 AdamW steps at lr 1e-2 (3.5e-6 seen)
STAT_RTOL, WEIGHT_ATOL = 1e-4, 1e-4


def _run(tiny_dir: Path, out: Path, procs: int, updates: int = 3, resume: bool = False,
         extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = (["train", "--out", str(out), "--resume", "--updates", str(updates), "--no-progress", "--threads", "1"]
            if resume else
            ["train", "--teacher", str(tiny_dir / "teacher"), "--model", str(tiny_dir / "student"),
             "--max-new-tokens", "8", "--max-prompt-tokens", "160", "--constraint", "learned-lagrangian",
             "--budget", "40", "--updates", str(updates), "--prompts-per-update", "4", "--minibatch-size", "2",
             "--lr", "1e-2", "--eval-n", "6", "--eval-batch-size", "2", "--threads", "1", "--no-progress",
             "--checkpoint-every", "1", "--out", str(out), *extra])
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)] if procs > 1
                else [sys.executable])
    env = child_env()
    return subprocess.run([*launcher, "-m", "llm_cmdp_env.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "progress.csv").open()))


def _same_curve(a: Path, b: Path) -> None:
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        for k in ("update", "episodes", "accuracy", "length"):  # same completions: exactly equal
            assert x[k] == y[k], (k, x[k], y[k])
        for k, v in x.items():
            if k != "seconds" and v and y[k]:
                np.testing.assert_allclose(float(y[k]), float(v), rtol=STAT_RTOL, atol=1e-7, err_msg=k)


def _same_weights(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "final" / "model.safetensors")), load_file(str(b / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], atol=WEIGHT_ATOL, rtol=0, msg=k)


def test_two_processes_follow_one_and_resume_on_another_count(tiny_dir, tmp_path):
    one, two, mixed = tmp_path / "one", tmp_path / "two", tmp_path / "mixed"
    for out, procs in ((one, 1), (two, 2)):
        res = _run(tiny_dir, out, procs)
        assert res.returncode == 0, res.stdout + res.stderr
    _same_curve(one, two)
    _same_weights(one, two)
    r1, r2 = json.loads((one / "results.json").read_text()), json.loads((two / "results.json").read_text())
    assert r2["before"] == r1["before"] and r2["after"] == r1["after"]  # sharded evaluation, same numbers
    assert json.loads((two / "config.json").read_text())["world_size"] == 2 and r2["world_size"] == 2
    assert not list(tmp_path.glob("two/**/*rank*"))  # rank 0 alone wrote the folder

    # 2 updates on 2 processes, then the 3rd on 1 process: the same run
    assert _run(tiny_dir, mixed, 2, updates=2).returncode == 0
    res = _run(tiny_dir, mixed, 1, updates=3, resume=True)
    assert res.returncode == 0, res.stdout + res.stderr
    _same_curve(one, mixed)
    _same_weights(one, mixed)


def test_fsdp_two_processes_follow_one_and_resume_on_one_or_two(tiny_dir, tmp_path):
    """The student sharded over 2 ranks (FSDP2) trains as 1 process does; its checkpoints hold full state dicts,
    so the run resumes on 1 process; the final model is a plain one."""
    one, two, mixed = tmp_path / "one", tmp_path / "two", tmp_path / "mixed"
    assert _run(tiny_dir, one, 1).returncode == 0
    res = _run(tiny_dir, two, 2, extra=("--parallel", "fsdp"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads((two / "config.json").read_text())["train"]["parallel"] == "fsdp"
    assert "FSDP: the student is sharded over 2 ranks" in res.stdout
    r1, r2 = json.loads((one / "results.json").read_text()), json.loads((two / "results.json").read_text())
    full = r1["student_parameters_per_rank"]
    assert full // 2 <= r2["student_parameters_per_rank"] < full  # each rank holds about half (dim-0 shards)
    _same_curve(one, two)
    _same_weights(one, two)
    # 3 evaluation batches on 2 ranks: the rank without a third batch ran a dummy one in lockstep, dropped
    assert r2["before"] == r1["before"] and r2["after"] == r1["after"]

    # 2 updates on 2 FSDP ranks, then the 3rd on 1 process, and (from the same checkpoint) on 2 ranks again: the
    # full state dicts load into an unsharded and into a sharded student alike
    assert _run(tiny_dir, mixed, 2, updates=2, extra=("--parallel", "fsdp")).returncode == 0
    again = tmp_path / "again"
    shutil.copytree(mixed, again)
    res = _run(tiny_dir, mixed, 1, updates=3, resume=True)
    assert res.returncode == 0, res.stdout + res.stderr
    _same_curve(one, mixed)
    _same_weights(one, mixed)
    res = _run(tiny_dir, again, 2, updates=3, resume=True)
    assert res.returncode == 0, res.stdout + res.stderr
    _same_curve(one, again)
    _same_weights(one, again)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks through /proc")
def test_a_dead_rank_stops_the_job(tiny_dir, tmp_path):
    out = tmp_path / "dies"
    args = ["train", "--teacher", str(tiny_dir / "teacher"), "--model", str(tiny_dir / "student"),
            "--max-new-tokens", "8", "--max-prompt-tokens", "160", "--updates", "10000", "--prompts-per-update", "4",
            "--minibatch-size", "2", "--eval-n", "0", "--threads", "1", "--no-progress", "--out", str(out)]
    env = child_env()
    job = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                            "llm_cmdp_env.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (out / "progress.csv").is_file() or len(_rows(out)) < 2:  # training is under way
            assert job.poll() is None and time.time() < deadline, job.stderr.read() if job.poll() else "timeout"
            time.sleep(0.2)
        ranks = _children(job.pid)  # torchrun's workers
        assert len(ranks) == 2, ranks
        os.kill(max(ranks), signal.SIGKILL)  # one rank dies; the other must not hang in a collective
        code = job.wait(timeout=90)
        assert code != 0
    finally:  # never leave a rank training behind (torchrun starts its workers in their own sessions)
        for pid in _children(job.pid):
            os.kill(pid, signal.SIGKILL)
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


def test_a_world_of_one_is_the_identity():
    w = World()
    assert not w.active and w.is_main and w.share(6) == slice(0, 6)
    np.testing.assert_array_equal(w.sum([1.5, 2.0]), [1.5, 2.0])
    assert w.gather({"a": 1}) == [{"a": 1}] and w.concat([3, 4]) == [3, 4] and w.broadcast("x") == "x"
    assert w.all_true(True) and not w.all_true(False)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        World(rank=1, size=4).share(6)
    assert World(rank=1, size=2).share(6) == slice(3, 6)
