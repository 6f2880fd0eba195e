"""The loss terms the algorithms share: the clipped surrogate, the value loss, the distillation term, and the
clipped policy gradient built from them (PPO, GRPO and MiniLLM are it on their own advantages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from llm_cmdp_agents.algos.distill import DistillTerm, generalized_jsd, teacher_logprobs
from llm_cmdp_agents.engine.distributed import World
from llm_cmdp_agents.engine.minibatch import LossTerms, Minibatch, UpdateContext, minibatch_steps

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["clipped_policy_loss", "distill_loss", "masked_mean", "pad", "policy_gradient_steps", "value_loss", "whiten"]


def pad(rows: Sequence[torch.Tensor | np.ndarray], width: int | None = None) -> torch.Tensor:
    """Right-pad 1-D rows with zeros to ``[N, width]`` (float32)."""
    width = width or max(len(r) for r in rows)
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.float32) if isinstance(r, np.ndarray) else r)
    return out


def whiten(rows: Sequence[np.ndarray], world: World | None = None, eps: float = 1e-8) -> list[np.ndarray]:
    """Per-token advantages ``rows`` shifted and scaled to mean 0, std 1 over every token of the global batch
    (all ranks' episodes: the statistics one process holding the whole batch would compute)."""
    world = world or World()
    flat = np.concatenate([np.asarray(r, dtype=np.float64) for r in rows])
    total, count = world.sum([flat.sum(), flat.size])
    mean = total / count
    std = float(np.sqrt(world.sum(((flat - mean) ** 2).sum())[0] / count))
    return [(np.asarray(r, dtype=np.float64) - mean) / (std + eps) for r in rows]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, per_sequence: bool = False,
                denominator: float | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1: over all tokens of the batch, or (``per_sequence``)
    first within each sequence, then over sequences (GRPO's normalisation). ``denominator``: divide the sum by this
    count instead of the local one (the tokens, or sequences, of a minibatch spread over several ranks)."""
    if per_sequence:
        per_seq = (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.mean() if denominator is None else per_seq.sum() / denominator
    return (x * mask).sum() / (mask.sum().clamp(min=1) if denominator is None else denominator)


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    per_sequence: bool = False,
    denominator: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""PPO's clipped surrogate, to minimise:
    :math:`-\mathbb E[\min(\rho A, \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon) A)]`,
    :math:`\rho = \exp(\log\pi - \log\pi_{old})`, per token (``denominator`` as in :func:`masked_mean`).

    Returns the loss and statistics: ``approx_kl`` (the k3 estimator
    :math:`\mathbb E[\rho - 1 - \log\rho]`) and ``clip_frac`` (fraction of tokens where the clip is active),
    over this call's tokens.
    """
    log_ratio = (logp - old_logp) * mask
    ratio = torch.exp(log_ratio)
    surr = torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages)
    loss = -masked_mean(surr, mask, per_sequence, denominator)
    with torch.no_grad():
        kl = masked_mean(ratio - 1 - log_ratio, mask)
        clipped = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    return loss, {"approx_kl": float(kl), "clip_frac": float(clipped)}


def value_loss(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               denominator: float | None = None) -> torch.Tensor:
    r""":math:`\frac12 \mathbb E[(V(s_t) - \hat R_t)^2]` over the tokens."""
    return 0.5 * masked_mean((values - returns) ** 2, mask, denominator=denominator)


def distill_loss(ctx: UpdateContext, mb: Minibatch, distill: DistillTerm) -> torch.Tensor:
    """The token mean (over the minibatch's global tokens) of the generalised JSD between the policy's
    distribution (``mb.ev.full_logprobs``) and the teacher's at the same positions."""
    assert mb.ev.full_logprobs is not None and ctx.teacher is not None
    rows = teacher_logprobs(ctx.teacher, mb.prompts, mb.completions, ctx.pad_id, ctx.config.temperature)
    jsd = generalized_jsd(mb.ev.full_logprobs, rows[:, : mb.width].to(mb.ev.full_logprobs.device), distill.beta)
    return masked_mean(jsd, mb.ev.mask, denominator=mb.tokens)


def policy_gradient_steps(
    ctx: UpdateContext,
    batch: Rollout,
    advantages: torch.Tensor,
    *,
    clip: float,
    returns: torch.Tensor | None = None,
    vf_coef: float = 0.0,
    per_sequence: bool = False,
    distill: DistillTerm | None = None,
) -> dict[str, float]:
    """The minibatch steps (:func:`~llm_cmdp_agents.engine.minibatch.minibatch_steps`) of a clipped policy
    gradient: the surrogate on ``advantages`` (``[N, T_max]`` of this rank's episodes; per token, or per sequence
    then over sequences with ``per_sequence``), minus ``ent_coef`` x the entropy, plus ``distill.coef`` x the JSD to
    the teacher (``distill``), plus ``vf_coef`` x the value loss on ``returns`` (a critic's). PPO, GRPO and MiniLLM
    are this loss on their own advantages."""
    cfg, policy = ctx.config, ctx.policy
    old = pad(batch.old_logprobs, advantages.shape[1]).to(policy.device)
    adv = advantages.to(policy.device)
    ret = returns.to(policy.device) if returns is not None else None

    def loss(mb: Minibatch) -> tuple[torch.Tensor, LossTerms]:
        ev, t, sel = mb.ev, mb.width, mb.sel
        denominator = mb.sequences if per_sequence else mb.tokens
        pl, st = clipped_policy_loss(ev.logprobs, old[sel, :t], adv[sel, :t], ev.mask, clip, per_sequence,
                                     denominator)
        ent = masked_mean(ev.entropy, ev.mask, denominator=mb.tokens)
        total = pl - cfg.ent_coef * ent
        terms = LossTerms({"policy_loss": float(pl.detach()), "entropy": float(ent.detach())},
                          {"approx_kl": st["approx_kl"], "clip_frac": st["clip_frac"]})
        if distill is not None:
            dl = distill_loss(ctx, mb, distill)
            total = total + distill.coef * dl
            terms.sums["distill_loss"] = float(dl.detach())
        if ret is not None:
            if ev.values is None:
                raise ValueError("a value loss needs a policy with a value head (value_head=True)")
            vl = value_loss(ev.values, ret[sel, :t], ev.mask, denominator=mb.tokens)
            total = total + vf_coef * vl
            terms.sums["value_loss"] = float(vl.detach())
        return total, terms

    return minibatch_steps(ctx, batch, loss, full=distill is not None)


