"""The embedded default: gym.make("MathDistill-v0") with no arguments, on the shipped pair."""

import gymnasium as gym
import numpy as np
import pytest

import llm_cmdp_env  # noqa: F401
from llm_cmdp_env.cli.demo import SamplingPolicy


def test_default_env_runs_offline_with_no_arguments():
    env = gym.make("MathDistill-v0")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    base = env.unwrapped
    assert base.setup.prompts.template == "plain"
    # the shipped teacher, acting greedily, solves the problem with low cost per token
    policy = SamplingPolicy(base.teacher, temperature=0.0)
    policy.start(base.prompt_ids)
    costs, done = [], False
    while not done:
        obs, reward, term, trunc, step = env.step(policy.act())
        costs.append(step["cost"])
        done = term or trunc
    assert term, "the teacher ends its solution with EOS"
    assert step["correct"] and reward == 1.0
    assert np.mean(costs) < 0.5


@pytest.mark.parametrize("divergence", ["log_ratio", "reverse_kl"])
def test_shipped_student_with_attached_logprobs(divergence):
    env = gym.make("MathDistill-v0", divergence=divergence, max_new_tokens=32)
    obs, info = env.reset(seed=1)
    policy = SamplingPolicy("zoo:student", temperature=1.0, seed=0)
    policy.start(env.unwrapped.prompt_ids)
    total, done = 0.0, False
    while not done:
        obs, reward, term, trunc, step = env.step(policy.act())
        total += step["cost"]
        done = term or trunc
    assert np.isfinite(total)
    if divergence == "reverse_kl":
        assert total > 0
