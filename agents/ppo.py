"""PPO for LLM policies: token-level advantages from GAE over the wrapper stack's per-token reward, with a
value-head baseline, and the clipped surrogate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.data_parallel import gathered
from llm_cmdp_agents.distill_losses import DistillTerm
from llm_cmdp_agents.distributed import World
from llm_cmdp_agents.losses import optimise, pad, whiten
from llm_cmdp_agents.rollout import Rollout

if TYPE_CHECKING:
    from llm_cmdp_agents.config import TrainConfig
    from llm_cmdp_agents.policy import LLMPolicy

__all__ = ["gae", "ppo_update"]


def gae(rewards: np.ndarray, values: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Generalised advantage estimation for one finished episode.

    :math:`\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)` with :math:`V(s_T) = 0` (the episode ends: EOS, the
    token limit, or a wrapper's termination are all real ends of the generation), and
    :math:`A_t = \sum_k (\gamma\lambda)^k \delta_{t+k}`. Returns ``(advantages, returns = A + V)``.
    """
    t_len = len(rewards)
    adv = np.zeros(t_len)
    last = 0.0
    for t in reversed(range(t_len)):
        next_v = values[t + 1] if t + 1 < t_len else 0.0
        delta = rewards[t] + gamma * next_v - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv, adv + values[:t_len]


def ppo_update(
    policy: LLMPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout, cfg: TrainConfig, rng: np.random.Generator,
    forward: Callable[..., Any] | None = None, world: World | None = None, distill: DistillTerm | None = None,
) -> dict[str, float]:
    """One PPO update on ``rollout``: values of the sampling policy, GAE, advantages whitened over the tokens of
    the global batch (every rank's), then ``cfg.epochs`` epochs of clipped minibatch steps with a value loss
    (see :func:`~llm_cmdp_agents.losses.optimise` for ``forward`` and ``world``)."""
    world = world or World()
    with torch.no_grad(), gathered(policy):
        values = []
        for s in range(0, len(rollout), cfg.minibatch_size):
            sl = slice(s, s + cfg.minibatch_size)
            ev = policy.evaluate_actions(rollout.prompts[sl], rollout.completions[sl], cfg.temperature,
                                         None if rollout.budgets is None else rollout.budgets[sl])
            assert ev.values is not None, "PPO needs a value head"
            for row, c in zip(ev.values.float().cpu(), rollout.completions[sl]):
                values.append(row[: len(c)].numpy().astype(np.float64))
    advs, rets = zip(*(gae(r, v, cfg.gamma, cfg.gae_lambda) for r, v in zip(rollout.rewards, values)))
    adv = pad(whiten(list(advs), world) if cfg.normalise_advantages else list(advs))
    stats = optimise(policy, optimizer, rollout, adv, returns=pad(list(rets)), epochs=cfg.epochs,
                     minibatch_size=cfg.minibatch_size, clip=cfg.clip, vf_coef=cfg.vf_coef, ent_coef=cfg.ent_coef,
                     max_grad_norm=cfg.max_grad_norm, temperature=cfg.temperature, rng=rng, forward=forward,
                     world=world, distill=distill)
    flat_values = np.concatenate(values)
    value_sum, value_count = world.sum([flat_values.sum(), flat_values.size])
    stats["value_mean"] = float(value_sum / value_count)
    return stats
