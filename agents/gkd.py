"""GKD (Agarwal et al. 2024, "On-Policy Distillation of Language Models"), the paper's distillation baseline:
minimise the generalised JSD between the student's and the teacher's next-token distributions on a mix of the
student's own samples (probability ``gkd_lambda``, TRL's ``lmbda``) and the problems' reference solutions. No
reward: the task enters only through the data. The trainer draws which data an update uses
(:meth:`~llm_cmdp_agents.trainer.Trainer.collect`); this module holds the update."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.distill_losses import DistillTerm
from llm_cmdp_agents.distributed import World
from llm_cmdp_agents.losses import optimise
from llm_cmdp_agents.rollout import Rollout

if TYPE_CHECKING:
    from llm_cmdp_agents.config import TrainConfig
    from llm_cmdp_agents.policy import LLMPolicy

__all__ = ["gkd_update"]


def gkd_update(
    policy: LLMPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout, cfg: TrainConfig, rng: np.random.Generator,
    forward: Callable[..., Any] | None = None, world: World | None = None, distill: DistillTerm | None = None,
) -> dict[str, float]:
    """One GKD update: ``cfg.epochs`` epochs of minibatch steps on the token-mean generalised JSD
    (``distill.beta``; TRL's ``GKDTrainer`` loss, ``reduction="batchmean"`` over the completion tokens). The
    clipped surrogate gets zero advantages, so it contributes neither loss nor gradient; it only reports how far
    the policy moved (``approx_kl``)."""
    if distill is None:
        raise ValueError("GKD needs the teacher: pass distill=DistillTerm(...)")
    width = max(len(c) for c in rollout.completions)
    return optimise(policy, optimizer, rollout, torch.zeros(len(rollout), width), returns=None, epochs=cfg.epochs,
                    minibatch_size=cfg.minibatch_size, clip=cfg.clip, vf_coef=0.0, ent_coef=cfg.ent_coef,
                    max_grad_norm=cfg.max_grad_norm, temperature=cfg.temperature, rng=rng, forward=forward,
                    world=world, distill=distill)
