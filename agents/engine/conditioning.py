"""What a constraint rule adds to the policy's input: the one place the policy, the sampler and the rollout learn
about it.

A rule that appends a state field to the observation (:attr:`Constraint.observed_field`, e.g. Sauté's remaining
budget ``z``; its key is the rule's ``obs_key``) gives a conditioned policy one real number per step. Choice: the
policy adds a zero-initialised learned projection ``W c + b`` of it (clamped to :data:`CONDITION_CLAMP`) to the
embedding of the input token at every position (:func:`condition_embedding`), so the untrained projection leaves
the model unchanged. The value changes with every token's cost, so while sampling the agent tracks it online by
running the rule's own ``step`` on the costs a batched KV-cached teacher forward per token computes
(:class:`ConditionTracker`: the divergence the env will charge; the price: the teacher is needed at deployment).
For training, the values the env itself put in the observations during the fast-path replay are used
(:func:`conditions_from_episodes`), so the conditioning always matches the env's own accounting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from llm_cmdp_agents.engine.env_stack import wrapper_chain
from llm_cmdp_env.replay.fast_path import Episode
from llm_cmdp_env.scoring.batched import BatchedScorer
from llm_cmdp_env.wrappers import ConstraintWrapper
from llm_cmdp_env.wrappers.constraint import InfoView, State, step_rule

__all__ = ["CONDITION_CLAMP", "ConditionTracker", "condition_embedding", "condition_inputs", "condition_projection",
           "condition_tracker", "conditioning_layer", "conditions_from_episodes", "current_names"]

#: The observed value is clamped to this range before the projection (a remaining budget runs far below 0 once
#: spent; beyond these values its sign, not its size, is what matters for the policy).
CONDITION_CLAMP = (-2.0, 2.0)


#: The names the projection and its switch had in policy folders and checkpoints written before they had their
#: generic ones (read by :func:`current_names`).
_LEGACY_NAMES = {"budget_proj": "condition_proj", "budget_conditioning": "conditioning"}


def current_names(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` (a state dict, a policy folder's heads or its ``agent_config.json``) with the legacy names of the
    projection (``budget_proj``, ``budget_conditioning``) replaced by the current ones."""
    out = {}
    for k, v in d.items():
        head, dot, rest = k.partition(".")
        out[_LEGACY_NAMES.get(head, head) + dot + rest] = v
    return out


def condition_projection(hidden: int) -> nn.Linear:
    """The policy's projection of the observed value into its embedding space, zero-initialised."""
    proj = nn.Linear(1, hidden)
    nn.init.zeros_(proj.weight)
    nn.init.zeros_(proj.bias)
    return proj


def condition_embedding(proj: nn.Module, values: torch.Tensor) -> torch.Tensor:
    """``proj`` of the clamped values (any shape; the embedding dimension is appended)."""
    return proj(values.float().clamp(*CONDITION_CLAMP)[..., None])


def condition_inputs(conditions: Sequence[torch.Tensor], seqs: Sequence[Sequence[int]],
                     completions: Sequence[Sequence[int]], width: int, device: torch.device) -> torch.Tensor:
    """The value at every input position ``[n, width]`` of left-padded ``prompt + completion`` rows, from
    ``conditions[i]``, the value before each token of completion ``i`` (``[T_i]``): the input at the last prompt
    position predicts token 0 under ``c_0``; input token ``t`` predicts token ``t + 1`` under ``c_{t+1}``; earlier
    prompt positions carry ``c_0`` as well."""
    out = torch.zeros(len(seqs), width, device=device)
    for i, s in enumerate(seqs):
        b = torch.as_tensor(conditions[i], device=device).float()
        lc = len(completions[i])
        out[i, width - len(s): width - lc] = b[0]
        if lc > 1:
            out[i, width - lc: width - 1] = b[1:lc]
        out[i, width - 1] = b[lc - 1]
    return out


def conditioning_layer(env: gym.Env) -> ConstraintWrapper | None:
    """The outermost constraint wrapper of ``env`` whose rule appends a state field to the observation, or None."""
    for layer in wrapper_chain(env):
        if isinstance(layer, ConstraintWrapper) and layer.constraint.observed_field is not None:
            return layer
    return None


class ConditionTracker:
    """Online value of the observed state for a batch being sampled, equal to what the env's wrapper will compute.

    Parameters
    ----------
    env : gymnasium.Env
        A single-env stack with a rule that appends a state field to the observation (e.g. a ``SauteWrapper``).
    """

    def __init__(self, env: gym.Env) -> None:
        layer = conditioning_layer(env)
        if layer is None:
            raise ValueError("ConditionTracker needs an env stack whose constraint rule adds its state to the "
                             "observation (e.g. a SauteWrapper)")
        self.wrapper, self.rule, self.base = layer, layer.constraint, env.unwrapped
        self.field = self.rule.observed_field
        self.scorer: BatchedScorer | None = None
        self.state: State | None = None

    def initial(self, n: int) -> torch.Tensor:
        """The value the wrapper will start the next ``n`` episodes with, in order (its generator is untouched)."""
        return torch.as_tensor(getattr(self.wrapper.upcoming_starts(n), self.field), dtype=torch.float64)

    def start(self, prompts: Sequence[Sequence[int]], c0: torch.Tensor) -> torch.Tensor:
        """Begin tracking a batch from ``c0`` (:meth:`initial`): prefill the teacher on the prompts."""
        self.scorer = BatchedScorer(self.base.teacher, len(prompts), self.base.pad_id)
        self.scorer.reset_rows(list(range(len(prompts))), prompts)
        self.state = self.wrapper.upcoming_starts(len(prompts))
        setattr(self.state, self.field, c0.double().numpy().copy())
        return c0.float()

    def step(self, tokens: torch.Tensor, student_logp: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Pay the cost of ``tokens`` (for ``active`` rows) with the rule's own step and return the new value. The
        cost is the env core's (:meth:`~llm_cmdp_env.episode.rules.DistillSetup.step_costs`), from the log-probs
        the sampler attached."""
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


def condition_tracker(policy: Any, env: gym.Env) -> ConditionTracker | None:
    """A tracker of the observed state for sampling, when the policy is conditioned (then the stack must have a rule
    that adds its state to the observation); None otherwise."""
    if not policy.conditioned:
        return None
    if conditioning_layer(env) is None:
        raise ValueError("the policy is conditioned on the observed state but no constraint rule of the env stack "
                         "adds its state to the observation (e.g. a SauteWrapper)")
    return ConditionTracker(env)


def conditions_from_episodes(c0: torch.Tensor, episodes: Sequence[Episode],
                             key: str | None = None) -> list[torch.Tensor]:
    """Per-token value before each action: ``c0``, then what each replayed step put in the observation under
    ``key`` (``Episode.observations``, recorded by ``replay(..., keep_infos=True)``; None: the one entry the stack
    adds)."""
    out = []
    for z, ep in zip(c0.tolist(), episodes, strict=True):
        seen = [_entry(o, key) for o in ep.observations[:-1]]
        out.append(torch.tensor(np.asarray([z] + seen, dtype=np.float32)))
    return out


def _entry(added: dict[str, np.ndarray], key: str | None) -> float:
    if key is None:
        if len(added) != 1:
            raise ValueError(f"the stack adds {sorted(added)} to the observation: name the observed state's key")
        key = next(iter(added))
    return float(np.asarray(added[key]).reshape(-1)[0])
