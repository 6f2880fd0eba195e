"""KV-cached next-token log-probs for N sequences at once (the native vector env's engine).

All N rows share one left-padded cache of length ``L``: row i's tokens sit in the rightmost columns it has
filled, ``mask[i]`` marks them, and each row's position ids count only its own tokens, so padding never
changes a row's logits. One :meth:`BatchedScorer.step` feeds one token per active row in a single forward.
Rows are re-filled with new prompts by :meth:`BatchedScorer.reset_rows` (one extra forward over the new
prompts only, then their cache is spliced in). A finished row keeps just one column live (a row with no
live key would produce NaNs); columns dead in every row are trimmed from the left, so memory follows the
live episodes instead of growing forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from llm_cmdp_env.models.hf_compat import (
    cache_kwargs,
    cache_layers,
    decode_mask,
    last_logits_kwargs,
    output_cache,
    set_cache_layers,
)
from llm_cmdp_env.scoring.kv_cache import new_cache
from llm_cmdp_env.scoring.logprobs import left_pad, model_device


def prefill(model: PreTrainedModel, prompts: Sequence[Sequence[int]], pad_id: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """One forward over the left-padded ``prompts`` on a fresh cache: their mask ``[r, L]``, their next-token
    log-probs ``[r, V]`` (float32) and the filled cache (what a scorer splices into its rows)."""
    ids, mask = left_pad(prompts, pad_id, device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                **cache_kwargs(model, new_cache(model)), **last_logits_kwargs(model))
    return mask, torch.log_softmax(out.logits[:, -1].float(), dim=-1), output_cache(out)


class BatchedScorer:
    """Incremental scoring of ``n`` independent sequences with one shared, left-padded KV cache."""

    def __init__(self, model: PreTrainedModel, n: int, pad_id: int = 0, trim_min: int = 32) -> None:
        self.model = model
        self.n = n
        self.pad_id = pad_id
        self.trim_min = trim_min
        self.device = model_device(model)
        self.cache = None
        self.mask = torch.zeros(n, 0, dtype=torch.long, device=self.device)
        self.lengths = torch.zeros(n, dtype=torch.long, device=self.device)
        self.logp: torch.Tensor | None = None  # [n, V] float32 next-token log-probs

    @property
    def cache_length(self) -> int:
        return int(self.mask.shape[1])

    @torch.inference_mode()
    def reset_rows(self, rows: Sequence[int], prompts: Sequence[Sequence[int]]) -> None:
        """Start new sequences ``prompts`` in ``rows`` (other rows are untouched)."""
        if len(rows) == 0:
            return
        r = len(rows)
        mask, new_logp, cache = prefill(self.model, prompts, self.pad_id, self.device)
        lp = mask.shape[1]
        new_kv = cache_layers(cache)
        rows_t = torch.as_tensor(list(rows), device=self.device)

        if self.cache is None or r == self.n and sorted(rows) == list(range(self.n)):
            order = torch.argsort(rows_t)
            self.cache = cache
            set_cache_layers(self.cache, [(k[order], v[order]) for k, v in new_kv])
            self.mask = mask[order].clone()
            self.logp = new_logp[order].clone()
        else:
            lc = self.cache_length
            length = max(lc, lp)
            kvs = []
            for (k, v), (nk, nv) in zip(cache_layers(self.cache), new_kv):
                if length > lc:  # grow every row on the left
                    k = torch.nn.functional.pad(k, (0, 0, length - lc, 0))
                    v = torch.nn.functional.pad(v, (0, 0, length - lc, 0))
                k[rows_t] = 0
                v[rows_t] = 0
                k[rows_t, :, length - lp :] = nk
                v[rows_t, :, length - lp :] = nv
                kvs.append((k, v))
            set_cache_layers(self.cache, kvs)
            if length > lc:
                self.mask = torch.nn.functional.pad(self.mask, (length - lc, 0))
            self.mask[rows_t] = 0
            self.mask[rows_t, length - lp :] = mask
            assert self.logp is not None
            self.logp[rows_t] = new_logp
        self.lengths[rows_t] = torch.tensor([len(p) for p in prompts], device=self.device)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, active: torch.Tensor) -> None:
        """Append ``tokens[i]`` to every row with ``active[i]`` and refresh their next-token log-probs.

        Inactive rows get a masked pad column (their log-probs are left unchanged).
        """
        if self.cache is None:
            raise RuntimeError("no sequences: call reset_rows first")
        if not bool(active.any()):  # on the caller's tensor: the env's is on the host, so no device sync
            return
        active = active.to(self.device)
        ids = torch.where(active, tokens.to(self.device), torch.full_like(tokens, self.pad_id, device=self.device))
        col = active.long()[:, None]
        self.mask = torch.cat([self.mask, col], dim=1)
        pos = self.lengths[:, None]
        out = self.model(input_ids=ids[:, None], attention_mask=decode_mask(self.model, self.mask), position_ids=pos,
                         use_cache=True, **cache_kwargs(self.model, self.cache), **last_logits_kwargs(self.model))
        self.cache = output_cache(out)
        logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        assert self.logp is not None
        self.logp = torch.where(active[:, None], logp, self.logp)
        self.lengths = self.lengths + active.long()

    @torch.inference_mode()
    def release_rows(self, rows: Sequence[int]) -> None:
        """Free finished rows: keep one live column each (numerical safety), then trim dead columns."""
        if len(rows) == 0 or self.cache is None:
            return
        rows_t = torch.as_tensor(list(rows), device=self.device)
        keep = self.mask[rows_t].flip(-1).argmax(-1)  # last live column, counted from the right
        last = self.cache_length - 1 - keep
        self.mask[rows_t] = 0
        self.mask[rows_t, last] = 1
        self.trim()

    @torch.inference_mode()
    def trim(self) -> None:
        """Drop leading columns that are dead in every row (amortised: only when enough of them)."""
        live = self.mask.any(0)
        if not bool(live.any()):
            return
        first = int(live.nonzero()[0])
        if first >= self.trim_min or (first > 0 and first * 2 >= self.cache_length):
            set_cache_layers(self.cache, [(k[:, :, first:].contiguous(), v[:, :, first:].contiguous())
                                          for k, v in cache_layers(self.cache)])
            self.mask = self.mask[:, first:].contiguous()
