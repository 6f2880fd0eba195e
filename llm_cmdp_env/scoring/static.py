"""The vector env's incremental scoring on a fixed-size KV cache, optionally compiled (``decode="static"`` /
``"compiled"``).

:class:`~llm_cmdp_env.scoring.batched.BatchedScorer` (``decode="eager"``, the default) grows, re-pads and trims
its cache as rows start and end: every step has new shapes, so it cannot be compiled or captured as a CUDA
graph, and on a GPU its per-step Python and kernel launches, not the hardware, bound the speed.
:class:`StaticBatchedScorer` keeps the same interface and numbers on a cache of fixed shape
``[n, heads, capacity, dim]`` (transformers' ``StaticCache``):

- all rows write their next token into the same column ``col`` (one ``cache_position`` for the batch); each
  row's position ids still count only its own tokens, and ``mask[i]`` marks row i's live columns, so a row's
  logits are those of its own sequence, as in the eager scorer;
- a new episode's prompt is prefilled on its own (eagerly, a dynamic cache) and written into the columns just
  before ``col`` of its row; a finished row keeps one live column (no all-masked row, which would give NaNs);
- when ``col`` reaches the capacity, the columns dead in every row are dropped from the left in place (the
  tensors keep their addresses, as a CUDA graph needs). The capacity holds one whole episode
  (``max_prompt_tokens + max_new_tokens``, rounded up to :data:`LENGTH_BUCKET`) plus :data:`LENGTH_BUCKET` of
  slack, so this happens at most once every ``LENGTH_BUCKET`` steps.

Every decode step therefore has the same shapes: ``"compiled"`` runs it through ``torch.compile``
(``mode="reduce-overhead"``, i.e. CUDA graphs, on CUDA); ``"cudagraph"`` (CUDA only) captures the uncompiled
step in a CUDA graph directly (:mod:`llm_cmdp_env.scoring.cuda_graph`: no compile time, the static step's kernels).
Same per-token costs as eager to float tolerance, tested on the CPU (tests/test_static_scoring.py; the graph's
buffer discipline through a re-running stand-in); not measured on a GPU, so not the default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from llm_cmdp_env.models.hf_compat import cache_kwargs, cache_layers, decode_mask
from llm_cmdp_env.scoring.batched import BatchedScorer, prefill
from llm_cmdp_env.scoring.cuda_graph import GraphedStep
from llm_cmdp_env.scoring.decode_modes import check_decode
from llm_cmdp_env.scoring.logprobs import model_device

__all__ = ["LENGTH_BUCKET", "StaticBatchedScorer", "bucket", "cache_arg", "decode_step", "make_scorer"]

LENGTH_BUCKET = 64
"""Static cache lengths are rounded up to a multiple of this (fewer shapes, fewer recompilations)."""


def bucket(length: int) -> int:
    """``length`` rounded up to a multiple of :data:`LENGTH_BUCKET`."""
    return -(-int(length) // LENGTH_BUCKET) * LENGTH_BUCKET


def cache_arg(model: torch.nn.Module) -> str:
    """The name under which ``model``'s forward takes its cache (``cache`` or ``past_key_values``)."""
    return next(iter(cache_kwargs(model, None)))


def decode_step(model: torch.nn.Module, cache_kw: str, input_name: str, mode: str,
                device: torch.device) -> Callable[..., torch.Tensor]:
    """A one-token step on a static cache, ``(inputs, mask, positions, cache_position, cache) -> logits [B, V]``
    (``inputs`` passed as ``input_name``: ``input_ids`` or ``inputs_embeds``), every call of the same shapes.
    ``mode`` (a static one of :data:`~llm_cmdp_env.scoring.decode_modes.DECODE_MODES`): ``"static"`` runs it as is;
    ``"compiled"`` through ``torch.compile`` (``mode="reduce-overhead"``, i.e. CUDA graphs, on CUDA);
    ``"cudagraph"`` replays it from a CUDA graph (:class:`~llm_cmdp_env.scoring.cuda_graph.GraphedStep`). In the last
    two the output buffer is overwritten by the next call (``REUSES_OUTPUT``): use or copy it first. The env's scorer
    and the agent's sampler both step this way."""

    def step(inputs: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache_position: torch.Tensor,
             cache: Any) -> torch.Tensor:
        out = model(**{input_name: inputs}, attention_mask=mask, position_ids=positions,
                    cache_position=cache_position, use_cache=True, **{cache_kw: cache})
        return out.logits[:, -1]

    if check_decode(mode) == "cudagraph":
        return GraphedStep(step, device)
    if mode == "compiled":
        return torch.compile(step, dynamic=False, mode="reduce-overhead" if device.type == "cuda" else None)
    if mode != "static":
        raise ValueError(f"decode_step runs a static-cache mode, not {mode!r}")
    return step


def make_scorer(model: PreTrainedModel, n: int, pad_id: int, decode: str, episode_length: int) -> Any:
    """The vector env's scorer for ``decode``: eager (:class:`BatchedScorer`) or a static mode
    (:class:`StaticBatchedScorer` sized for episodes of up to ``episode_length`` tokens, prompt included)."""
    if check_decode(decode) == "eager":
        return BatchedScorer(model, n, pad_id=pad_id)
    return StaticBatchedScorer(model, n, episode_length, pad_id=pad_id, mode=decode)


