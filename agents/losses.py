"""The clipped surrogate, the value loss and the minibatch optimisation loop shared by PPO and GRPO."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from llm_cmdp_agents.distill_losses import DistillTerm, generalized_jsd, teacher_logprobs
from llm_cmdp_agents.distributed import World
from llm_cmdp_agents.rollout import Rollout

if TYPE_CHECKING:
    from llm_cmdp_agents.policy import ActionEval, LLMPolicy

__all__ = ["clipped_policy_loss", "masked_mean", "optimise", "pad", "value_loss", "whiten"]


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
    forward: Callable[..., ActionEval] | None = None,
    world: World | None = None,
    distill: DistillTerm | None = None,
) -> dict[str, float]:
    """Epochs of shuffled minibatch steps (minibatches of whole episodes) on the clipped surrogate (+ value
    loss when ``returns`` is given, - entropy bonus). ``advantages``/``returns`` are ``[N, T_max]`` for the
    episodes this rank holds.

    Minibatches are shuffles of the *global* episode indices (``rollout.offset`` and ``rollout.global_lengths``
    place this rank's episodes in the global batch): each rank computes the loss terms of the episodes of a
    minibatch it holds, normalised by the minibatch's global token (or sequence) count, so the gradients that
    ``forward`` (DDP) averages over ranks are those of the whole minibatch. ``forward`` defaults to
    ``policy.evaluate_actions``. ``distill`` adds a distillation term (GKD's JSD, MiniLLM's reverse KL) against the
    teacher's distribution at the same positions."""
    world = world or World()
    forward = forward or policy.evaluate_actions
    n = len(rollout)
    lengths = np.asarray(rollout.global_lengths if rollout.global_lengths is not None
                         else [len(c) for c in rollout.completions])
    total, offset = len(lengths), rollout.offset
    old = pad(rollout.old_logprobs, advantages.shape[1]).to(policy.device)
    adv = advantages.to(policy.device)
    ret = returns.to(policy.device) if returns is not None else None
    logs: dict[str, list[float]] = {}
    policy.train()
    for _ in range(epochs):
        order = rng.permutation(total)
        for start in range(0, total, minibatch_size):
            members = order[start: start + minibatch_size]
            mine = [int(i) - offset for i in members if offset <= i < offset + n]
            tokens_mb = float(lengths[members].sum())  # the minibatch's tokens, on every rank together
            denominator = float(len(members)) if per_sequence else tokens_mb
            weight = 1.0
            if not mine:  # every rank runs each step (DDP's collectives); this one holds none of its episodes
                mine, weight = [0], 0.0
            idx = np.asarray(mine)
            prompts, comps = [rollout.prompts[i] for i in idx], [rollout.completions[i] for i in idx]
            budgets = None if rollout.budgets is None else [rollout.budgets[i] for i in idx]
            ev = (forward(prompts, comps, temperature, budgets, full=True) if distill is not None
                  else forward(prompts, comps, temperature, budgets))
            t = ev.logprobs.shape[1]
            sel = torch.as_tensor(idx, device=policy.device)
            pl, st = clipped_policy_loss(ev.logprobs, old[sel, :t], adv[sel, :t], ev.mask, clip, per_sequence,
                                         denominator)
            ent = masked_mean(ev.entropy, ev.mask, denominator=tokens_mb)
            loss = pl - ent_coef * ent
            dl = torch.zeros(())
            if distill is not None:
                assert ev.full_logprobs is not None
                t_rows = teacher_logprobs(distill.teacher, prompts, comps, distill.pad_id, temperature)
                jsd = generalized_jsd(ev.full_logprobs, t_rows[:, :t].to(ev.full_logprobs.device), distill.beta)
                dl = masked_mean(jsd, ev.mask, denominator=tokens_mb)
                loss = loss + distill.coef * dl
            vl = torch.zeros(())
            if ret is not None:
                if ev.values is None:
                    raise ValueError("PPO needs a policy with a value head (value_head=True)")
                vl = value_loss(ev.values, ret[sel, :t], ev.mask, denominator=tokens_mb)
                loss = loss + vf_coef * vl
            optimizer.zero_grad(set_to_none=True)
            (loss * (weight * world.size)).backward()  # DDP averages over ranks: the sum is what we want
            gn = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), max_grad_norm)
            optimizer.step()
            tokens = float(ev.mask.sum()) * weight
            pl_sum, ent_sum, vl_sum, dl_sum, kl, cf, tok = world.sum([
                float(pl.detach()) * weight, float(ent.detach()) * weight, float(vl.detach()) * weight,
                float(dl.detach()) * weight, st["approx_kl"] * tokens, st["clip_frac"] * tokens, tokens])
            step = {"policy_loss": pl_sum, "entropy": ent_sum, "approx_kl": kl / max(tok, 1.0),
                    "clip_frac": cf / max(tok, 1.0), "grad_norm": _scalar(gn)}
            if ret is not None:
                step["value_loss"] = vl_sum
            if distill is not None:
                step["distill_loss"] = dl_sum
            for k, v in step.items():
                logs.setdefault(k, []).append(float(v))
    policy.eval()
    return {k: float(np.mean(v)) for k, v in logs.items()}


def _scalar(x: torch.Tensor) -> float:
    """A float of a (possibly distributed: FSDP's gradient norm is a DTensor) scalar tensor."""
    return float(x.full_tensor() if hasattr(x, "full_tensor") else x)
