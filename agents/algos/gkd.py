"""GKD (Agarwal et al. 2024, "On-Policy Distillation of Language Models"), the paper's distillation baseline:
minimise the generalised JSD between the student's and the teacher's next-token distributions on a mix of the
student's own samples (probability ``gkd_lambda``, TRL's ``lmbda``) and the problems' reference solutions. No
reward: the task enters only through the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm_cmdp_agents.algos.config import TrainConfig, option, real
from llm_cmdp_agents.algos.options import JSDOptions
from llm_cmdp_agents.algos.registry import register_algorithm

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.minibatch import UpdateContext
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["GKDConfig", "gkd_update", "trains_on_references"]


@dataclass
class GKDConfig(JSDOptions, TrainConfig):
    """GKD's settings: the shared ones, the JSD's ``gkd_beta`` (TRL's ``GKDConfig.beta``) and its on-policy fraction
    ``gkd_lambda`` (TRL's ``lmbda``)."""

    algo: str = option("gkd", "the algorithm")
    gkd_lambda: float = option(0.5, "GKD's on-policy fraction: each update trains on student samples with this "
                               "probability, else on the problems' reference solutions", real(low=0.0, high=1.0))


def trains_on_references(cfg: GKDConfig, rng: np.random.Generator) -> bool:
    """One draw per update (the same on every rank): the reference solutions with probability ``1 - gkd_lambda``."""
    return not bool(rng.random() < cfg.gkd_lambda)


def gkd_update(ctx: UpdateContext, batch: Rollout) -> dict[str, float]:
    """One GKD update: minibatch steps on the token-mean generalised JSD (``gkd_beta``; TRL's ``GKDTrainer`` loss,
    ``reduction="batchmean"`` over the completion tokens) minus ``ent_coef`` x the entropy. ``approx_kl`` reports
    how far the policy moved from the one that produced the batch's log-probs."""
    import torch

    from llm_cmdp_agents.algos.distill import DistillTerm
    from llm_cmdp_agents.algos.losses import distill_loss, masked_mean, pad
    from llm_cmdp_agents.engine.minibatch import LossTerms, Minibatch, minibatch_steps

    cfg: GKDConfig = ctx.config  # type: ignore[assignment]
    distill = DistillTerm(1.0, cfg.gkd_beta)
    width = max(len(c) for c in batch.completions)
    old = pad(batch.old_logprobs, width).to(ctx.policy.device)

    def loss(mb: Minibatch) -> tuple[torch.Tensor, LossTerms]:
        ev = mb.ev
        ent = masked_mean(ev.entropy, ev.mask, denominator=mb.tokens)
        dl = distill_loss(ctx, mb, distill)
        with torch.no_grad():
            log_ratio = (ev.logprobs - old[mb.sel, : mb.width]) * ev.mask
            kl = masked_mean(torch.exp(log_ratio) - 1 - log_ratio, ev.mask)
        terms = LossTerms({"entropy": float(ent.detach()), "distill_loss": float(dl.detach())},
                          {"approx_kl": float(kl)})
        return distill.coef * dl - cfg.ent_coef * ent, terms

    return minibatch_steps(ctx, batch, loss, full=True)


register_algorithm("gkd", GKDConfig, gkd_update, uses_reward=False, reference=trains_on_references,
                   help="generalised JSD to the teacher on student samples and reference solutions (no reward)")
