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

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm_cmdp_agents.algos.config import TrainConfig, option
from llm_cmdp_agents.algos.options import SurrogateOptions
from llm_cmdp_agents.algos.registry import register_algorithm

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.minibatch import UpdateContext
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["MiniLLMConfig", "minillm_advantages", "minillm_update"]


@dataclass
class MiniLLMConfig(SurrogateOptions, TrainConfig):
    """MiniLLM's settings: the shared ones and the surrogate's options (:mod:`llm_cmdp_agents.algos.options`)."""

    algo: str = option("minillm", "the algorithm")


def minillm_advantages(teacher_logprobs: np.ndarray, student_logprobs: np.ndarray) -> np.ndarray:
    """Length-normalised future rewards of one episode: ``A_t = mean(r[t+1:])`` with ``r = teacher - student``
    log-probs of the taken tokens (``A_{T-1} = 0``)."""
    r = np.asarray(teacher_logprobs, dtype=np.float64) - np.asarray(student_logprobs, dtype=np.float64)
    n = len(r)
    future = np.concatenate([np.cumsum(r[::-1])[::-1][1:], [0.0]])  # sum over t' > t
    count = np.arange(n - 1, -1, -1, dtype=np.float64)  # T - t - 1
    return np.divide(future, count, out=np.zeros(n), where=count > 0)


def minillm_update(ctx: UpdateContext, batch: Rollout) -> dict[str, float]:
    """One MiniLLM update: the clipped surrogate on :func:`minillm_advantages` (whitened over the global batch's
    tokens when ``normalise_advantages``) plus the exact per-step reverse KL (the JSD at ``beta = 1``)."""
    from llm_cmdp_agents.algos.distill import DistillTerm
    from llm_cmdp_agents.algos.losses import pad, policy_gradient_steps, whiten

    cfg: MiniLLMConfig = ctx.config  # type: ignore[assignment]
    advs = [minillm_advantages(ep.teacher_logprobs[: len(c)], lp.detach().double().cpu().numpy())
            for ep, c, lp in zip(batch.episodes, batch.completions, batch.old_logprobs)]
    adv = pad(whiten(advs, ctx.world) if cfg.normalise_advantages else advs)
    stats = policy_gradient_steps(ctx, batch, adv, clip=cfg.clip, distill=DistillTerm(1.0, 1.0))
    rev = np.concatenate([lp.detach().double().cpu().numpy() - ep.teacher_logprobs[: len(lp)]
                          for ep, lp in zip(batch.episodes, batch.old_logprobs)])
    total, count = ctx.world.sum([rev.sum(), rev.size])
    stats["sampled_reverse_kl"] = float(total / count)  # per-token log q - log p on the batch (a KL estimate)
    return stats


register_algorithm("minillm", MiniLLMConfig, minillm_update, uses_reward=False,
                   help="reverse-KL policy gradient to the teacher (no task reward)")
