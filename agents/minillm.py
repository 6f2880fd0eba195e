"""MiniLLM-style reverse-KL policy gradient (Gu et al. 2024, "MiniLLM: Knowledge Distillation of Large Language
Models"), the paper's second distillation baseline: the student maximises
:math:`-\\mathrm{KL}(q_\\theta \\| p) = \\mathbb{E}_q \\sum_t r_t` with :math:`r_t = \\log p(y_t|\\cdot) -
\\log q_\\theta(y_t|\\cdot)`, split as in the paper into

- the long-term part: a clipped policy gradient whose advantage at step ``t`` is the length-normalised future
  reward :math:`R^{norm}_{t+1} = \\frac{1}{T-t-1}\\sum_{t'>t} r_{t'}` (0 at the last token);
- the single-step part: the exact per-step reverse KL over the vocabulary (the generalised JSD at ``beta = 1``),
  differentiated directly.

No task reward (MiniLLM is pure distillation). Left out: teacher-mixed sampling and the pre-training loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.distill_losses import DistillTerm
from llm_cmdp_agents.distributed import World
from llm_cmdp_agents.losses import optimise, pad, whiten
from llm_cmdp_agents.rollout import Rollout

if TYPE_CHECKING:
    from llm_cmdp_agents.config import TrainConfig
    from llm_cmdp_agents.policy import LLMPolicy

__all__ = ["minillm_advantages", "minillm_update"]


def minillm_advantages(teacher_logprobs: np.ndarray, student_logprobs: np.ndarray) -> np.ndarray:
    """Length-normalised future rewards of one episode: ``A_t = mean(r[t+1:])`` with ``r = teacher - student``
    log-probs of the taken tokens (``A_{T-1} = 0``)."""
    r = np.asarray(teacher_logprobs, dtype=np.float64) - np.asarray(student_logprobs, dtype=np.float64)
    n = len(r)
    future = np.concatenate([np.cumsum(r[::-1])[::-1][1:], [0.0]])  # sum over t' > t
    count = np.arange(n - 1, -1, -1, dtype=np.float64)  # T - t - 1
    return np.divide(future, count, out=np.zeros(n), where=count > 0)


def minillm_update(
    policy: LLMPolicy, optimizer: torch.optim.Optimizer, rollout: Rollout, cfg: TrainConfig, rng: np.random.Generator,
    forward: Callable[..., Any] | None = None, world: World | None = None, distill: DistillTerm | None = None,
) -> dict[str, float]:
    """One MiniLLM update: the clipped surrogate on :func:`minillm_advantages` (whitened over the global batch's
    tokens when ``cfg.normalise_advantages``) plus the exact per-step reverse KL (``distill``, ``beta = 1``)."""
    if distill is None or distill.beta != 1.0:
        raise ValueError("MiniLLM needs the teacher's per-step reverse KL: distill=DistillTerm(coef, beta=1.0, ...)")
    advs = [minillm_advantages(ep.teacher_logprobs[: len(c)], lp.detach().double().cpu().numpy())
            for ep, c, lp in zip(rollout.episodes, rollout.completions, rollout.old_logprobs)]
    adv = pad(whiten(advs, world) if cfg.normalise_advantages else advs)
    stats = optimise(policy, optimizer, rollout, adv, returns=None, epochs=cfg.epochs,
                     minibatch_size=cfg.minibatch_size, clip=cfg.clip, vf_coef=0.0, ent_coef=cfg.ent_coef,
                     max_grad_norm=cfg.max_grad_norm, temperature=cfg.temperature, rng=rng, forward=forward,
                     world=world, distill=distill)
    rev = np.concatenate([lp.detach().double().cpu().numpy() - ep.teacher_logprobs[: len(lp)]
                          for ep, lp in zip(rollout.episodes, rollout.old_logprobs)])
    total, count = (world or World()).sum([rev.sum(), rev.size])
    stats["sampled_reverse_kl"] = float(total / count)  # per-token log q - log p on the batch (a KL estimate)
    return stats
