"""TRL reward functions (llm_cmdp_env.interop.trl_rewards): the answer check, and the env's own numbers through a
constraint stack, called as plain callables the way GRPOTrainer calls them; one GRPOTrainer run when TRL is
installed."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_env.interop import trl_rewards
from llm_cmdp_env.interop.trl_rewards import AnswerReward, EnvReward, answer_reward, completion_text
from llm_cmdp_env.models.prompts import PLAIN_PROMPT_TEMPLATE
from llm_cmdp_env.tasks.arithmetic import ArithmeticTask

MAX_NEW = 48


def _chat(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


@pytest.fixture(scope="module")
def env():
    e = gym.make("MathDistill-v0", constraint="budget", budget=5.0, max_new_tokens=MAX_NEW)
    yield e
    e.close()


@pytest.fixture(scope="module")
def problems():
    return [ArithmeticTask("train+validation")[i] for i in range(4)]  # the problems these tests were written for


def _columns(problems):
    return {"question": [p.question for p in problems], "answer": [p.answer for p in problems]}


def _prompts(problems):
    return [PLAIN_PROMPT_TEMPLATE.format(question=p.question) for p in problems]


def _step(env, problem, tokens):
    """The env's numbers by plain stepping: (return, cost, final info, tokens stepped)."""
    env.reset(options={"problem": problem})
    ret = cost = 0.0
    for n, tok in enumerate(tokens, 1):
        _, r, term, trunc, info = env.step(tok)
        ret += r
        cost += info["cost"]
        if term or trunc:
            return ret, cost, info, list(tokens[:n])
    raise AssertionError("episode did not end")


# ---------------------------------------------------------------------------------------- answer reward
def test_answer_reward_both_formats():
    texts = ["3 + 4 = 7\n#### 7", "#### 8", "no number here", "so the answer is \\boxed{7}", "7.0"]
    refs = ["7"] * 5
    want = [1.0, 0.0, 0.0, 1.0, 1.0]
    prompts = ["Q"] * 5
    assert answer_reward(prompts, texts, answer=refs) == want
    assert answer_reward(prompts=prompts, completions=_chat(texts), answer=refs, trainer_state=None) == want
    # a tool-call style conversation: the last assistant message holds the answer; content given as parts
    conv = [{"role": "assistant", "content": "let me compute"}, {"role": "tool", "content": "#### 99"},
            {"role": "assistant", "content": [{"type": "text", "text": "#### 7"}]}]
    assert answer_reward(["Q"], [conv], answer=["7"]) == [1.0]
    assert answer_reward.__name__ == "answer_correct"
    assert completion_text([{"content": "x"}]) == "x"  # TRL's own examples omit the role


def test_answer_reward_columns_and_formats():
    r = AnswerReward("gold", name="acc")
    assert r.__name__ == "acc"
    assert r(["Q", "Q"], ["#### 12", "#### 13"], gold=[12, "13"]) == [1.0, 1.0]  # numeric column values
    gsm = AnswerReward(reference_format="solution")
    assert gsm(["Q"], ["#### 18"], answer=["9 * 2 = <<9*2=18>>18\n#### 18"]) == [1.0]
    with pytest.raises(ValueError, match="reference_format='solution'"):
        answer_reward(["Q"], ["#### 18"], answer=["9 * 2 = 18\n#### 18"])
    assert pickle.loads(pickle.dumps(r)).__name__ == "acc"  # TRL's async worker pickles reward functions


def test_answer_reward_bad_inputs():
    with pytest.raises(ValueError, match=r"prompts has 1 entries but there are 2 completions"):
        answer_reward(["Q"], ["#### 1", "#### 2"], answer=["1", "2"])
    with pytest.raises(ValueError, match=r"column 'answer' has 1 entries but there are 2"):
        answer_reward(["Q", "Q"], ["#### 1", "#### 2"], answer=["1"])
    with pytest.raises(ValueError, match=r"no 'answer' column \(reference_column='answer'\).*\['solution'\]"):
        answer_reward(["Q"], ["#### 1"], solution=["1"], trainer_state=None)
    with pytest.raises(TypeError, match="completion 0 must be a string or a list of chat messages"):
        answer_reward(["Q"], [42], answer=["1"])
    with pytest.raises(ValueError, match="completion 0 has no assistant message"):
        answer_reward(["Q"], [[{"role": "user", "content": "#### 1"}]], answer=["1"])
    with pytest.raises(TypeError, match="row 0: a reference answer must be a string or a number"):
        answer_reward(["Q"], ["#### 1"], answer=[None])
    with pytest.raises(ValueError, match="reference_format must be one of 'answer', 'solution'"):
        AnswerReward(reference_format="gsm8k")
    with pytest.raises(ValueError, match="timeout must be a finite number"):
        AnswerReward(timeout=0)


