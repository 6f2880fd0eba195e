"""How the LLM policy sees the budget state a constraint rule appends to the observation (Sauté's ``z``, or any rule
that declares an ``observed_field``; its key is the rule's ``obs_key``).

Choice: the state is a real number per step; the policy adds a zero-initialised learned projection ``W z + b`` of
it (clamped to [-2, 2]) to the embedding of the input token at every position
(:meth:`llm_cmdp_agents.policy.LLMPolicy.input_embeddings`). The state changes with every token's cost, so while
sampling the agent tracks it online by running the rule's own ``step`` on the costs a batched KV-cached teacher
forward per token computes (the same divergence the env will charge; Sauté's price: the teacher is needed at
deployment). For training, the values the env itself put in the observations during the fast-path replay are used,
so the conditioning always matches the env's own accounting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_agents.env_tools import wrapper_chain
from llm_cmdp_env.batched_scoring import BatchedScorer
from llm_cmdp_env.fast_path import Episode
from llm_cmdp_env.wrappers import ConstraintWrapper
from llm_cmdp_env.wrappers.constraint import InfoView, State, step_rule

__all__ = ["BudgetTracker", "budget_tracker", "budgets_from_episodes", "conditioning_layer"]


def conditioning_layer(env: gym.Env) -> ConstraintWrapper | None:
    """The outermost constraint wrapper of ``env`` whose rule appends a state field to the observation, or None."""
    for layer in wrapper_chain(env):
        if isinstance(layer, ConstraintWrapper) and layer.constraint.observed_field is not None:
            return layer
    return None


class BudgetTracker:
    """Online budget state for a batch being sampled, equal to what the env's wrapper will compute.

    Parameters
    ----------
    env : gymnasium.Env
        A single-env stack with a rule that appends a state field to the observation (e.g. a ``SauteWrapper``).
    """

    def __init__(self, env: gym.Env) -> None:
        layer = conditioning_layer(env)
        if layer is None:
            raise ValueError("BudgetTracker needs an env stack whose constraint rule adds its state to the "
                             "observation (e.g. a SauteWrapper)")
        self.wrapper, self.rule, self.base = layer, layer.constraint, env.unwrapped
        self.field = self.rule.observed_field
        self.scorer: BatchedScorer | None = None
        self.state: State | None = None

    def initial(self, n: int) -> torch.Tensor:
        """The state the wrapper will start the next ``n`` episodes in, in order (its generator is untouched)."""
        return torch.as_tensor(getattr(self.wrapper.upcoming_starts(n), self.field), dtype=torch.float64)

    def start(self, prompts: Sequence[Sequence[int]], z0: torch.Tensor) -> torch.Tensor:
        """Begin tracking a batch from ``z0`` (:meth:`initial`): prefill the teacher on the prompts."""
        self.scorer = BatchedScorer(self.base.teacher, len(prompts), self.base.pad_id)
        self.scorer.reset_rows(list(range(len(prompts))), prompts)
        self.state = self.wrapper.upcoming_starts(len(prompts))
        setattr(self.state, self.field, z0.double().numpy().copy())
        return z0.float()

    def step(self, tokens: torch.Tensor, student_logp: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Pay the cost of ``tokens`` (for ``active`` rows) with the rule's own step and return the new state. The
        cost is the env core's (:meth:`~llm_cmdp_env.core.DistillSetup.step_costs`), from the log-probs the sampler
        attached."""
        assert self.scorer is not None and self.state is not None and self.scorer.logp is not None
        t_logp = self.scorer.logp
        dev = t_logp.device
        rows = torch.nonzero(active.to(dev)).view(-1)
        if len(rows):
            slp = student_logp.to(dev).float()
            cost, t_tok = self.base.setup.step_costs(t_logp[rows], tokens.to(dev)[rows], slp[rows],
                                                     slp[rows].gather(-1, tokens.to(dev)[rows, None])[:, 0])
            r, k = rows.cpu().numpy(), len(rows)
            part = State(**{name: v[r] for name, v in vars(self.state).items()})
            zeros = np.zeros(k)
            info = InfoView({"cost": cost, "task_reward": zeros, "teacher_logprob": t_tok}, np.arange(k), k)
            step_rule(self.rule, part, zeros, cost, info, np.zeros(k, dtype=np.bool_))
            for name, v in vars(part).items():
                getattr(self.state, name)[r] = v
        self.scorer.step(tokens.to(dev), active.to(dev))
        return torch.from_numpy(getattr(self.state, self.field)).float()


def budget_tracker(policy: Any, env: gym.Env) -> BudgetTracker | None:
    """A tracker of the budget state for sampling, when the policy is budget-conditioned (then the stack must have a
    rule that adds its state to the observation); None otherwise."""
    if not policy.budget_conditioned:
        return None
    if conditioning_layer(env) is None:
        raise ValueError("the policy is budget-conditioned but no constraint rule of the env stack adds its state to "
                         "the observation (e.g. a SauteWrapper)")
    return BudgetTracker(env)


def budgets_from_episodes(z0: torch.Tensor, episodes: Sequence[Episode], key: str | None = None) -> list[torch.Tensor]:
    """Per-token budget state before each action: ``z0``, then what each replayed step put in the observation under
    ``key`` (``Episode.observations``, recorded by ``replay(..., keep_infos=True)``; None: the one entry the stack
    adds)."""
    out = []
    for z, ep in zip(z0.tolist(), episodes, strict=True):
        seen = [_entry(o, key) for o in ep.observations[:-1]]
        out.append(torch.tensor(np.asarray([z] + seen, dtype=np.float32)))
    return out


def _entry(added: dict[str, np.ndarray], key: str | None) -> float:
    if key is None:
        if len(added) != 1:
            raise ValueError(f"the stack adds {sorted(added)} to the observation: name the budget state's key")
        key = next(iter(added))
    return float(np.asarray(added[key]).reshape(-1)[0])
