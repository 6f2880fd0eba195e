"""Distillation losses of the paper's baselines: GKD's generalised Jensen-Shannon divergence (Agarwal et al. 2024,
"On-Policy Distillation of Language Models") and MiniLLM's per-step reverse KL (Gu et al. 2024), computed between
the student's and the frozen teacher's full next-token distributions over a batch of completions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llm_cmdp_env.scoring.logprobs import CompletionLogits

__all__ = ["DistillTerm", "generalized_jsd", "teacher_logprobs"]


def generalized_jsd(student_logp: torch.Tensor, teacher_logp: torch.Tensor, beta: float) -> torch.Tensor:
    r"""The generalised JSD of GKD at every position (summed over the vocabulary, shape ``student_logp[..., 0]``).

    With :math:`M = \beta T + (1-\beta) S` (teacher :math:`T`, student :math:`S`),

    .. math:: \mathrm{JSD}_\beta = \beta\,\mathrm{KL}(T \| M) + (1-\beta)\,\mathrm{KL}(S \| M),

    and the limits :math:`\beta = 0`: :math:`\mathrm{KL}(T \| S)` (forward KL), :math:`\beta = 1`:
    :math:`\mathrm{KL}(S \| T)` (reverse KL, MiniLLM's per-step term) exactly as TRL's
    ``GKDTrainer.generalized_jsd_loss`` computes them (tested against its formula). Both inputs are
    log-probabilities ``[..., V]`` (apply the temperature before); gradients flow into ``student_logp``.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    s, t = student_logp, teacher_logp.to(student_logp.dtype)
    if beta == 0.0:
        return (t.exp() * (t - s)).sum(-1)
    if beta == 1.0:
        return (s.exp() * (s - t)).sum(-1)
    m = torch.logsumexp(torch.stack([s + math.log1p(-beta), t + math.log(beta)]), dim=0)
    return beta * (t.exp() * (t - m)).sum(-1) + (1.0 - beta) * (s.exp() * (s - m)).sum(-1)


@torch.no_grad()
def teacher_logprobs(teacher: torch.nn.Module, prompts: Sequence[Sequence[int]],
                     completions: Sequence[Sequence[int]], pad_id: int, temperature: float = 1.0) -> torch.Tensor:
    """The teacher's next-token log-probs before every completion token, right-padded to ``[B, T_max, V]``
    (float32; one forward for the batch, see :class:`~llm_cmdp_env.scoring.logprobs.CompletionLogits`)."""
    scored = CompletionLogits(teacher, prompts, completions, pad_id)
    t_max = max(len(c) for c in completions)
    out = torch.zeros(len(completions), t_max, scored.vocab, device=scored.device)
    for i in range(len(completions)):
        lo, hi = int(scored.offsets[i]), int(scored.offsets[i + 1])
        out[i, : hi - lo] = torch.log_softmax(scored.logits(lo, hi).float() / temperature, dim=-1)
    return out


@dataclass(frozen=True)
class DistillTerm:
    """``coef`` x the token-mean generalised JSD (``beta``) between the student and the teacher (the update's
    ``UpdateContext.teacher``): GKD's loss, the term GRPO + GKD adds beside the clipped surrogate, and MiniLLM's
    exact per-step reverse KL (``beta=1``)."""

    coef: float
    beta: float
