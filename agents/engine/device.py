"""Device auto-selection and mixed precision: CUDA with bf16 autocast when present, CPU in float32 otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["autocast", "resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device to train on.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None) picks ``cuda`` when a GPU is visible, else ``cpu``; anything else is passed to
        :class:`torch.device` (``"cuda"`` without a GPU is an error, never a silent CPU fallback).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but no CUDA device is visible; use device='auto' or 'cpu'")
    return dev


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA (when ``enabled``), a no-op elsewhere.

    Why: on a GPU bf16 halves memory and doubles matmul throughput with no loss scaling; on a CPU bf16
    autocast is slow for small models, so CPU runs stay in float32.
    """
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
