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

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.env_tools import find_wrapper
from llm_cmdp_env.batched_scoring import BatchedScorer
from llm_cmdp_env.fast_path import Episode
from llm_cmdp_env.wrappers import SauteWrapper

__all__ = ["SauteTracker", "budget_tracker", "budgets_from_episodes", "conditions_on_budget"]


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
        """The z_0 the wrapper will draw for the next ``n`` resets, in order (the generator is untouched)."""
        return torch.as_tensor(self.wrapper.upcoming_starts(n).z, dtype=torch.float64)

    def start(self, prompts: Sequence[Sequence[int]], z0: torch.Tensor) -> torch.Tensor:
        """Begin tracking a batch: prefill the teacher on the prompts."""
        self.scorer = BatchedScorer(self.base.teacher, len(prompts), self.base.pad_id)
        self.scorer.reset_rows(list(range(len(prompts))), prompts)
        self.z = z0.double().clone()
        return self.z.float()

    def step(self, tokens: torch.Tensor, student_logp: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Pay the cost of ``tokens`` (for ``active`` rows) and return the new z. The cost is the env core's
        (:meth:`~llm_cmdp_env.core.DistillSetup.step_costs`), from the log-probs the sampler attached."""
        assert self.scorer is not None and self.z is not None
        assert self.scorer.logp is not None
        t_logp = self.scorer.logp
        dev = t_logp.device
        rows = torch.nonzero(active.to(dev)).view(-1)
        if len(rows):
            slp = student_logp.to(dev).float()
            cost, _ = self.base.setup.step_costs(t_logp[rows], tokens.to(dev)[rows], slp[rows],
                                                  slp[rows].gather(-1, tokens.to(dev)[rows, None])[:, 0])
            r = rows.cpu()
            self.z[r] = self.wrapper.constraint.next_z(self.z[r], torch.from_numpy(cost))
        self.scorer.step(tokens.to(dev), active.to(dev))
        return self.z.float()


def conditions_on_budget(constraint: str) -> bool:
    """Whether a policy trained under the named constraint should read the budget state (Sauté's augmented
    observation): the default of ``PolicyConfig.budget_conditioning``."""
    return constraint == "saute"


def budget_tracker(policy: Any, env: gym.Env) -> SauteTracker | None:
    """A tracker of the budget state for sampling, when the policy is budget-conditioned (then the stack must
    have a ``SauteWrapper``); None otherwise."""
    if not policy.budget_conditioned:
        return None
    if find_wrapper(env, SauteWrapper) is None:
        raise ValueError("the policy is budget-conditioned but the env stack has no SauteWrapper")
    return SauteTracker(env)


def budgets_from_episodes(z0: torch.Tensor, episodes: Sequence[Episode]) -> list[torch.Tensor]:
    """Per-token budget state before each action, from the replayed step infos (``saute_z`` is z_{t+1})."""
    out = []
    for z, ep in zip(z0.tolist(), episodes, strict=True):
        zs = [z] + [float(info["saute_z"]) for info in ep.infos[:-1]]
        out.append(torch.tensor(np.asarray(zs, dtype=np.float32)))
    return out
