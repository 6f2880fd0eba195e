"""GRPO (Shao et al. 2024, DeepSeekMath): several completions per prompt, advantages normalised within each
group of the same prompt, no critic (Dr. GRPO: centred only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from llm_cmdp_agents.algos.config import TrainConfig, option
from llm_cmdp_agents.algos.options import DistillOptions, SurrogateOptions
from llm_cmdp_agents.algos.registry import register_algorithm

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.minibatch import UpdateContext
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["GRPOConfig", "group_advantages", "grpo_update"]


@dataclass
class GRPOConfig(SurrogateOptions, DistillOptions, TrainConfig):
    """GRPO's settings: the shared ones (group size 4 by default, at least 2), the surrogate's and the JSD term's
    options (:mod:`llm_cmdp_agents.algos.options`)."""

    algo: str = option("grpo", "the algorithm")

    default_group_size: ClassVar[int] = 4
    min_group_size: ClassVar[int] = 2  # advantages are normalised within a group


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


def grpo_update(ctx: UpdateContext, batch: Rollout) -> dict[str, float]:
    """One GRPO update: each episode's return (sum of the wrapper stack's rewards) is normalised within its
    group (centred only with ``normalise_advantages=False``: :func:`group_advantages`), the advantage is given to
    every token of the episode, and the clipped surrogate is averaged per sequence then over sequences (the
    DeepSeekMath normalisation). No value loss, no KL term (the divergence from the teacher is the env's cost). A
    group is on one rank, so its statistics are local."""
    from llm_cmdp_agents.algos.distill import DistillTerm
    from llm_cmdp_agents.algos.losses import pad, policy_gradient_steps

    cfg: GRPOConfig = ctx.config  # type: ignore[assignment]
    a = group_advantages(batch.returns, batch.groups, scale=cfg.normalise_advantages)
    adv = pad([np.full(len(c), a[i]) for i, c in enumerate(batch.completions)])
    distill = DistillTerm(cfg.distill_coef, cfg.gkd_beta) if cfg.distill_coef > 0 else None
    stats = policy_gradient_steps(ctx, batch, adv, clip=cfg.clip, per_sequence=True, distill=distill)
    stds = ctx.world.concat([float(batch.returns[batch.groups == g].std()) for g in np.unique(batch.groups)])
    stats["group_return_std"] = float(np.mean(stds))
    return stats


register_algorithm("grpo", GRPOConfig, grpo_update,
                   help="group-normalised returns, several completions per prompt, no critic")
