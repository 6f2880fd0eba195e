"""Evaluate a policy on held-out problems through the fast path: accuracy, constraint satisfaction, mean
cost and length."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.env_tools import find_wrapper
from llm_cmdp_agents.policy import LLMPolicy
from llm_cmdp_agents.sampling import sample
from llm_cmdp_agents.saute import SauteTracker
from llm_cmdp_env.fast_path import prompt_ids, replay
from llm_cmdp_env.wrappers import SauteWrapper

__all__ = ["evaluate_policy"]


def evaluate_policy(
    policy: LLMPolicy,
    env: gym.Env,
    n: int = 100,
    *,
    batch_size: int = 64,
    greedy: bool = True,
    temperature: float = 1.0,
    seed: int = 0,
    budget: float | None = None,
    start_index: int = 0,
) -> dict[str, Any]:
    """Run the policy on problems ``start_index .. start_index + n - 1`` of the env's dataset (the same set
    for every policy evaluated with the same env settings) and summarise.

    Parameters
    ----------
    policy : LLMPolicy
        The policy.
    env : gymnasium.Env
        A single env stack (use ``split="test"`` for held-out problems). Its statistics wrapper decides
        ``constraint_satisfied`` (summed cost <= budget; the worst-case wrapper's absorbing per-prefix flag).
    n : int
        Number of problems.
    batch_size : int
        Completions sampled (and scored) at once.
    greedy : bool
        Arg-max decoding (default); otherwise sample at ``temperature`` with a ``seed``-ed generator.
    budget : float, optional
        Used for constraint satisfaction only when the env stack reports no ``constraint_satisfied``.

    Returns
    -------
    dict
        ``accuracy``, ``constraint_satisfaction`` (None when undefined), ``mean_cost``, ``mean_length``,
        ``mean_return`` (of the env stack's reward) and ``n``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    base = env.unwrapped
    task = base.setup.task
    if hasattr(task, "__len__") and start_index + n > len(task):
        raise ValueError(f"n={n} problems from index {start_index} asked, but the dataset has {len(task)}")
    env.reset(seed=seed)
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    div = base.divergence
    use_budget = policy.budget_conditioned and find_wrapper(env, SauteWrapper) is not None
    correct, sat, costs, lengths, returns = [], [], [], [], []
    was_training = policy.training
    policy.eval()
    for start in range(start_index, start_index + n, batch_size):
        problems = [task[i] for i in range(start, min(start + batch_size, start_index + n))]
        prompts = [prompt_ids(env, p) for p in problems]
        kw: dict[str, Any] = {}
        if use_budget:
            tracker = SauteTracker(env)
            kw = {"budget0": tracker.start(prompts, tracker.initial(len(prompts))), "budget_step": tracker.step}
        s = sample(policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id, temperature=temperature,
                   greedy=greedy, generator=gen, full_logprobs=div.needs_full_student, **kw)
        eps = replay(env, problems, s.completions, student_logprobs=s.full_logprobs,
                     student_token_logprobs=s.token_logprobs)
        for ep in eps:
            c = float(ep.costs.sum())
            correct.append(float(ep.final_info.get("task_reward", 0.0)))
            costs.append(c)
            lengths.append(len(ep.tokens))
            returns.append(float(ep.rewards.sum()))
            flag = ep.final_info.get("episode", {}).get("constraint_satisfied")
            sat.append(flag if flag is not None else (None if budget is None else c <= budget))
    policy.train(was_training)
    return {
        "accuracy": float(np.mean(correct)),
        "constraint_satisfaction": None if any(s is None for s in sat) else float(np.mean(sat)),
        "mean_cost": float(np.mean(costs)),
        "mean_length": float(np.mean(lengths)),
        "mean_return": float(np.mean(returns)),
        "n": n,
    }
