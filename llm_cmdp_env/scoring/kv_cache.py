"""A KV cache that grows by amortised doubling instead of concatenating on every token.

transformers' ``DynamicLayer.update`` runs ``torch.cat([keys, new])`` per token: a full copy of the
layer's cache each step, which made per-token cost grow with the episode length far faster than the
attention itself (measured: at 1024 cached tokens the copy cost ~2-4x the attention kernel). Here keys and
values live in a buffer with spare capacity; ``keys``/``values`` are views of its filled part, so
appending a token writes one slice. Used by the env's scorers when the installed transformers has the
per-layer cache API (5.x); otherwise models keep their own cache (same numbers, slower).
"""

from __future__ import annotations

from typing import Any

import torch

try:  # transformers >= 4.56 layer-based caches
    from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
except ImportError:  # pragma: no cover - older transformers
    Cache = DynamicCache = DynamicLayer = None  # type: ignore[assignment,misc]


def _capacity(n: int) -> int:
    return max(64, 2 * n)


if DynamicLayer is not None:

    class GrowableLayer(DynamicLayer):  # type: ignore[misc,valid-type]
        """A full-attention cache layer with amortised O(1) appends (see module docstring)."""

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            super().lazy_initialization(key_states, value_states)
            self._kbuf: torch.Tensor | None = None
            self._vbuf: torch.Tensor | None = None

        def _in_sync(self) -> bool:
            kb = getattr(self, "_kbuf", None)
            return (
                kb is not None
                and self.keys is not None
                and self.keys.numel() > 0
                and self.keys.data_ptr() == kb.data_ptr()
                and self.keys.shape[:2] == kb.shape[:2]
            )

        def set_kv(self, keys: torch.Tensor, values: torch.Tensor, spare: int | None = None) -> None:
            """Replace the contents (e.g. after re-padding rows) with room for ``spare`` more tokens."""
            n = keys.shape[-2]
            cap = n + (spare if spare is not None else max(64, n))
            shape = (*keys.shape[:2], cap, keys.shape[-1])
            self._kbuf = keys.new_empty(shape)
            self._vbuf = values.new_empty((*values.shape[:2], cap, values.shape[-1]))
            self._kbuf[:, :, :n] = keys
            self._vbuf[:, :, :n] = values
            self.keys, self.values = self._kbuf[:, :, :n], self._vbuf[:, :, :n]
            self.is_initialized = True
            self.device = keys.device

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if not self._in_sync():  # first update, or someone replaced keys/values directly
                old_k, old_v = self.keys, self.values
                if old_k is None or old_k.numel() == 0:
                    self.set_kv(key_states, value_states, spare=_capacity(key_states.shape[-2]))
                    return self.keys, self.values
                self.set_kv(old_k, old_v)
            assert self._kbuf is not None and self._vbuf is not None
            n, m = self.keys.shape[-2], key_states.shape[-2]
            if n + m > self._kbuf.shape[-2]:
                self.set_kv(self.keys, self.values, spare=_capacity(n + m) - n)
            self._kbuf[:, :, n : n + m] = key_states
            self._vbuf[:, :, n : n + m] = value_states
            self.keys, self.values = self._kbuf[:, :, : n + m], self._vbuf[:, :, : n + m]
            return self.keys, self.values

    class GrowableCache(DynamicCache):  # type: ignore[misc,valid-type]
        """``DynamicCache`` made of :class:`GrowableLayer` s."""

        def __init__(self) -> None:
            Cache.__init__(self, layer_class_to_replicate=GrowableLayer)

else:  # pragma: no cover
    GrowableLayer = GrowableCache = None  # type: ignore[assignment,misc]


def new_cache(model: torch.nn.Module) -> Any:
    """A fresh growable cache for ``model``, or None (let the model build its own) when the model uses
    sliding-window or other non-full-attention layers, or transformers lacks the layer API."""
    if GrowableCache is None:
        return None
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(cfg, "layer_types", None)
    if getattr(cfg, "sliding_window", None) or (layer_types and any(t != "full_attention" for t in layer_types)):
        return None
    return GrowableCache()
