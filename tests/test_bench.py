"""``llm-cmdp bench``: an outside algorithm, defined here, runs under the compare protocol and gets a row in the
same table, records and plot; its reward and cost are the env's; bad ``--algo`` strings get clear errors."""

import json
import os
from pathlib import Path

import pytest

from llm_cmdp_agents.experiments.bench import ComputeLimit, resolve_algo
from llm_cmdp_env.cli import main


class _Calls:
    """The calls of the outside algorithm, which runs in a process of its own: one JSON line each in the file named
    by ``$BENCH_CALLS``."""

    def append(self, call: dict) -> None:
        with open(os.environ["BENCH_CALLS"], "a") as f:
            f.write(json.dumps(call) + "\n")

    def __iter__(self):
        path = Path(os.environ["BENCH_CALLS"])
        return iter([json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else [])

    def __eq__(self, other):
        return list(self) == other

    def clear(self) -> None:
        Path(os.environ["BENCH_CALLS"]).unlink(missing_ok=True)


CALLS = _Calls()


@pytest.fixture(autouse=True)
def _calls_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CALLS", str(tmp_path / "calls.jsonl"))


def eos_after_two(make_env, budget, seed, limit, token=5):
    """A tiny outside "algorithm": plays a few episodes within its limit, then returns a fixed policy that writes
    ``token`` twice and stops (EOS)."""
    assert isinstance(limit, ComputeLimit) and limit.episodes > 0
    env = make_env()
    eos = env.unwrapped.tokenizer.eos_token_id
    for episode in range(min(2, limit.episodes)):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(int(env.action_space.sample()))
            done = terminated or truncated
    CALLS.append({"budget": budget, "seed": seed, "limit": limit.episodes, "token": token})
    return _FixedCompletion(token, eos)


class _FixedCompletion:
    """``predict`` like stable-baselines3: ``token``, ``token``, EOS, counted per episode from the observation."""

    def __init__(self, token: int, eos: int) -> None:
        self.token, self.eos, self.last, self.written = token, eos, None, 0

    def predict(self, obs, deterministic=True):
        ids = obs["input_ids"][obs["attention_mask"] == 1].tolist()
        same = self.last is not None and len(ids) == len(self.last) + 1 and ids[:-1] == self.last
        self.written = self.written + 1 if same else 0  # one more token of this episode, or a new episode
        self.last = ids
        return (self.token if self.written < 2 else self.eos), None


not_callable = 3


def returns_nothing(make_env, budget, seed, limit):
    return None


def _config(tiny_dir, tmp_path) -> dict:
    return {
        "out": str(tmp_path / "bench"),
        "seeds": [0, 1],
        "budgets": [40.0, 60.0],
        "workers": 1,
        "threads": 1,
        "env": {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 8, "max_prompt_tokens": 160},
        "policy": {"model": str(tiny_dir / "student"), "device": "cpu"},
        "train": {"algo": "grpo", "group_size": 2, "updates": 1, "prompts_per_update": 2, "lr": 1e-3,
                  "checkpoint_every": 0},
        "eval": {"split": "test", "n": 3},
        "references": False,
        "methods": [{"name": "budget reward", "constraint": "budget"}],
    }


def test_an_outside_algorithm_gets_a_row_under_the_same_protocol(tiny_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(_config(tiny_dir, tmp_path)))
    CALLS.clear()
    args = ["bench", "--config", str(path), "--algo", "tests.test_bench:eos_after_two", "--name", "fixed",
            "--options", '{"token": 7}', "--no-progress", "--threads", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| fixed |" in text and "| budget reward |" in text and "budget reward − fixed" in text
    # called once per (budget, seed), with the protocol's budget, seeds and training limit (1 x 2 x 2 episodes)
    assert sorted((c["budget"], c["seed"]) for c in CALLS) == [(40.0, 0), (40.0, 1), (60.0, 0), (60.0, 1)]
    assert {c["limit"] for c in CALLS} == {4} and {c["token"] for c in CALLS} == {7}
    out = tmp_path / "bench"
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    mine = [r for r in recs if r["method"] == "fixed"]
    assert len(mine) == 4 and {r["method_id"] for r in mine} == {"outside:tests.test_bench:eos_after_two"}
    assert {r["split"] for r in mine} == {"test"} and all(len(r["per_problem"]["correct"]) == 3 for r in mine)
    assert all(r["per_problem"]["correct"] == "000" for r in mine)  # "7 7 <eos>" answers nothing
    assert (out / "pareto.png").stat().st_size > 1000 and (out / "bench_config.json").is_file()
    run = json.loads(next((out / "test" / "fixed").rglob("eval.json")).read_text())
    assert run["train_last"]["episodes"] == 2 and run["train_last"]["limit_episodes"] == 4

    # the recorded costs are the env's for those actions: replay problem i by hand through the same stack
    from llm_cmdp_agents.run.build import make_eval_env
    from llm_cmdp_agents.run.config import EnvConfig, EvalConfig, RunConfig

    cfg = _config(tiny_dir, tmp_path)
    env = make_eval_env(RunConfig(EnvConfig(**{**cfg["env"], "constraint": "none", "budget": run["budget"]}),
                                  eval=EvalConfig(n=3, split="test")))
    eos = env.unwrapped.tokenizer.eos_token_id
    for i in range(3):
        env.reset(seed=0, options={"problem": i})
        total = 0.0
        for tok in (7, 7, eos):
            _, _, terminated, truncated, info = env.step(tok)
            total += info["cost"]
        assert terminated and run["per_problem"]["cost"][i] == pytest.approx(total, rel=1e-6)
        assert run["per_problem"]["length"][i] == 3

    # resumable: a second call reuses every finished run (the function is not called again)
    CALLS.clear()
    assert main(args) == 0
    assert CALLS == []


@pytest.mark.parametrize("algo, error, match", [
    ("tests.test_bench", ValueError, "package.module:function"),
    ("tests.test_bench:", ValueError, "package.module:function"),
    ("no_such_module_x:fn", ValueError, "cannot import module 'no_such_module_x'"),
    ("tests.test_bench:missing", ValueError, "has no attribute 'missing'"),
    ("tests.test_bench:not_callable", TypeError, "not a function"),
])
def test_bad_algo_strings_are_refused(algo, error, match):
    with pytest.raises(error, match=match):
        resolve_algo(algo)


def test_a_bad_return_value_is_named(tiny_dir, tmp_path):
    path = tmp_path / "cfg.json"
    cfg = _config(tiny_dir, tmp_path)
    cfg.update(seeds=[0], budgets=[40.0], methods=cfg["methods"])
    path.write_text(json.dumps(cfg))
    with pytest.raises(TypeError, match="returned a NoneType.*LLMPolicy"):
        main(["bench", "--config", str(path), "--algo", "tests.test_bench:returns_nothing", "--no-progress",
              "--phase", "test"])
    with pytest.raises(ValueError, match="already in the config"):
        main(["bench", "--config", str(path), "--algo", "tests.test_bench:eos_after_two", "--name", "budget reward"])
    with pytest.raises(ValueError, match="--options must be a JSON object"):
        main(["bench", "--config", str(path), "--algo", "tests.test_bench:eos_after_two", "--options", "[1]"])


def exits(make_env, budget, seed, limit):
    import sys

    sys.exit(0)


def over_the_limit(make_env, budget, seed, limit, token=5):
    """Plays one episode more than its limit allows."""
    env = make_env()
    for episode in range(limit.episodes + 1):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(int(env.action_space.sample()))
            done = terminated or truncated
    return _FixedCompletion(token, env.unwrapped.tokenizer.eos_token_id)


def hangs(make_env, budget, seed, limit):
    import time

    time.sleep(3600)


def _bench(tiny_dir, tmp_path, algo, *extra, methods=None):
    cfg = _config(tiny_dir, tmp_path)
    if methods is not None:
        cfg["methods"] = methods
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return ["bench", "--config", str(path), "--algo", f"tests.test_bench:{algo}", "--no-progress", "--threads", "1",
            *extra]


def test_an_algorithm_that_exits_is_an_error_naming_the_run_not_a_success(tiny_dir, tmp_path):
    with pytest.raises(RuntimeError, match=r"outside method exits \(seed 0, budget 40.0\) ended its process"):
        main(_bench(tiny_dir, tmp_path, "exits", methods=[]))
    assert not list(tmp_path.rglob("eval.json")) and not (tmp_path / "bench" / "results.md").exists()


def test_compute_over_the_limit_is_recorded_and_flagged_in_the_report(tiny_dir, tmp_path, capsys):
    assert main(_bench(tiny_dir, tmp_path, "over_the_limit", methods=[])) == 0  # the outside method alone
    out = capsys.readouterr().out
    assert "over_the_limit (outside method): 5–5 training episodes per run, of the limit of 4" in out
    assert "2 of 2 runs over it: not a like-for-like row" in out  # per budget: its two seeds
    run = json.loads(next((tmp_path / "bench").rglob("eval.json")).read_text())
    assert run["train_last"]["over_limit"] is True and run["eval_seconds"] > 0
    recs = [json.loads(line) for line in (tmp_path / "bench" / "records.jsonl").read_text().splitlines()]
    assert all(r["train_last"]["episodes"] == 5 for r in recs)


def test_a_hanging_algorithm_is_stopped_at_its_time_limit_and_the_finished_runs_are_kept(tiny_dir, tmp_path):
    args = _bench(tiny_dir, tmp_path, "hangs", "--time-limit", "0.1")
    with pytest.raises(RuntimeError, match="ran past its time limit of 6 s and was stopped"):
        main(args)
    kept = list((tmp_path / "bench" / "test" / "budget-reward").rglob("eval.json"))
    assert kept  # the built-in method's runs before it were kept


def test_bench_status_reads_what_is_finished(tiny_dir, tmp_path, capsys):
    assert main(_bench(tiny_dir, tmp_path, "eos_after_two", "--phase", "status")) == 0
    assert "test: 0/" in capsys.readouterr().out


def test_file_paths_in_a_setting_are_shortened_in_the_table():
    from llm_cmdp_agents.experiments.report import _setting_text

    text = _setting_text({"options": {"model": "/a/very/long/path/to/some/checkpoint-folder", "lr": 1e-5}})
    assert text == '{"options": {"model": ".../checkpoint-folder", "lr": 1e-05}}'
