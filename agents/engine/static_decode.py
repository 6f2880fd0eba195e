"""The sampler's decode step on a fixed-size KV cache, optionally compiled.

Eager decoding calls the model once per token through Python and a growing cache: on a GPU that is bound by
kernel launches, not by the hardware (~14 ms per step of a 0.5B model at every batch size, docs/performance.md).
Here the cache is transformers' ``StaticCache`` sized for the whole completion (its length rounded up to a
multiple of ``LENGTH_BUCKET``, so a training run sees few distinct shapes), the attention mask is a preallocated
``[B, L]`` buffer, and every decode step has the same shapes: ``torch.compile`` can trace it once and, on CUDA
with ``mode="reduce-overhead"``, replay it as a CUDA graph.

Modes (``sample(decode=...)``, ``PolicyConfig.decode``, ``llm-cmdp train --decode``): ``"eager"`` (the
default: the growing cache of :mod:`llm_cmdp_env.scoring.kv_cache`), ``"static"`` (the static cache, not compiled: what
the compiled step computes, testable anywhere), ``"compiled"`` (static + ``torch.compile``), ``"cudagraph"``
(static, replayed from a CUDA graph without compiling: :mod:`llm_cmdp_env.scoring.cuda_graph`; CUDA only). All modes
give the same tokens and log-probs to float tolerance on a CPU (``tests/test_static_decode.py``, and
``tests/test_cuda_graph.py`` for the graph mode through a re-running stand-in for the graph). Neither graph mode
is the default on CUDA: neither is measured on a GPU; on a CPU compiling costs
~40 s per shape and measured no faster than eager (docs/performance.md).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import torch

from llm_cmdp_env.models.hf_compat import cache_kwargs, last_logits_kwargs
from llm_cmdp_env.scoring.decode_modes import REUSES_OUTPUT
from llm_cmdp_env.scoring.static import LENGTH_BUCKET, bucket, cache_arg, decode_step

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.policy import LLMPolicy

__all__ = ["LENGTH_BUCKET", "StaticDecoder", "decoder_for"]

_DECODERS: weakref.WeakKeyDictionary[Any, StaticDecoder] = weakref.WeakKeyDictionary()


def decoder_for(policy: LLMPolicy, mode: str) -> StaticDecoder:
    """The policy's decoder for a static ``mode`` (one per policy and mode, kept while the policy lives: its
    caches and compiled step or graphs are reused across calls)."""
    key = policy
    dec = _DECODERS.get(key)
    if dec is None or dec.mode != mode:
        dec = StaticDecoder(policy, mode)
        _DECODERS[key] = dec
    return dec


class StaticDecoder:
    """Prefill and one-token steps of ``policy`` on a static KV cache (one cache per batch size and length
    bucket, reset between uses)."""

    def __init__(self, policy: LLMPolicy, mode: str) -> None:
        self.policy = policy
        self.mode = mode
        self._caches: dict[tuple[int, int], Any] = {}
        self._step = decode_step(policy.lm, cache_arg(policy.hf_model), "inputs_embeds", mode, policy.device)
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.t = 0

    def start(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
              max_new_tokens: int) -> torch.Tensor:
        """Prefill the left-padded prompts (``mask`` ``[B, L0]``); returns the last position's logits ``[B, V]``."""
        from transformers import StaticCache

        n, l0 = mask.shape
        length = bucket(l0 + max_new_tokens)
        cache = self._caches.get((n, length))
        if cache is None:
            cache = self._caches[(n, length)] = StaticCache(config=self.policy.hf_model.config, max_cache_len=length)
        else:
            cache.reset()
        self.cache = cache
        self.mask = torch.zeros(n, length, dtype=mask.dtype, device=mask.device)
        self.mask[:, :l0] = mask
        out = self.policy.lm(inputs_embeds=embeds, attention_mask=self.mask, position_ids=positions,
                             cache_position=torch.arange(l0, device=mask.device), use_cache=True,
                             **cache_kwargs(self.policy.hf_model, cache), **last_logits_kwargs(self.policy.hf_model))
        self.t = l0
        return out.logits[:, -1]

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One token for every row (``embeds`` ``[B, 1, H]``, ``positions`` ``[B, 1]``); returns logits ``[B, V]``
        (a copy where the step reuses its output buffer: a CUDA graph's is overwritten by its next replay)."""
        assert self.mask is not None, "start() first"
        self.mask[:, self.t] = 1
        cp = torch.tensor([self.t], device=self.mask.device)
        logits = self._step(embeds, self.mask, positions, cp, self.cache)
        self.t += 1
        return logits.clone() if self.mode in REUSES_OUTPUT else logits
