"""Inputs that must never give wrong or lost numbers without a word: reference answers with trailing text,
budgets no episode can meet, huge question lines, Gymnasium's ``max_episode_steps``, ``render()`` without a
render mode, and your own dataset by name."""

import json
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_env import cli, data
from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.tasks import load_task
from llm_cmdp_env.wrappers import CONSTRAINTS, BudgetRewardWrapper, apply_constraint


def _line(question: str, answer: str) -> str:
    return json.dumps({"question": question, "answer": answer})


def _play(env: MathDistillEnv, text: str) -> tuple[float, dict]:
    """Step the completion ``text`` + EOS through ``env``; the last reward and info."""
    ids = env.tokenizer(text, add_special_tokens=False)["input_ids"] + [env.tokenizer.eos_token_id]
    reward, info = 0.0, {}
    for t in ids:
        _, reward, terminated, truncated, info = env.step(int(t))
        if terminated or truncated:
            break
    return reward, info


# ---- 2. a reference answer with trailing text


def test_reference_with_trailing_text_is_parsed_like_a_completion(tiny_env_kwargs, tmp_path, data_dir):
    f = tmp_path / "trail.jsonl"
    f.write_text(_line("What is 9 + 9?", "9 + 9 = 18\n#### 18 (approx 20)") + "\n")
    env = MathDistillEnv(**{**tiny_env_kwargs, "max_new_tokens": 32}, dataset=str(f))
    assert env.task[0].answer == "18"
    env.reset(seed=0, options={"problem": 0})
    reward, info = _play(env, " #### 18")
    assert (reward, info["correct"], info["verdict"]) == (1.0, True, "equal")
    env.reset(seed=0, options={"problem": 0})
    assert _play(env, " #### 20")[0] == 0.0
    # the same rule after `llm-cmdp data import` (the file is copied unchanged, the answer read at load time)
    assert cli.main(["data", "import", "trail", str(f), "--split", "test"]) == 0
    assert load_task("trail", "test")[0].answer == "18"


# ---- 5. a budget that can never be met


@pytest.mark.parametrize("divergence", ["teacher_nll", "reverse_kl", "forward_kl"])
def test_a_negative_budget_with_a_nonnegative_cost_is_refused(tiny_env_kwargs, divergence):
    env = MathDistillEnv(**tiny_env_kwargs, divergence=divergence)
    assert env.cost_lower_bound == 0.0
    for name in CONSTRAINTS:
        kwargs = {"lam": 0.5} if name == "lagrangian" else {}
        with pytest.raises(ValueError, match=rf"constraint '{name}': budget=-3.* can never be met.*{divergence}"):
            apply_constraint(env, name, budget=-3.0, **kwargs)
    with pytest.raises(ValueError, match="can never be met"):  # the named wrappers too
        BudgetRewardWrapper(env, budget=-0.5)
    with pytest.raises(ValueError, match="can never be met"):
        gym.make("MathDistill-v0", **tiny_env_kwargs, divergence=divergence, constraint="learned-lagrangian",
                 budget=-3.0)
    with pytest.raises(ValueError, match="can never be met"):
        gym.make_vec("MathDistill-v0", num_envs=2, **tiny_env_kwargs, divergence=divergence, constraint="budget",
                     budget=-3.0)
    apply_constraint(env, "budget", budget=0.0)  # zero can be met (a student equal to the teacher)


def test_a_negative_budget_is_fine_where_costs_can_be_negative(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs, divergence="log_ratio")
    assert env.cost_lower_bound == float("-inf")
    assert apply_constraint(env, "budget", budget=-3.0).unwrapped is env


# ---- 6. a huge question line


def test_a_50_mb_question_is_refused_at_load_naming_file_and_line(tiny_env_kwargs, tmp_path):
    f = tmp_path / "huge.jsonl"
    f.write_text(_line("What is 1 + 1?", "#### 2") + "\n" + _line("x" * 50_000_000, "#### 1") + "\n")
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"huge\.jsonl:2: .*'question' is 50,000,000 characters long"):
        MathDistillEnv(**tiny_env_kwargs, dataset=str(f))
    assert time.perf_counter() - t < 5.0


def test_a_huge_question_of_a_task_object_is_refused_at_reset_at_once(tiny_env_kwargs, monkeypatch):
    from llm_cmdp_env.tasks.base import Problem

    class Task:
        problems = [Problem("x" * 50_000_000, "1"), Problem("What is 1 + 1?", "2")]

        def __len__(self):
            return len(self.problems)

        def __getitem__(self, i):
            return self.problems[i]

        def sample(self, rng):
            return self.problems[1]

    env = MathDistillEnv(**tiny_env_kwargs, dataset=Task())
    calls = []
    encode = env.setup.prompts.encode
    monkeypatch.setattr(env.setup.prompts, "encode", lambda q: calls.append(len(q)) or encode(q))
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"50,000,000 characters.*max_prompt_tokens=160"):
        env.reset(options={"problem": 0})
    assert time.perf_counter() - t < 2.0
    assert calls == []  # refused before tokenising (time and memory bounded)
    env.reset(options={"problem": 1})  # the env is still usable
    assert calls == [len("What is 1 + 1?")]


# ---- 8. Gymnasium's max_episode_steps, 9. render() without a render mode


