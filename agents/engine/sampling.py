"""Batched KV-cached sampling from an :class:`~llm_cmdp_agents.engine.policy.LLMPolicy`, with the log-probs attached.

One prefill forward over the left-padded prompts, then one cached forward per generated token for the whole
batch. Each sampled token comes with the policy's log-probability of it (what PPO/GRPO need as the "old"
log-prob) and, when asked, the full next-token log-probabilities (what student-dependent divergences need),
so neither the trainer nor the env has to run the student again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from llm_cmdp_agents.engine.static_decode import decoder_for
from llm_cmdp_env.common.validation import check_positive_int, check_real
from llm_cmdp_env.models.hf_compat import cache_kwargs, decode_mask, last_logits_kwargs, output_cache
from llm_cmdp_env.scoring.decode_modes import check_decode
from llm_cmdp_env.scoring.kv_cache import new_cache
from llm_cmdp_env.scoring.logprobs import left_pad

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.policy import LLMPolicy

__all__ = ["Samples", "inverse_cdf", "sample", "top_p_filter"]

#: ``condition_step(tokens [B], logprobs [B, V], active [B]) -> c [B]``: called after each sampled token with
#: the tokens and the policy's full log-probs; returns the value the next input is conditioned on
#: (:class:`~llm_cmdp_agents.engine.conditioning.ConditionTracker.step`).
ConditionStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Samples:
    """Completions sampled for a batch of prompts.

    Attributes
    ----------
    completions : list of list of int
        Token ids per row, ending with an EOS id or exactly ``max_new_tokens`` long (what the fast path needs).
    token_logprobs : list of Tensor [T_i]
        The policy's log-prob of each sampled token (float32, CPU).
    full_logprobs : list of Tensor [T_i, V] or None
        The policy's full next-token log-probs (only when asked for).
    conditions : list of Tensor [T_i] or None
        The value each token was sampled under (a conditioned policy), when one was given.
    """

    completions: list[list[int]]
    token_logprobs: list[torch.Tensor]
    full_logprobs: list[torch.Tensor] | None = None
    conditions: list[torch.Tensor] | None = field(default=None)


def top_p_filter(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (nucleus); others get ``-inf``.

    The most likely token is always kept. ``top_p >= 1`` returns the input unchanged.
    """
    if top_p >= 1.0:
        return logprobs
    sorted_lp, order = torch.sort(logprobs, dim=-1, descending=True)
    cum = sorted_lp.exp().cumsum(-1)
    drop_sorted = (cum - sorted_lp.exp()) >= top_p  # mass before this token already reaches top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logprobs.masked_fill(drop, float("-inf"))


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row of ``probs`` ``[B, V]`` (unnormalised is fine) for uniforms ``u`` ``[B]`` in [0, 1): the
    first token whose cumulative probability exceeds ``u`` times the row's total. Tokens of probability 0 are
    never chosen. Equivalent to ``torch.multinomial(probs, 1)`` in distribution."""
    cdf = probs.double().cumsum(-1)
    target = (u.to(cdf.dtype) * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)


@torch.no_grad()
def sample(
    policy: LLMPolicy,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    eos_ids: Sequence[int],
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    full_logprobs: bool = False,
    condition0: torch.Tensor | None = None,
    condition_step: ConditionStep | None = None,
    rows: tuple[int, int] | None = None,
    stop_together: Callable[[bool], bool] | None = None,
    decode: str = "eager",
) -> Samples:
    """Sample one completion per prompt.

    Parameters
    ----------
    policy : LLMPolicy
        The policy; its distribution is ``softmax(logits / temperature)``.
    prompts : sequence of sequence of int
        Prompt token ids (any lengths; left-padded internally with correct position ids).
    max_new_tokens : int
        Longest completion; a row that reaches it without EOS stops there (a truncated episode).
    eos_ids : sequence of int
        Tokens that end a completion (the env's ``eos_ids``).
    pad_id : int
        Padding token id.
    temperature, top_p : float
        Sampling temperature (part of the policy) and nucleus truncation (a sampling-only filter: the
        attached log-probs are those of the untruncated policy, so ``top_p < 1`` samples slightly
        off-policy).
    greedy : bool
        Take the arg-max token (evaluation).
    generator : torch.Generator, optional
        Random source (on the policy's device) so runs are reproducible and resumable. Each call draws one
        uniform per row of the global batch and per token (``total x max_new_tokens``) and samples by inverse
        CDF, so the generator advances the same way whatever the completions, and a row's tokens depend only on
        its own uniforms (not on which other rows share its batch, or its rank).
    full_logprobs : bool
        Also return the full next-token log-probs (for ``reverse_kl``/``forward_kl`` costs).
    condition0, condition_step
        For a conditioned policy: the initial observed value ``[B]`` and the function that advances it after each
        token (:mod:`llm_cmdp_agents.engine.conditioning`). Both or neither.
    rows : (offset, total), optional
        These prompts are rows ``offset .. offset + len(prompts) - 1`` of a global batch of ``total`` (a rank's
        share in data-parallel training); default: the whole batch.
    stop_together : callable, optional
        ``stop_together(all_my_rows_done) -> bool``: when given, the loop stops only when it returns True (ranks
        whose forwards must stay in lockstep, e.g. FSDP, pass ``World.all_true``).
    decode : str
        ``"eager"`` (growing cache), ``"static"`` (fixed-size cache), ``"compiled"`` (fixed-size cache and a
        compiled step: CUDA graphs on a GPU) or ``"cudagraph"`` (fixed-size cache, the step replayed from a CUDA
        graph without compiling; CUDA only); see :mod:`llm_cmdp_agents.engine.static_decode`. Same numbers in every
        mode.
    """
    check_real(temperature, "temperature (use greedy=True for arg-max)", positive=True)
    check_real(top_p, "top_p", positive=True, high=1.0)
    check_positive_int(max_new_tokens, "max_new_tokens")
    if (condition0 is None) != (condition_step is None):
        raise ValueError("give both condition0 and condition_step (a conditioned policy) or neither")
    if condition0 is not None and not policy.conditioned:
        raise ValueError("condition0 given but the policy has no conditioning (conditioning=False)")
    device = policy.device
    eos = torch.as_tensor(sorted(int(e) for e in eos_ids), device=device)
    ids, mask = left_pad(prompts, pad_id, device)
    n = ids.shape[0]
    offset, total = rows if rows is not None else (0, n)
    if not (0 <= offset and offset + n <= total):
        raise ValueError(f"rows={rows}: {n} prompts do not fit at offset {offset} of a batch of {total}")
    uniforms = None if greedy else torch.rand(total, max_new_tokens, generator=generator, device=device,
                                              dtype=torch.float64)[offset: offset + n]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    z = condition0.to(device).float() if condition0 is not None else None
    lm = policy.lm
    mode = check_decode(decode)
    static = decoder_for(policy, mode) if mode != "eager" else None
    cache = new_cache(policy.hf_model) if static is None else None
    with policy.autocast():
        embeds = policy.input_embeddings(ids, None if z is None else z[:, None].expand_as(ids))
        if static is not None:
            logits = static.start(embeds, mask, pos, max_new_tokens)
        else:
            out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=True,
                     **cache_kwargs(policy.hf_model, cache), **last_logits_kwargs(policy.hf_model))
            cache, logits = output_cache(out), out.logits[:, -1]
    lengths = mask.sum(-1)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    tokens_out: list[torch.Tensor] = []
    tok_lp_out: list[torch.Tensor] = []
    full_out: list[torch.Tensor] = []
    z_out: list[torch.Tensor] = []
    steps = 0
    for t in range(max_new_tokens):
        logp = torch.log_softmax(logits.float() / temperature, dim=-1)
        if greedy:
            tok = logp.argmax(-1)
        else:
            assert uniforms is not None
            tok = inverse_cdf(top_p_filter(logp, top_p).exp(), uniforms[:, t])
        active = ~done
        tokens_out.append(tok)
        tok_lp_out.append(logp.gather(-1, tok[:, None]).squeeze(-1))
        if full_logprobs:
            full_out.append(logp.cpu())
        if z is not None:
            z_out.append(z.clone())
        done = done | torch.isin(tok, eos)
        steps = t + 1
        finished = bool(done.all())
        if stop_together is not None:
            finished = stop_together(finished)
        if finished or t == max_new_tokens - 1:
            break
        if z is not None:
            assert condition_step is not None
            z = condition_step(tok, logp, active).to(device).float()
        with policy.autocast():
            embeds = policy.input_embeddings(tok[:, None], None if z is None else z[:, None])
            if static is not None:
                logits = static.step(embeds, lengths[:, None])
            else:
                mask = torch.cat([mask, torch.ones(n, 1, dtype=mask.dtype, device=device)], dim=1)
                out = lm(inputs_embeds=embeds, attention_mask=decode_mask(policy.hf_model, mask),
                         position_ids=lengths[:, None], use_cache=True, **cache_kwargs(policy.hf_model, cache))
                cache, logits = output_cache(out), out.logits[:, -1]
        lengths = lengths + 1
    toks = torch.stack(tokens_out, 1).cpu()
    lps = torch.stack(tok_lp_out, 1).cpu()
    is_eos = torch.isin(toks, eos.cpu())
    completions, token_lps, fulls, zs = [], [], [], []
    full_t = torch.stack(full_out, 1) if full_logprobs else None
    z_t = torch.stack(z_out, 1).cpu() if z_out else None
    for i in range(n):
        hits = is_eos[i].nonzero()
        length = int(hits[0]) + 1 if len(hits) else steps
        completions.append(toks[i, :length].tolist())
        token_lps.append(lps[i, :length].clone())
        if full_t is not None:
            fulls.append(full_t[i, :length].clone())
        if z_t is not None:
            zs.append(z_t[i, :length].clone())
    return Samples(completions, token_lps, fulls if full_logprobs else None, zs if z_t is not None else None)
