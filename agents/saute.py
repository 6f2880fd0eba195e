"""How the LLM policy sees the Sauté budget state z (``SauteWrapper``'s ``saute_budget`` observation key).

Choice: z is a real number per step; the policy adds a zero-initialised learned projection ``W z + b`` of
it (clamped to [-2, 2]) to the embedding of the input token at every position
(:meth:`llm_cmdp_agents.policy.LLMPolicy.input_embeddings`). z_t changes with every token's cost, so
while sampling the agent tracks it online: a batched KV-cached teacher forward per token computes the
same divergence the env will charge (Sauté's price: the teacher is needed at deployment). For training,
the z values the env itself reported during the fast-path replay are used, so the conditioning always
matches the env's own accounting.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.env_tools import find_wrapper
from llm_cmdp_env.batched_scoring import BatchedScorer
from llm_cmdp_env.divergences import divergence_cost
from llm_cmdp_env.fast_path import Episode
from llm_cmdp_env.wrappers import SauteWrapper

__all__ = ["SauteTracker", "budgets_from_episodes"]


class SauteTracker:
    """Online Sauté budget state for a batch being sampled, equal to what the env's wrapper will compute.

    Parameters
    ----------
    env : gymnasium.Env
        A single-env stack containing a :class:`~llm_cmdp_env.wrappers.SauteWrapper`.
    """

    def __init__(self, env: gym.Env) -> None:
        wrapper = find_wrapper(env, SauteWrapper)
        if wrapper is None:
            raise ValueError("SauteTracker needs an env stack with a SauteWrapper")
        self.wrapper = wrapper
        self.base = env.unwrapped
        self.scorer: BatchedScorer | None = None
        self.z: torch.Tensor | None = None

    def initial(self, n: int) -> torch.Tensor:
        """The z_0 the wrapper will draw for the next ``n`` resets, in order (a copy of its generator
        predicts them; the generator itself is untouched)."""
        p = self.wrapper._p
        if p.min_rel_budget == p.max_rel_budget:
            return torch.full((n,), float(p.min_rel_budget))
        if self.wrapper._rng is None:
            raise RuntimeError("reset the env with a seed first: sampled Sauté budgets need the wrapper's generator")
        rng = copy.deepcopy(self.wrapper._rng)
        return torch.tensor([p.initial_z(rng) for _ in range(n)])

    def start(self, prompts: Sequence[Sequence[int]], z0: torch.Tensor) -> torch.Tensor:
        """Begin tracking a batch: prefill the teacher on the prompts."""
        self.scorer = BatchedScorer(self.base.teacher, len(prompts), self.base.pad_id)
        self.scorer.reset_rows(list(range(len(prompts))), prompts)
        self.z = z0.double().clone()
        return self.z.float()

    def step(self, tokens: torch.Tensor, student_logp: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Pay the cost of ``tokens`` (for ``active`` rows) and return the new z."""
        assert self.scorer is not None and self.z is not None
        assert self.scorer.logp is not None
        t_logp = self.scorer.logp
        dev = t_logp.device
        name = self.base.divergence.name
        cost = divergence_cost(name, t_logp, tokens.to(dev), student_logp.to(dev).float(), None).double().cpu()
        new_z = self.wrapper._p.next_z(self.z, cost)
        act = active.cpu()
        self.z = torch.where(act, new_z, self.z)
        self.scorer.step(tokens.to(dev), active.to(dev))
        return self.z.float()


def budgets_from_episodes(z0: torch.Tensor, episodes: Sequence[Episode]) -> list[torch.Tensor]:
    """Per-token budget state before each action, from the replayed step infos (``saute_z`` is z_{t+1})."""
    out = []
    for z, ep in zip(z0.tolist(), episodes, strict=True):
        zs = [z] + [float(info["saute_z"]) for info in ep.infos[:-1]]
        out.append(torch.tensor(np.asarray(zs, dtype=np.float32)))
    return out