# ---------------------------------------------------------------------------------------- env reward
def test_env_reward_equals_stepping(env, problems):
    """Every component equals the numbers of stepping the same budget stack token by token, for TRL ids
    (terminated, longer than max_new_tokens) and for re-tokenised text (EOS appended)."""
    tok = env.unwrapped.tokenizer
    eos = tok.eos_token_id
    texts = [
        " " + problems[0].solution,  # right, close to the teacher: within budget
        " #### 9",  # right answer, unlikely for the teacher: over budget, return 0 but task 1
        " " + problems[2].solution,  # longer than MAX_NEW: truncated before its answer
        " The answer is 1000.\n#### 1000",  # wrong
    ]
    ids = [tok(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    assert len(ids[2]) > MAX_NEW
    expected_tokens = [ids[0], ids[1], ids[2][:MAX_NEW], ids[3]]
    cols = _columns(problems)
    stepped = [_step(env, p, t) for p, t in zip(problems, expected_tokens)]
    for (_, _, _, toks), exp in zip(stepped, expected_tokens):
        assert toks == exp

    rewards = {c: EnvReward(env, c) for c in ("return", "cost", "task")}
    got = {c: r(_prompts(problems), texts, completion_ids=ids, **cols) for c, r in rewards.items()}
    for r in rewards.values():
        assert r.last_token_sources == ["ids"] * 4
        assert [ep.tokens for ep in r.last_episodes] == expected_tokens
    np.testing.assert_allclose(got["return"], [s[0] for s in stepped], atol=1e-5)
    np.testing.assert_allclose(got["cost"], [-s[1] for s in stepped], atol=1e-4)
    assert got["task"] == [s[2]["task_reward"] for s in stepped] == [1.0, 1.0, 0.0, 0.0]
    assert got["return"] == [1.0, 0.0, 0.0, 0.0]  # the budget matters for completion 1

    # the same completions as conversational text only (no ids): tokenised with the env's tokenizer, EOS added
    text_only = EnvReward(env, "cost", name="text_cost")
    vals = text_only(_prompts(problems), _chat(texts), **cols)
    assert text_only.last_token_sources == ["text"] * 4
    assert [ep.tokens for ep in text_only.last_episodes] == expected_tokens
    np.testing.assert_allclose(vals, got["cost"], atol=1e-6)


def test_env_reward_token_sources(env, problems):
    tok = env.unwrapped.tokenizer
    eos = tok.eos_token_id
    p, cols = problems[:1], _columns(problems[:1])
    text = " 10 + 5 = 15"
    text_ids = tok(text, add_special_tokens=False)["input_ids"]
    # ids that do not decode to the text (another tokenizer's) or leave the vocabulary: the text is used
    for bad in ([5, 6, 7, eos], [10**6, eos]):
        r = EnvReward(env, "cost")
        r(_prompts(p), [text], completion_ids=[bad], **cols)
        assert r.last_token_sources == ["text"]
        assert r.last_episodes[0].tokens == [*text_ids, eos]
    # ids without EOS shorter than max_new_tokens: EOS appended, or an error with unfinished="error"
    r = EnvReward(env, "cost")
    r(_prompts(p), [text], completion_ids=[text_ids], **cols)
    assert r.last_token_sources == ["ids"] and r.last_episodes[0].tokens == [*text_ids, eos]
    with pytest.raises(ValueError, match="unfinished"):
        EnvReward(env, unfinished="error")(_prompts(p), [text], completion_ids=[text_ids], **cols)
    # an EOS inside the ids ends the episode there, as the env would
    r = EnvReward(env, "cost", token_source="ids")
    r(_prompts(p), [text], completion_ids=[[*text_ids, eos, 5, 6]], **cols)
    assert r.last_episodes[0].tokens == [*text_ids, eos]
    with pytest.raises(ValueError, match="token_source='ids' but the reward function got no completion_ids"):
        EnvReward(env, token_source="ids")(_prompts(p), [text], **cols)
    with pytest.raises(ValueError, match=r"completion_ids\[0\] must be a 1-D list of token ids in \[0, "):
        EnvReward(env, token_source="ids")(_prompts(p), [text], completion_ids=[[10**6]], **cols)


def test_env_reward_shares_one_replay_per_batch(env, problems, monkeypatch):
    calls = []
    real = trl_rewards.replay
    monkeypatch.setattr(trl_rewards, "replay", lambda *a, **k: calls.append(1) or real(*a, **k))
    ret, cost = EnvReward(env, "return"), EnvReward(env, "cost")
    args = (_prompts(problems), [" #### 2"] * 4)  # a batch no other test replays
    ret(*args, **_columns(problems))
    cost(*args, **_columns(problems))
    assert len(calls) == 1 and cost.last_episodes is ret.last_episodes  # one replay, same episodes
    ret(*args, **_columns(problems))  # the same reward function again: a new batch of episodes
    assert len(calls) == 2


def test_env_reward_logs_metrics_and_warns_on_foreign_prompts(env, problems):
    logged = {}
    r = EnvReward(env, "return")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the env's own prompt text: no warning
        r(_prompts(problems), [" #### 1"] * 4, log_metric=logged.__setitem__, **_columns(problems))
    assert set(logged) == {"env_return/episode_cost", "env_return/task_reward", "env_return/constraint_satisfied",
                           "env_return/retokenised"}
    assert logged["env_return/retokenised"] == 1.0
    np.testing.assert_allclose(logged["env_return/episode_cost"], np.mean([ep.costs.sum() for ep in r.last_episodes]))
    with pytest.warns(UserWarning, match="does not tokenise to the env's prompt"):
        r(["Solve: " + q for q in _columns(problems)["question"]], [" #### 1"] * 4, **_columns(problems))


def test_env_reward_bad_inputs(env, problems):
    cols = _columns(problems[:2])
    r = EnvReward(env)
    with pytest.raises(ValueError, match="completion_ids has 1 entries but there are 2 completions"):
        r(_prompts(problems[:2]), ["#### 1", "#### 2"], completion_ids=[[1, 0]], **cols)
    with pytest.raises(ValueError, match=r"no 'question' column \(question_column='question'\).*\['answer'\]"):
        r(_prompts(problems[:2]), ["#### 1", "#### 2"], answer=cols["answer"])
    with pytest.raises(ValueError, match=r"no 'answer' column"):
        r(_prompts(problems[:2]), ["#### 1", "#### 2"], question=cols["question"])
    with pytest.raises(ValueError, match="component must be one of 'return', 'cost', 'task'"):
        EnvReward(env, "reward")
    with pytest.raises(ValueError, match="token_source must be one of"):
        EnvReward(env, token_source="tokens")
    with pytest.raises(TypeError, match="env must be a MathDistill-v0 env"):
        EnvReward(gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(r)


# ---------------------------------------------------------------------------------------- with TRL
def test_grpo_trainer_two_steps(tmp_path):
    """Two GRPOTrainer steps on the shipped student with both reward functions (skipped without TRL)."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_cmdp_env.zoo import zoo_model_path

    max_new = 16
    env = gym.make("MathDistill-v0", constraint="budget", budget=5.0, max_new_tokens=max_new)
    probs = [ArithmeticTask("train")[i] for i in range(8)]
    data = Dataset.from_dict({"prompt": _prompts(probs), **_columns(probs)})
    path = zoo_model_path("student")
    env_reward = EnvReward(env, "return")
    config = trl.GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2,
        max_completion_length=max_new, learning_rate=1e-5, logging_steps=1, save_strategy="no", report_to="none",
        seed=0, disable_tqdm=True, use_cpu=True,
    )
    trainer = trl.GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(path), processing_class=AutoTokenizer.from_pretrained(path),
        reward_funcs=[answer_reward, env_reward], args=config, train_dataset=data,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    logs = [row for row in trainer.state.log_history if "rewards/env_return/mean" in row]
    assert len(logs) == 2 and all("rewards/answer_correct/mean" in row for row in logs)
    assert all("env_return/episode_cost" in row for row in logs)  # our log_metric entries reach TRL's logs
    # TRL passed its generated ids and they were used as they are (same tokenizer as the env's)
    assert env_reward.last_token_sources == ["ids"] * 4
    env.close()
