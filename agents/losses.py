"""The clipped surrogate, the value loss and the minibatch optimisation loop shared by PPO and GRPO."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from llm_cmdp_agents.rollout import Rollout

if TYPE_CHECKING:
    from llm_cmdp_agents.policy import LLMPolicy

__all__ = ["clipped_policy_loss", "masked_mean", "optimise", "pad", "value_loss"]


def pad(rows: Sequence[torch.Tensor | np.ndarray], width: int | None = None) -> torch.Tensor:
    """Right-pad 1-D rows with zeros to ``[N, width]`` (float32)."""
    width = width or max(len(r) for r in rows)
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(np.asarray(r, dtype=np.float32) if isinstance(r, np.ndarray) else r)
    return out


def masked_mean(x: torch.Tensor, mask: torch.Tensor, per_sequence: bool = False) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1: over all tokens of the batch, or (``per_sequence``)
    first within each sequence, then over sequences (GRPO's normalisation)."""
    if per_sequence:
        return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    return (x * mask).sum() / mask.sum().clamp(min=1)


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    per_sequence: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""PPO's clipped surrogate, to minimise:
    :math:`-\mathbb E[\min(\rho A, \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon) A)]`,
    :math:`\rho = \exp(\log\pi - \log\pi_{old})`, per token.

    Returns the loss and statistics: ``approx_kl`` (the k3 estimator
    :math:`\mathbb E[\rho - 1 - \log\rho]`) and ``clip_frac`` (fraction of tokens where the clip is active).
    """
    log_ratio = (logp - old_logp) * mask
    ratio = torch.exp(log_ratio)
    surr = torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages)
    loss = -masked_mean(surr, mask, per_sequence)
    with torch.no_grad():
        kl = masked_mean(ratio - 1 - log_ratio, mask)
        clipped = masked_mean(((ratio - 1).abs() > clip).float(), mask)
    return loss, {"approx_kl": float(kl), "clip_frac": float(clipped)}


def value_loss(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac12 \mathbb E[(V(s_t) - \hat R_t)^2]` over the tokens."""
    return 0.5 * masked_mean((values - returns) ** 2, mask)


def optimise(
    policy: LLMPolicy,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: torch.Tensor,
    *,
    returns: torch.Tensor | None,
    epochs: int,
    minibatch_size: int,
    clip: float,
    vf_coef: float,
    ent_coef: float,
    max_grad_norm: float,
    temperature: float,
    rng: np.random.Generator,
    per_sequence: bool = False,
) -> dict[str, float]:
    """Epochs of shuffled minibatch steps (minibatches of whole episodes) on the clipped surrogate (+ value
    loss when ``returns`` is given, - entropy bonus). ``advantages``/``returns`` are ``[N, T_max]``."""
    n = len(rollout)
    old = pad(rollout.old_logprobs, advantages.shape[1]).to(policy.device)
    adv = advantages.to(policy.device)
    ret = returns.to(policy.device) if returns is not None else None
    logs: dict[str, list[float]] = {}
    policy.train()
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, minibatch_size):
            idx = order[start: start + minibatch_size]
            ev = policy.evaluate_actions(
                [rollout.prompts[i] for i in idx], [rollout.completions[i] for i in idx], temperature,
                None if rollout.budgets is None else [rollout.budgets[i] for i in idx],
            )
            t = ev.logprobs.shape[1]
            sel = torch.as_tensor(idx, device=policy.device)
            pl, st = clipped_policy_loss(ev.logprobs, old[sel, :t], adv[sel, :t], ev.mask, clip, per_sequence)
            ent = masked_mean(ev.entropy, ev.mask)
            loss = pl - ent_coef * ent
            if ret is not None:
                if ev.values is None:
                    raise ValueError("PPO needs a policy with a value head (value_head=True)")
                vl = value_loss(ev.values, ret[sel, :t], ev.mask)
                loss = loss + vf_coef * vl
                st["value_loss"] = float(vl.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), max_grad_norm)
            optimizer.step()
            st.update(policy_loss=float(pl.detach()), entropy=float(ent.detach()), grad_norm=float(gn))
            for k, v in st.items():
                logs.setdefault(k, []).append(v)
    policy.eval()
    return {k: float(np.mean(v)) for k, v in logs.items()}