def test_max_episode_steps_is_refused_with_a_pointer_to_max_new_tokens(tiny_env_kwargs):
    with pytest.raises(ValueError, match="max_episode_steps=5 .*max_new_tokens=5"):
        gym.make("MathDistill-v0", **tiny_env_kwargs, max_episode_steps=5)
    env = gym.make("MathDistill-v0", **{**tiny_env_kwargs, "max_new_tokens": 5}, constraint="budget", budget=50.0)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert terminated or truncated
    assert "correct" in info and "episode" in info  # a max_new_tokens cut is judged and counted


def test_render_without_a_mode_returns_none_with_a_warning(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs)
    env.reset(seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert env.render() is None
    assert any("render_mode" in str(w.message) for w in caught)
    ansi = MathDistillEnv(**tiny_env_kwargs, render_mode="ansi")
    ansi.reset(seed=0)
    assert isinstance(ansi.render(), str)


# ---- 10. your own dataset by name; a single file's splits


def test_own_dataset_by_name(tiny_env_kwargs, tmp_path, data_dir):
    src = tmp_path / "mine.jsonl"
    src.write_text("\n".join(_line(f"What is {i} + 1?", f"#### {i + 1}") for i in range(4)) + "\n")
    assert cli.main(["data", "import", "mine", str(src), "--split", "test"]) == 0
    assert (data_dir / "mine" / "test.jsonl").read_bytes() == src.read_bytes()
    task = load_task("mine", "test")
    assert [p.answer for p in task] == ["1", "2", "3", "4"] and task[0].source == "mine"
    with pytest.raises(ValueError, match=r"split='train' is not a split of dataset 'mine'; it has \('test',\)"):
        load_task("mine", "train")
    assert "mine" in {f.name for f in data.list_data()}
    env = gym.make("MathDistill-v0", **tiny_env_kwargs, dataset="mine", split="test")
    _, info = env.reset(seed=0)
    assert info["question"].startswith("What is")
    with pytest.raises(ValueError, match="cannot fetch 'mine'.*import"):
        data.fetch_dataset("mine")


def test_a_single_file_trains_on_nine_tenths_and_evaluates_on_the_rest(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(_line(f"q{i}?", f"#### {i}") for i in range(30)) + "\n")
    train, test = load_task(str(f)), load_task(str(f), "test")
    assert len(train) == 27 and [p.index for p in test] == [9, 19, 29]
    assert not {p.index for p in train} & {p.index for p in test}
    rng = np.random.default_rng(0)
    assert all(train.sample(rng).index % 10 != 9 for _ in range(200))


# ---- text that no tokenizer encodes; log-probs that are no log-probs; budgets that are no numbers


def test_a_lone_surrogate_is_refused_at_load_and_import_naming_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_CMDP_DATA_DIR", str(tmp_path / "data"))
    f = tmp_path / "test.jsonl"
    f.write_text(_line("What is 1 + 1?", "#### 2") + "\n" + '{"question": "q \\ud800", "answer": "#### 1"}\n')
    with pytest.raises(ValueError, match=r"test\.jsonl:2: .*not valid Unicode text .*lone surrogate"):
        load_task(str(f))
    with pytest.raises(ValueError, match=r"test\.jsonl:2"):
        data.import_dataset("mine", f)
    assert not (tmp_path / "data" / "mine").exists()


def test_a_lone_surrogate_in_a_task_objects_question_is_a_clear_error_at_reset(tiny_env_kwargs):
    from llm_cmdp_env.tasks.base import Problem

    class Task:
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return Problem("q \ud800", "1")

        def sample(self, rng):
            return self[0]

    env = MathDistillEnv(**tiny_env_kwargs, dataset=Task())
    with pytest.raises(ValueError, match="not valid Unicode text"):
        env.reset(options={"problem": 0})


@pytest.mark.parametrize("logprob, why", [(float("inf"), r"\+inf"), (float("-inf"), "-inf"), (3.0, "positive"),
                                          (float("nan"), "NaN")])
def test_an_attached_logprob_that_is_no_log_probability_is_a_value_error(tiny_env_kwargs, logprob, why):
    from llm_cmdp_env import TokenAction

    env = MathDistillEnv(**tiny_env_kwargs, divergence="log_ratio")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=why):
        env.step(TokenAction(5, logprob=logprob))


@pytest.mark.parametrize("budget, why", [("nan", "finite number, got nan"), ("-inf", "finite number, got -inf"),
                                         ("inf", "finite number, got inf"), ("-5", "can never be met")])
def test_print_config_refuses_a_budget_the_env_would_refuse(budget, why, capsys):
    for argv in (["--budget", budget], [f"--budget={budget}"]):  # "-inf" is taken as a value, not an option
        with pytest.raises(ValueError, match=why):
            cli.main(["train", "--constraint", "budget", *argv, "--print-config"])
        assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="finite number"):
        gym.make("MathDistill-v0", constraint="budget", budget=float("nan"))


def test_a_config_json_that_is_no_object_is_named_as_such(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json holds a JSON list, not an object"):
        cli.main(["eval", str(tmp_path), "--n", "1"])


def test_output_into_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    from tests.child_env import child_env

    for command in ("data list", "--help", "train --help", "train --print-config"):
        proc = subprocess.run(f"{sys.executable} -m llm_cmdp_env.cli {command} | true", shell=True,
                              env=child_env(), capture_output=True, text=True, timeout=120)
        assert proc.stderr == "", (command, proc.stderr)
