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


def output_cache(out: Any) -> Any:
    """The KV cache in a model output, whatever the attribute is called."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)
