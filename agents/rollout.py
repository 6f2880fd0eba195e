"""A batch of finished episodes as the trainer sees it: prompts, completions, the log-probs they were
sampled with, and the per-token rewards and costs of the env's wrapper stack (from the fast path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llm_cmdp_env.fast_path import Episode

__all__ = ["Rollout"]


@dataclass
class Rollout:
    """One on-policy batch.

    Attributes
    ----------
    prompts, completions : list of list of int
        Token ids; ``completions[i]`` holds the tokens actually stepped (a wrapper that ends an episode early
        cuts it).
    old_logprobs : list of Tensor [T_i]
        log pi_old(a_t | s_t) of the sampling policy.
    rewards, costs : list of ndarray [T_i]
        Per-token reward of the wrapper stack (what is optimised) and raw cost ``info["cost"]``.
    episodes : list of Episode
        The replayed episodes (final infos, statistics).
    groups : ndarray [N]
        Group id of each episode (same prompt = same group; GRPO normalises within a group).
    budgets : list of Tensor [T_i] or None
        Sauté budget state before each token, for a budget-conditioned policy.
    """

    prompts: list[list[int]]
    completions: list[list[int]]
    old_logprobs: list[torch.Tensor]
    rewards: list[np.ndarray]
    costs: list[np.ndarray]
    episodes: list[Episode]
    groups: np.ndarray
    budgets: list[torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.completions)

    @property
    def returns(self) -> np.ndarray:
        """Episode return of the wrapper stack's reward, ``[N]``."""
        return np.array([float(r.sum()) for r in self.rewards])

    def stats(self) -> dict[str, float]:
        """Batch means: reward (return), cost, accuracy (task reward), length, constraint satisfaction."""
        eps = self.episodes
        out = {
            "reward": float(self.returns.mean()),
            "cost": float(np.mean([c.sum() for c in self.costs])),
            "accuracy": float(np.mean([float(e.final_info.get("task_reward", 0.0)) for e in eps])),
            "length": float(np.mean([len(c) for c in self.completions])),
        }
        sat = [e.final_info.get("episode", {}).get("constraint_satisfied") for e in eps]
        if all(s is not None for s in sat):
            out["constraint_satisfaction"] = float(np.mean(sat))
        lam = [e.final_info.get("lagrange_multiplier") for e in eps]
        if all(x is not None for x in lam):
            out["lambda"] = float(lam[-1])
        return out
