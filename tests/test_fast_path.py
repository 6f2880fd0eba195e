"""The whole-sequence fast path gives the same numbers as stepping, through a wrapper stack."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.replay.fast_path import prompt_ids, replay, sample_problems
from llm_cmdp_env.scoring.logprobs import batch_completion_logprobs, sequence_logprobs


class CostPenalty(gym.Wrapper):
    """A stand-in wrapper stack element: reward - 0.5 * cost, raw values kept."""

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, r - 0.5 * info["cost"], term, trunc, info


def _completions(env, n, rng):
    eos = env.unwrapped.tokenizer.eos_token_id
    out = []
    for i in range(n):
        length = int(rng.integers(1, env.unwrapped.max_new_tokens + 1))
        c = [int(x) for x in rng.integers(1, 300, size=length)]
        if i % 2 == 0:
            c[-1] = eos  # terminated; the others are truncated at max_new_tokens
        else:
            c = [int(x) for x in rng.integers(1, 300, size=env.unwrapped.max_new_tokens)]
        out.append(c)
    return out


@pytest.mark.parametrize("divergence", ["teacher_nll", "log_ratio", "reverse_kl", "forward_kl"])
def test_replay_equals_stepping(tiny_dir, tiny_env_kwargs, divergence):
    env = CostPenalty(MathDistillEnv(**tiny_env_kwargs, student=str(tiny_dir / "student"), divergence=divergence))
    env.reset(seed=0)
    problems = sample_problems(env, 5)
    assert len({len(prompt_ids(env, p)) for p in problems}) > 1
    completions = _completions(env, 5, np.random.default_rng(0))
    episodes = replay(env, problems, completions)
    for ep, problem, comp in zip(episodes, problems, completions):
        env.reset(options={"problem": problem})
        rewards, costs = [], []
        for t in comp:
            _, r, term, trunc, info = env.step(t)
            rewards.append(r)
            costs.append(info["cost"])
        np.testing.assert_allclose(ep.costs, costs, atol=1e-5)
        np.testing.assert_allclose(ep.rewards, rewards, atol=1e-5)
        assert (ep.terminated, ep.truncated) == (term, trunc)
        assert ep.final_info["correct"] == info["correct"]


def test_batched_head_equals_full_forward(tiny_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher")
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]]
    comps = [[20, 21], [22, 23, 24, 25], [26]]
    for rows, p, c in zip(batch_completion_logprobs(model, prompts, comps, pad_id=0), prompts, comps):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            ref = torch.log_softmax(model(ids).logits[0, len(p) - 1 : -1], -1)
        torch.testing.assert_close(rows, ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(sequence_logprobs(model, p, c), ref, atol=1e-5, rtol=0)


def test_replay_with_attached_student_logprobs(tiny_dir, tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs, divergence="reverse_kl")  # no student model in the env
    env.reset(seed=1)
    problems = sample_problems(env, 3)
    completions = _completions(env, 3, np.random.default_rng(1))
    student = AutoModelForCausalLM.from_pretrained(tiny_dir / "student")
    rows = [sequence_logprobs(student, prompt_ids(env, p), c) for p, c in zip(problems, completions)]
    got = replay(env, problems, completions, student_logprobs=rows)
    ref_env = MathDistillEnv(**tiny_env_kwargs, divergence="reverse_kl", student=str(tiny_dir / "student"))
    ref = replay(ref_env, problems, completions)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a.costs, b.costs, atol=1e-5)
    with pytest.raises(ValueError, match="student"):
        replay(env, problems, completions)


def test_replay_rejects_unfinished_or_overlong(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs)
    env.reset(seed=0)
    (p,) = sample_problems(env, 1)
    with pytest.raises(ValueError, match="without EOS"):
        replay(env, [p], [[5, 6]])
    eos = env.tokenizer.eos_token_id
    with pytest.raises(ValueError, match="after the episode ended"):
        replay(env, [p], [[5, eos, 6]])
    with pytest.raises(ValueError, match="1..12 tokens"):
        replay(env, [p], [[5] * 13])


def test_replay_through_real_wrappers_equals_stepping(tiny_env_kwargs):
    """Budget reward with termination on violation: the replay stops where the stack ends the episode."""
    from llm_cmdp_env.wrappers import apply_constraint

    env = apply_constraint(MathDistillEnv(**tiny_env_kwargs), "budget", budget=20.0,
                           terminate_on_violation=True)
    env.reset(seed=2)
    problems = sample_problems(env, 4)
    completions = _completions(env, 4, np.random.default_rng(2))
    episodes = replay(env, problems, completions)
    assert any(len(ep.tokens) < len(c) for ep, c in zip(episodes, completions))  # some violated early
    for ep, problem in zip(episodes, problems):
        env.reset(options={"problem": problem})
        rewards, costs = [], []
        for t in ep.tokens:
            _, r, term, trunc, info = env.step(t)
            rewards.append(r)
            costs.append(info["cost"])
        np.testing.assert_allclose(ep.rewards, rewards, atol=1e-5)
        np.testing.assert_allclose(ep.costs, costs, atol=1e-5)
        assert term or trunc
        assert ep.final_info["episode"]["c"] == pytest.approx(info["episode"]["c"], abs=1e-4)


def test_score_completions_checks_every_token(tiny_env_kwargs):
    """Completions as lists, numpy arrays or tensors are accepted; a bad token gets the env's own error."""
    from llm_cmdp_env.replay.fast_path import score_completions

    env = MathDistillEnv(**tiny_env_kwargs)
    env.reset(seed=0)
    (p,) = sample_problems(env, 1)
    eos = env.tokenizer.eos_token_id
    ref = score_completions(env, [p], [[5, 6, eos]])[0]
    for form in (np.array([5, 6, eos]), torch.tensor([5, 6, eos])):
        got = score_completions(env, [p], [form])[0]
        np.testing.assert_array_equal(got["tokens"], ref["tokens"])
        np.testing.assert_array_equal(got["cost"], ref["cost"])
    with pytest.raises(ValueError, match="out of range"):
        score_completions(env, [p], [[5, env.vocab_size, eos]])
    with pytest.raises(ValueError, match="out of range"):
        score_completions(env, [p], [np.array([5, -1, eos])])
    with pytest.raises(TypeError, match="integer token id"):
        score_completions(env, [p], [[5, 6.0, eos]])
    with pytest.raises(TypeError, match="integer token id"):
        score_completions(env, [p], [np.array([True, False])])
    with pytest.raises(TypeError, match="integer token id"):
        score_completions(env, [p], [[5, True, eos]])  # not silently token 1


def test_prompt_encodings_are_cached_as_private_copies(tiny_env_kwargs):
    env = MathDistillEnv(**tiny_env_kwargs)
    env.reset(seed=0)
    (p,) = sample_problems(env, 1)
    a = prompt_ids(env, p)
    a.append(-7)  # a caller's copy: must not leak into the cache
    b = prompt_ids(env, p)
    assert b == env.setup.prompts.encode(p.question)
    obs, _ = env.reset(options={"problem": p})
    assert obs["input_ids"][: len(b)].tolist() == b
