"""PPO for LLM policies: token-level advantages from GAE over the wrapper stack's per-token reward, with a
value-head baseline, and the clipped surrogate (plus, optionally, GKD's JSD to the teacher)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm_cmdp_agents.algos.config import TrainConfig, option, real
from llm_cmdp_agents.algos.options import DistillOptions, SurrogateOptions
from llm_cmdp_agents.algos.registry import register_algorithm

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.minibatch import UpdateContext
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["PPOConfig", "gae", "ppo_update"]


@dataclass
class PPOConfig(SurrogateOptions, DistillOptions, TrainConfig):
    """PPO's settings: the shared ones (:class:`~llm_cmdp_agents.algos.config.TrainConfig`), the surrogate's and the
    JSD term's options (:mod:`llm_cmdp_agents.algos.options`) and these."""

    algo: str = option("ppo", "the algorithm")
    vf_coef: float = option(0.5, "value-loss weight", real(nonnegative=True))
    gamma: float = option(1.0, "discount of the GAE returns", real(low=0.0, high=1.0))
    gae_lambda: float = option(0.95, "GAE lambda", real(low=0.0, high=1.0))


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


def ppo_update(ctx: UpdateContext, batch: Rollout) -> dict[str, float]:
    """One PPO update: values of the sampling policy, GAE, advantages whitened over the tokens of the global batch
    (every rank's), then the clipped minibatch steps with a value loss
    (:func:`~llm_cmdp_agents.algos.losses.policy_gradient_steps`)."""
    import torch

    from llm_cmdp_agents.algos.distill import DistillTerm
    from llm_cmdp_agents.algos.losses import pad, policy_gradient_steps, whiten
    from llm_cmdp_agents.engine.data_parallel import gathered

    cfg: PPOConfig = ctx.config  # type: ignore[assignment]
    policy, world = ctx.policy, ctx.world
    with torch.no_grad(), gathered(policy):
        values = []
        for s in range(0, len(batch), cfg.minibatch_size):
            sl = slice(s, s + cfg.minibatch_size)
            ev = policy.evaluate_actions(batch.prompts[sl], batch.completions[sl], cfg.temperature,
                                         None if batch.conditions is None else batch.conditions[sl])
            assert ev.values is not None, "PPO needs a value head"
            for row, c in zip(ev.values.float().cpu(), batch.completions[sl]):
                values.append(row[: len(c)].numpy().astype(np.float64))
    advs, rets = zip(*(gae(r, v, cfg.gamma, cfg.gae_lambda) for r, v in zip(batch.rewards, values)))
    adv = pad(whiten(list(advs), world) if cfg.normalise_advantages else list(advs))
    distill = DistillTerm(cfg.distill_coef, cfg.gkd_beta) if cfg.distill_coef > 0 else None
    stats = policy_gradient_steps(ctx, batch, adv, clip=cfg.clip, returns=pad(list(rets)), vf_coef=cfg.vf_coef,
                                  distill=distill)
    flat_values = np.concatenate(values)
    value_sum, value_count = world.sum([flat_values.sum(), flat_values.size])
    stats["value_mean"] = float(value_sum / value_count)
    return stats


register_algorithm("ppo", PPOConfig, ppo_update, value_head=True,
                   help="token-level GAE advantages with a value head, on the env's reward")
