"""Evaluate a policy on held-out problems through the fast path: accuracy, constraint satisfaction, mean
cost and length."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.engine.data_parallel import lockstep
from llm_cmdp_agents.engine.distributed import World
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.engine.rollout import rollout
from llm_cmdp_env.common.validation import check_positive_int

__all__ = ["check_eval_size", "evaluate_policy"]


def check_eval_size(env: gym.Env, n: int, start_index: int = 0, flag: str = "n") -> Any:
    """The env's task, after checking it holds problems ``start_index .. start_index + n - 1``; else a ValueError
    naming ``flag`` (the setting to lower) and how many problems the split has."""
    task = env.unwrapped.setup.task
    if start_index < 0 or start_index + n > len(task):
        split = getattr(task, "split", None)
        where = f"the {split!r} split of {getattr(task, 'source', 'the dataset')}" if split else "the dataset"
        most = max(0, len(task) - max(0, start_index))
        raise ValueError(f"{flag}={n} asks for {n} problems from index {start_index}, but {where} has {len(task)}: "
                         f"lower {flag} to at most {most}")
    return task


def evaluate_policy(
    policy: LLMPolicy,
    env: gym.Env,
    n: int = 100,
    *,
    batch_size: int = 64,
    greedy: bool = True,
    temperature: float = 1.0,
    seed: int = 0,
    start_index: int = 0,
    world: World | None = None,
    per_problem: bool = False,
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
        (:func:`llm_cmdp_agents.run.build.make_eval_env` does) when results must not depend on earlier ones.
    n : int
        Number of problems.
    batch_size : int
        Completions sampled (and scored) at once.
    greedy : bool
        Arg-max decoding (default); otherwise sample at ``temperature`` with a ``seed``-ed generator.
    world : World, optional
        Spread the batches over data-parallel ranks (batch ``b`` on rank ``b mod size``) and merge the episodes
        in order: every rank returns the numbers one process evaluating alone would (each batch is the same batch
        whichever rank runs it).
    per_problem : bool
        Also return ``per_problem``: each problem's ``correct``, ``cost`` and ``length``, in problem order (what
        ``llm-cmdp compare`` scores at any budget and bootstraps over).

    Returns
    -------
    dict
        ``accuracy``, ``constraint_satisfaction`` (None when undefined), ``mean_cost``, ``mean_length``,
        ``mean_return`` (of the env stack's reward) and ``n``.
    """
    n = check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    task = check_eval_size(env, n, start_index)
    world = world or World()
    env.reset(seed=seed)
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    starts = list(range(start_index, start_index + n, batch_size))
    records: list[tuple[int, dict[str, list[Any]]]] = []
    was_training = policy.training
    policy.eval()
    try:
        # batch b goes to rank b % size; a sharded (FSDP) policy's ranks run every round in lockstep, so a rank
        # without a batch in the last round samples a dummy one (the first batch again) and drops it
        rounds = -(-len(starts) // world.size) * world.size if lockstep(policy) else len(starts)
        for b in range(rounds):
            if b % world.size != world.rank:
                continue
            dummy = b >= len(starts)
            start = starts[0] if dummy else starts[b]
            problems = [task[i] for i in range(start, min(start + batch_size, start_index + n))]
            if not greedy:  # the generator draws per batch, so a batch samples the same on any rank
                gen.manual_seed(seed * 1_000_003 + b)
            batch = rollout(policy, env, problems, temperature=temperature, greedy=greedy, generator=gen)
            if dummy:
                continue
            flags = batch.satisfied()
            if flags is None:  # the stack's statistics check no budget
                flags = [None] * len(problems)
            records.append((b, {"correct": batch.task_rewards.tolist(), "cost": batch.episode_costs.tolist(),
                                "length": [len(c) for c in batch.completions], "return": batch.returns.tolist(),
                                "sat": [None if f is None else bool(f) for f in flags]}))
    finally:
        policy.train(was_training)
    merged = sorted((r for part in world.gather(records) for r in part), key=lambda r: r[0])
    col = {k: [x for _, rec in merged for x in rec[k]] for k in ("correct", "cost", "length", "return", "sat")}
    out: dict[str, Any] = {
        "accuracy": float(np.mean(col["correct"])),
        "constraint_satisfaction": None if any(s is None for s in col["sat"]) else float(np.mean(col["sat"])),
        "mean_cost": float(np.mean(col["cost"])),
        "mean_length": float(np.mean(col["length"])),
        "mean_return": float(np.mean(col["return"])),
        "n": n,
    }
    if per_problem:
        out["per_problem"] = {"correct": [float(c) for c in col["correct"]], "cost": [float(c) for c in col["cost"]],
                              "length": [int(x) for x in col["length"]]}
    return out
