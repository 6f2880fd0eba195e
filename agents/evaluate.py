"""Evaluate a policy on held-out problems through the fast path: accuracy, constraint satisfaction, mean
cost and length."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.policy import LLMPolicy
from llm_cmdp_agents.rollout import rollout
from llm_cmdp_env.validation import check_positive_int

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
        The stack's own state carries over between calls (a learned multiplier keeps learning from the
        evaluated episodes, which moves ``mean_return``): give each evaluation a fresh stack
        (:func:`llm_cmdp_agents.runs.make_eval_env` does) when results must not depend on earlier ones.
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
    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    task = env.unwrapped.setup.task
    if start_index < 0 or start_index + n > len(task):
        raise ValueError(f"n={n} problems from index {start_index} asked, but the dataset has {len(task)}")
    env.reset(seed=seed)
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    correct, sat, costs, lengths, returns = [], [], [], [], []
    was_training = policy.training
    policy.eval()
    try:
        for start in range(start_index, start_index + n, batch_size):
            problems = [task[i] for i in range(start, min(start + batch_size, start_index + n))]
            batch = rollout(policy, env, problems, temperature=temperature, greedy=greedy, generator=gen)
            correct.extend(batch.task_rewards.tolist())
            costs.extend(batch.episode_costs.tolist())
            lengths.extend(len(c) for c in batch.completions)
            returns.extend(batch.returns.tolist())
            flags = batch.satisfied()
            if flags is not None:
                sat.extend(flags.tolist())
            else:
                sat.extend([None] * len(problems) if budget is None else (batch.episode_costs <= budget).tolist())
    finally:
        policy.train(was_training)
    return {
        "accuracy": float(np.mean(correct)),
        "constraint_satisfaction": None if any(s is None for s in sat) else float(np.mean(sat)),
        "mean_cost": float(np.mean(costs)),
        "mean_length": float(np.mean(lengths)),
        "mean_return": float(np.mean(returns)),
        "n": n,
    }
