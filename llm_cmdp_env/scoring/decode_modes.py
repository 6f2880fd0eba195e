"""The names of the ways an incremental (one token per step) forward can run, and their checks.

Light (no torch import at module level), so the CLI can list them. The env's scorer
(:mod:`llm_cmdp_env.scoring.static`) and the agent's sampler (:mod:`llm_cmdp_agents.engine.static_decode`) run them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DECODE_MODES", "REUSES_OUTPUT", "check_decode", "check_graph_device"]

DECODE_MODES = ("eager", "static", "compiled", "cudagraph")
"""How an incremental forward runs: the growing cache (eager), a fixed-size cache (static), the same compiled
(torch.compile; CUDA graphs on CUDA), the same replayed from a CUDA graph without compiling (CUDA only)."""
REUSES_OUTPUT = ("compiled", "cudagraph")
"""Modes whose step returns a buffer that its next call overwrites."""


def check_graph_device(device: Any) -> Any:
    """``device`` (a ``torch.device``) if CUDA graphs run there, else a ValueError naming the mode to use instead."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"decode='cudagraph' needs a CUDA device, not {device}: use decode='static' (the same "
                         "step without the graph) or 'eager'")
    return device


def check_decode(mode: str, device: Any = None) -> str:
    """``mode`` if it is one of :data:`DECODE_MODES` (and, given the ``device``, runs there: ``"cudagraph"`` needs
    CUDA), else a ValueError saying why."""
    if mode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {mode!r}")
    if mode == "cudagraph" and device is not None:
        check_graph_device(device)
    return mode
