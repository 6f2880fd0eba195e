"""Small shims over transformers API renames (4.x ``past_key_values`` vs 5.x ``cache``)."""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch


@lru_cache(maxsize=64)
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def cache_kwargs(model: torch.nn.Module, cache: Any) -> dict[str, Any]:
    """``{name: cache}`` under the name this model's ``forward`` takes (``cache`` or ``past_key_values``)."""
    params = _forward_params(type(model))
    return {"cache" if "cache" in params else "past_key_values": cache}


def last_logits_kwargs(model: torch.nn.Module) -> dict[str, Any]:
    """Ask for the last position's logits only, when the model supports it (saves a [T, V] tensor)."""
    params = _forward_params(type(model))
    if "logits_to_keep" in params:
        return {"logits_to_keep": 1}
    if "num_logits_to_keep" in params:
        return {"num_logits_to_keep": 1}
    return {}


def decode_mask(model: torch.nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """The attention mask for a one-token decode step over a left-padded cache (``mask`` is ``[B, L]``, 1 = live).

    For models on transformers' SDPA attention this is the ready 4D boolean mask ``[B, 1, 1, L]`` that
    transformers would build itself (a one-token query attends to every live column, no causal part): passing
    it skips transformers' per-call mask construction, ~4% of a small model's decode step (profiled on the
    shipped teacher). Other attention kernels (eager wants an additive float mask, flash wants 2D) get
    ``mask`` unchanged.
    """
    if getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa":
        return mask.bool()[:, None, None, :]
    return mask


def output_cache(out: Any) -> Any:
    """The KV cache in a model output, whatever the attribute is called."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer ``(keys, values)`` tensors ``[B, H, L, D]`` of a full-attention dynamic cache.

    Raises ``NotImplementedError`` for caches with other layer kinds (sliding windows, SSM states),
    which the batched scorer cannot re-pad.
    """
    if hasattr(cache, "layers"):
        out = []
        for layer in cache.layers:
            if type(layer).__name__ not in ("DynamicLayer", "GrowableLayer"):
                raise NotImplementedError(
                    f"batched scoring supports full-attention KV caches only, found {type(layer).__name__}; "
                    "use gymnasium.vector.SyncVectorEnv over single envs for this model"
                )
            out.append((layer.keys, layer.values))
        return out
    if hasattr(cache, "key_cache"):  # transformers 4.x
        return list(zip(cache.key_cache, cache.value_cache))
    raise NotImplementedError(f"unsupported cache type {type(cache).__name__}")


def set_cache_layers(cache: Any, kvs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Replace a dynamic cache's tensors in place (inverse of :func:`cache_layers`)."""
    if hasattr(cache, "layers"):
        for layer, (k, v) in zip(cache.layers, kvs, strict=True):
            if hasattr(layer, "set_kv"):
                layer.set_kv(k, v)
            else:
                layer.keys, layer.values = k, v
        return
    cache.key_cache[:] = [k for k, _ in kvs]
    cache.value_cache[:] = [v for _, v in kvs]
