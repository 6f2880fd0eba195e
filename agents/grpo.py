"""GRPO (Shao et al. 2024, DeepSeekMath): several completions per prompt, advantages normalised within each
group of the same prompt, no critic."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.distill_losses import DistillTerm
from llm_cmdp_agents.distributed import World
from llm_cmdp_agents.losses import optimise, pad
from llm_cmdp_agents.rollout import Rollout

if TYPE_CHECKING:
    from llm_cmdp_agents.config import TrainConfig
    from llm_cmdp_agents.policy import LLMPolicy

__all__ = ["group_advantages", "grpo_update"]


def group_advantages(returns: np.ndarray, groups: np.ndarray, eps: float = 1e-6, scale: bool = True) -> np.ndarray:
    r"""Group-normalised advantages :math:`A_i = (R_i - \operatorname{mean}_g R) / (\operatorname{std}_g R +
    \epsilon)` over the episodes ``i`` of each group ``g`` (population std). A group whose returns are all
    equal gets advantage 0: it carries no signal about which completion is better.

    ``scale=False`` keeps only the centring, :math:`A_i = R_i - \operatorname{mean}_g R` (Dr. GRPO, Liu et al.
    2025). Why it matters for a penalised reward: dividing by the group's std makes a group's advantages
    independent of the reward's scale, so in a group whose completions tie on the task reward, the differences
    of a penalty ``lam * cost`` become advantages of size ~1 however small ``lam`` is. Centred only, they keep
    the size ``lam`` gives them."""
    returns = np.asarray(returns, dtype=np.float64)
    out = np.zeros_like(returns)
    for g in np.unique(groups):
        sel = groups == g
        r = returns[sel]
        out[sel] = (r - r.mean()) / (r.std() + eps) if scale else r - r.mean()
    return out


def grpo_update(
    policy: LLMPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout, cfg: TrainConfig, rng: np.random.Generator,
    forward: Callable[..., Any] | None = None, world: World | None = None, distill: DistillTerm | None = None,
) -> dict[str, float]:
    """One GRPO update: each episode's return (sum of the wrapper stack's rewards) is normalised within its
    group (centred only with ``cfg.normalise_advantages=False``: :func:`group_advantages`), the advantage is
    given to every token of the episode, and the clipped surrogate is averaged per sequence then over sequences
    (the DeepSeekMath normalisation). No value loss, no KL term (the divergence from the teacher is the env's
    cost). A group is on one rank, so its statistics are local; see :func:`~llm_cmdp_agents.losses.optimise`
    for ``forward`` and ``world``."""
    world = world or World()
    a = group_advantages(rollout.returns, rollout.groups, scale=cfg.normalise_advantages)
    adv = pad([np.full(len(c), a[i]) for i, c in enumerate(rollout.completions)])
    stats = optimise(policy, optimizer, rollout, adv, returns=None, epochs=cfg.epochs,
                     minibatch_size=cfg.minibatch_size, clip=cfg.clip, vf_coef=0.0, ent_coef=cfg.ent_coef,
                     max_grad_norm=cfg.max_grad_norm, temperature=cfg.temperature, rng=rng, per_sequence=True,
                     forward=forward, world=world, distill=distill)
    stds = world.concat([float(rollout.returns[rollout.groups == g].std()) for g in np.unique(rollout.groups)])
    stats["group_return_std"] = float(np.mean(stds))
    return stats