class StaticBatchedScorer:
    """:class:`~llm_cmdp_env.scoring.batched.BatchedScorer`'s interface (``reset_rows``, ``step``,
    ``release_rows``, ``logp``, ``lengths``) on a fixed-size KV cache; see the module docstring."""

    def __init__(self, model: PreTrainedModel, n: int, episode_length: int, pad_id: int = 0,
                 mode: str = "static", slack: int = LENGTH_BUCKET) -> None:
        self.model = model
        self.n = n
        self.pad_id = pad_id
        self.mode = mode
        self.device = model_device(model)
        self.capacity = bucket(episode_length + 1) + int(slack)
        self._step = decode_step(model, cache_arg(model), "input_ids", mode, self.device)
        self.cache: Any = None
        self.col = 0
        self.compactions = 0
        self.mask = torch.zeros(n, self.capacity, dtype=torch.long, device=self.device)
        self.lengths = torch.zeros(n, dtype=torch.long, device=self.device)
        self.logp: torch.Tensor | None = None

    @property
    def cache_length(self) -> int:
        """Columns in use (the eager scorer's cache length)."""
        return self.col

    def _layers(self) -> list[Any]:
        return list(self.cache.layers)

    def _new_cache(self, like: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
        from transformers import StaticCache

        cache = StaticCache(config=self.model.config, max_cache_len=self.capacity)
        if len(cache.layers) != len(like) or any(type(layer).__name__ != "StaticLayer" for layer in cache.layers):
            raise NotImplementedError(f"decode='static' needs full-attention layers; {type(self.model).__name__} "
                                      "has other kinds (sliding windows, SSM states): use decode='eager'")
        for layer, (k, v) in zip(cache.layers, like):
            layer.lazy_initialization(k.new_empty((self.n, *k.shape[1:])), v.new_empty((self.n, *v.shape[1:])))
        return cache

    def _shift(self, by: int) -> None:
        """Move every row's columns ``by`` to the right (``by > 0``) or left (``by < 0``), in place."""
        c, col = self.capacity, self.col
        if by > 0:
            src, dst = slice(0, col), slice(by, col + by)
        else:
            src, dst = slice(-by, col), slice(0, col + by)
        for layer in self._layers():
            for t in (layer.keys, layer.values):
                t[:, :, dst] = t[:, :, src].clone()
        self.mask[:, dst] = self.mask[:, src].clone()
        self.col = col + by
        self.mask[:, self.col: c] = 0
        if by > 0:
            self.mask[:, :by] = 0

    @torch.inference_mode()
    def reset_rows(self, rows: Sequence[int], prompts: Sequence[Sequence[int]]) -> None:
        """Start new sequences ``prompts`` in ``rows`` (other rows are untouched)."""
        if len(rows) == 0:
            return
        lp = max(len(p) for p in prompts)
        if lp > self.capacity:
            raise ValueError(f"a prompt of {lp} tokens does not fit the static cache ({self.capacity} columns)")
        mask, new_logp, cache = prefill(self.model, prompts, self.pad_id, self.device)
        new_kv = cache_layers(cache)
        rows_t = torch.as_tensor(list(rows), device=self.device)
        if self.cache is None:
            self.cache = self._new_cache(new_kv)
            self.logp = torch.zeros(self.n, new_logp.shape[-1], device=self.device)
            self.mask.zero_()
            self.col = 0
        if self.col < lp:
            self._shift(lp - self.col)
        a, b = self.col - lp, self.col
        for layer, (k, v) in zip(self._layers(), new_kv):
            layer.keys[rows_t, :, a:b] = k.to(layer.keys.dtype)
            layer.values[rows_t, :, a:b] = v.to(layer.values.dtype)
        self.mask[rows_t] = 0
        self.mask[rows_t, a:b] = mask
        assert self.logp is not None
        self.logp[rows_t] = new_logp
        self.lengths[rows_t] = torch.tensor([len(p) for p in prompts], device=self.device)

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, active: torch.Tensor) -> None:
        """Append ``tokens[i]`` to every row with ``active[i]`` and refresh their next-token log-probs.

        Inactive rows write a masked pad column (their log-probs are left unchanged)."""
        if self.cache is None:
            raise RuntimeError("no sequences: call reset_rows first")
        if not bool(active.any()):  # on the caller's tensor: the env's is on the host, so no device sync
            return
        active = active.to(self.device)
        if self.col >= self.capacity:
            self._compact()
        ids = torch.where(active, tokens.to(self.device), torch.full_like(tokens, self.pad_id, device=self.device))
        self.mask[:, self.col] = active.long()
        for layer in self._layers():  # the static layers write at their cumulative length: our column
            layer.cumulative_length.fill_(self.col)
        cp = torch.tensor([self.col], device=self.device)
        # columns past ``col`` are 0 in every row, so the ready 4D mask needs no causal part (hf_compat.decode_mask)
        logits = self._step(ids[:, None], decode_mask(self.model, self.mask), self.lengths[:, None], cp, self.cache)
        logp = torch.log_softmax(logits.float(), dim=-1)
        assert self.logp is not None
        self.logp = torch.where(active[:, None], logp, self.logp)
        self.lengths = self.lengths + active.long()
        self.col += 1

    def _compact(self) -> None:
        """Drop the leading columns dead in every row (in place)."""
        live = self.mask[:, : self.col].any(0)
        first = int(live.nonzero()[0]) if bool(live.any()) else self.col
        if first == 0:
            raise RuntimeError(f"the static cache is full ({self.capacity} columns of live tokens): an episode is "
                               "longer than the scorer was sized for")
        self._shift(-first)
        self.compactions += 1

    @torch.inference_mode()
    def release_rows(self, rows: Sequence[int]) -> None:
        """Free finished rows: each keeps only its newest column live (every step wrote one for every row)."""
        if len(rows) == 0 or self.cache is None or self.col == 0:
            return
        rows_t = torch.as_tensor(list(rows), device=self.device)
        self.mask[rows_t] = 0
        self.mask[rows_t, self.col - 1] = 1

    def trim(self) -> None:
        """Nothing to do: dead columns are dropped when the cache is full (:meth:`_compact`)."""
