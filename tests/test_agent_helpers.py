"""Shared pieces of the agent tests (an easy reward to learn, env builders on the tiny models) and their test."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.wrappers import apply_constraint


class LowTokenReward(gym.Wrapper):
    """Easy setting: reward 1 for every non-EOS token whose id is below ``cut`` (about half the vocabulary).

    A random tiny student starts near 50%; a policy-gradient learner shifts mass to the low ids within a few
    updates. The trainer must optimise exactly this reward (it reaches the trainer only through the fast
    path's replay of the wrapper stack).
    """

    def __init__(self, env: gym.Env, cut: int = 200) -> None:
        super().__init__(env)
        self.cut = cut

    def step(self, action: Any):
        obs, _, terminated, truncated, info = self.env.step(action)
        tok = int(action)
        return obs, float(1 <= tok < self.cut), terminated, truncated, info


def tiny_env(kwargs: dict[str, Any], constraint: str | None = None, budget: float | None = None, **ckw: Any) -> gym.Env:
    """A MathDistillEnv on the tiny models, optionally wrapped by a named constraint."""
    env = MathDistillEnv(**kwargs)
    if constraint is None:
        return env
    return apply_constraint(env, constraint, budget=budget, **ckw)


def conditioned_problems(env: gym.Env, student: str, n: int) -> tuple[Any, list, list, Any]:
    """A budget-conditioned tiny student (a random conditioning projection, so that it matters), ``n`` problems of
    ``env`` (reset with seed 0), their prompts and the env's budget tracker: the start of a tracking test."""
    import torch

    from llm_cmdp_agents.engine.conditioning import ConditionTracker
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_env.replay.fast_path import prompt_ids, sample_problems

    env.reset(seed=0)
    policy = LLMPolicy(student, device="cpu", conditioning=True)
    with torch.no_grad():
        policy.condition_proj.weight.normal_(0, 1.0)
    problems = sample_problems(env, n)
    return policy, problems, [prompt_ids(env, p) for p in problems], ConditionTracker(env)


def test_low_token_reward_pays_exactly_the_low_non_eos_tokens(tiny_env_kwargs):
    env = LowTokenReward(tiny_env(tiny_env_kwargs), cut=200)
    env.reset(seed=0)
    eos = min(env.unwrapped.eos_ids)
    rewards = [env.step(t)[1] for t in (5, 250, 199, 200)]
    assert rewards == [1.0, 0.0, 1.0, 0.0]
    *_, info = env.step(eos)
    assert "cost" in info  # the env underneath still reports its cost
