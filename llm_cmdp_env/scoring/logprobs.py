"""Teacher (and student) scoring: next-token log-probabilities, incrementally with a KV cache or for
whole sequences in one forward. Both give the same numbers (to float tolerance); the env uses the
incremental scorer while stepping and the whole-sequence one on the fast path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from llm_cmdp_env.models.hf_compat import cache_kwargs, last_logits_kwargs, output_cache
from llm_cmdp_env.scoring.kv_cache import new_cache


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of a model's first parameter."""
    return next(model.parameters()).device


class IncrementalScorer:
    """Next-token log-probs of one growing sequence, re-using the model's KV cache.

    ``reset(prompt)`` encodes the prompt once; ``push(token)`` appends a token lazily (the forward for it
    runs only when :meth:`logprobs` is next asked, so the final token of an episode costs nothing).
    Each new token is one cached forward of length 1: the prefix is never re-encoded.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.device = model_device(model)
        self._cache = None
        self._logp: torch.Tensor | None = None
        self._pending: list[int] = []
        self._length = 0

    @torch.inference_mode()
    def _forward(self, ids: list[int]) -> None:
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        position_ids = torch.arange(self._length, self._length + len(ids), device=self.device)[None]
        out = self.model(
            input_ids=input_ids,
            position_ids=position_ids,
            use_cache=True,
            **cache_kwargs(self.model, self._cache if self._cache is not None else new_cache(self.model)),
            **last_logits_kwargs(self.model),
        )
        self._cache = output_cache(out)
        self._logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        self._length += len(ids)

    def reset(self, prompt_ids: Sequence[int]) -> None:
        """Start a new sequence from ``prompt_ids`` (at least one token). Lazy: the prompt is encoded
        when :meth:`logprobs` is first asked, so a replayed (preloaded) episode never encodes it."""
        if len(prompt_ids) == 0:
            raise ValueError("prompt must contain at least one token")
        self.release()
        self._pending = [int(t) for t in prompt_ids]

    def push(self, token: int) -> None:
        """Append one token to the sequence."""
        self._pending.append(int(token))
        self._logp = None

    def logprobs(self) -> torch.Tensor:
        """Log-probabilities ``[V]`` (float32) of the next token given the whole sequence so far."""
        if self._logp is None:
            if not self._pending:
                raise RuntimeError("scorer has no sequence: call reset(prompt_ids) first")
            pending, self._pending = self._pending, []
            self._forward(pending)
        assert self._logp is not None
        return self._logp

    def release(self) -> None:
        """Drop the KV cache (frees memory when an episode ends)."""
        self._cache = None
        self._logp = None
        self._pending = []
        self._length = 0


def _logits_head(model: PreTrainedModel):
    """(base model, head) such that head(base(...).last_hidden_state) are the LM logits."""
    base, head = getattr(model, "base_model", None), model.get_output_embeddings()
    if base is None or base is model or head is None:
        return None
    softcap = getattr(model.config, "final_logit_softcapping", None)

    def apply(hidden: torch.Tensor) -> torch.Tensor:
        logits = head(hidden)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return base, apply


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` ``[N, max_len]`` (int64): every row right-aligned, ``pad_id`` and mask 0 on its left.

    The layout of every batched KV-cached forward here (the vector env's scorer, the agent's sampler and
    training forward): each row's last token sits in the last column. Raises on an empty row.
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        if len(r) == 0:
            raise ValueError(f"sequence {i} is empty: every prompt must contain at least one token")
        ids[i, width - len(r):] = torch.as_tensor(list(r), dtype=torch.long, device=device)
        mask[i, width - len(r):] = 1
    return ids, mask


class CompletionLogits:
    """The teacher's (or student's) logits before every completion token of a batch, from ONE forward.

    The ``prompt + completion`` sequences go through the model RIGHT-padded and without an attention mask: under
    causal attention a real token never sees the padding after it, so every real position is exact, and the
    forward takes the same fused causal kernel as an unpadded batch (a padding mask would force a slower masked
    path). Only the hidden states of the positions that predict a completion token are kept, packed
    ``[tokens, H]``; the LM head runs on a range of them on demand (:meth:`logits`), so a ``[B, L, V]`` logits
    tensor is never built (it would not fit for a 150k vocabulary). Packed token ``k`` of completion ``i`` is at
    ``offsets[i] + k``.
    """

    @torch.inference_mode()
    def __init__(self, model: PreTrainedModel, prompts: Sequence[Sequence[int]],
                 completions: Sequence[Sequence[int]], pad_id: int = 0) -> None:
        self.device = device = model_device(model)
        lengths = np.array([len(c) for c in completions], dtype=np.int64)
        starts = np.array([len(p) - 1 for p in prompts], dtype=np.int64)  # position predicting completion token 0
        seqs = [list(p) + list(c) for p, c in zip(prompts, completions, strict=True)]
        width = max(len(x) for x in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device=device)
        for i, x in enumerate(seqs):
            ids[i, : len(x)] = torch.tensor(x, device=device)
            ids[i, len(x):] = x[-1]  # any token works (never attended); not the pad id, so HF does not warn
        pos = torch.arange(width, device=device).expand(len(seqs), width)
        rows = torch.as_tensor(np.repeat(np.arange(len(seqs)), lengths), device=device)
        cols = torch.as_tensor(np.repeat(starts, lengths) + _ranges(lengths), device=device)
        split = _logits_head(model)
        if split is not None:
            base, self._head = split
            self._packed = base(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state[rows, cols]
        else:  # pragma: no cover - models without a separable head: whole logits, then the kept positions
            self._head = None
            self._packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[rows, cols]
        self.lengths = lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.vocab = int(model.get_output_embeddings().weight.shape[0]) if split is not None else self._packed.shape[-1]

    @torch.inference_mode()
    def logits(self, lo: int, hi: int) -> torch.Tensor:
        """Logits ``[hi - lo, V]`` (model dtype) of packed tokens ``lo .. hi - 1``."""
        h = self._packed[lo:hi]
        return self._head(h) if self._head is not None else h

    def chunks(self, max_elements: int) -> Iterator[tuple[list[int], int, int]]:
        """``(completion indices, lo, hi)`` for blocks of whole completions whose ``tokens x V`` stays under
        ``max_elements`` (one completion at least), in order."""
        rows: list[int] = []
        lo = 0
        for i, n in enumerate(self.lengths.tolist()):
            if rows and (self.offsets[i] + n - lo) * self.vocab > max_elements:
                yield rows, lo, int(self.offsets[i])
                rows, lo = [], int(self.offsets[i])
            rows.append(i)
        if rows:
            yield rows, lo, int(self.offsets[-1])


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``[0..l0-1, 0..l1-1, ...]`` without a Python loop."""
    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


@torch.inference_mode()
def batch_completion_logprobs(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int = 0,
):
    """Yield, per row, the log-probs ``[T_i, V]`` (float32) before each completion token (one forward for the
    batch, see :class:`CompletionLogits`)."""
    scored = CompletionLogits(model, prompts, completions, pad_id)
    for i in range(len(completions)):
        lo, hi = int(scored.offsets[i]), int(scored.offsets[i + 1])
        yield torch.log_softmax(scored.logits(lo, hi).float(), dim=-1)


def sequence_logprobs(
    model: PreTrainedModel, prompt_ids: Sequence[int], completion_ids: Sequence[int]
) -> torch.Tensor:
    """Log-probs ``[T, V]`` (float32) of the next token before each of the ``T`` completion tokens, from
    one forward over prompt + completion (no cache)."""
    return next(batch_completion_logprobs(model, [prompt_ids], [completion_ids]))
