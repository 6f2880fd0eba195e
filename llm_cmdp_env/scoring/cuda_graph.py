"""A static-shape decode step replayed from a CUDA graph (``decode="cudagraph"``), without ``torch.compile``.

On a GPU an eager decode step of a 0.5B model is bound by Python and kernel launches (~14 ms per step at every
batch size), not by the hardware. A CUDA graph records the step's kernels once and replays them with
one launch. ``torch.compile(mode="reduce-overhead")`` (``decode="compiled"``) does that too, but first compiles
the model with Inductor, which takes minutes for a 24-layer model; capturing the eager step directly costs
about one step, and the replay runs the very kernels of ``decode="static"``, so its numbers are the static
step's.

:class:`GraphedStep` wraps a step ``(inputs, mask, positions, cache_position, cache) -> logits`` of fixed
shapes (:func:`llm_cmdp_env.scoring.static.decode_step`). The first call for a cache and a set of shapes copies
its tensor arguments into buffers of its own, runs the step once on a side stream (warm-up: cuBLAS handles,
lazy allocations), captures it, and replays it; later calls copy their arguments into those buffers and
replay. Two rules follow from replaying recorded kernels on recorded addresses:

- the cache's tensors must keep their addresses (static caches do, and the scorer compacts in place);
- the returned logits are the graph's output buffer, overwritten by the next replay: use or copy them first.

State the step advances in place (a static cache layer's ``cumulative_length``) is restored after the warm-up,
so the replay writes the same cache column as an eager step would. Capturing under autocast disables the
autocast weight cache (its casts would be freed while the graph still reads them).

Only CUDA has graphs: :func:`backend_for` refuses other devices. :class:`RerunBackend` replays by re-running the
step on the same buffers: what a replay does, minus the launch savings, so the buffer rules above are tested on
a CPU (tests/test_cuda_graph.py); tests/test_cuda.py checks the real graphs against eager decoding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from llm_cmdp_env.scoring.decode_modes import check_graph_device

__all__ = ["GraphedStep", "RerunBackend", "backend_for"]


class CudaBackend:
    """Warm-up on a side stream, capture with ``torch.cuda.graph``, replay with ``CUDAGraph.replay``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def warm(self, run: Callable[[], Any]) -> None:
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            run()
        torch.cuda.current_stream(self.device).wait_stream(stream)

    def capture(self, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, Callable[[], None]]:
        graph = torch.cuda.CUDAGraph()
        with _no_autocast_cache(self.device), torch.cuda.graph(graph):
            out = run()
        return out, graph.replay


class RerunBackend:
    """Replays by running the step again on the captured buffers and writing its output into the captured
    output tensor: a CUDA graph's semantics without a GPU (for tests of the buffer discipline)."""

    def warm(self, run: Callable[[], Any]) -> None:
        run()

    def capture(self, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, Callable[[], None]]:
        out = run()
        return out, lambda: out.copy_(run())


def backend_for(device: str | torch.device) -> CudaBackend:
    """The graph backend of ``device`` (CUDA only: :func:`check_graph_device`)."""
    return CudaBackend(check_graph_device(device))


def _no_autocast_cache(device: torch.device):
    """Within an enabled autocast: the same autocast without its weight-cast cache (required for capture)."""
    kind = torch.device(device).type
    if not torch.is_autocast_enabled(kind):
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.get_autocast_dtype(kind), cache_enabled=False)


def _advancing_state(cache: Any) -> list[torch.Tensor]:
    """Tensors of ``cache`` that a step advances in place (static layers' ``cumulative_length``)."""
    return [layer.cumulative_length for layer in getattr(cache, "layers", ())
            if isinstance(getattr(layer, "cumulative_length", None), torch.Tensor)]


class GraphedStep:
    """``step(inputs, mask, positions, cache_position, cache)`` replayed from one graph per cache and shapes."""

    def __init__(self, step: Callable[..., torch.Tensor], device: torch.device, backend: Any = None) -> None:
        self.step = step
        self.backend = backend if backend is not None else backend_for(device)
        self._graphs: dict[tuple, tuple[Any, list[torch.Tensor], torch.Tensor, Callable[[], None]]] = {}
        self.captures = 0

    def __call__(self, inputs: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 cache_position: torch.Tensor, cache: Any) -> torch.Tensor:
        args = (inputs, mask, positions, cache_position)
        key = (id(cache), *((tuple(a.shape), a.dtype, a.device) for a in args))
        entry = self._graphs.get(key)
        if entry is None or entry[0] is not cache:
            entry = self._graphs[key] = self._capture(args, cache)
        _, buffers, out, replay = entry
        for buf, a in zip(buffers, args):
            buf.copy_(a)
        replay()
        return out

    def _capture(self, args: tuple[torch.Tensor, ...], cache: Any):
        buffers = [a.clone() for a in args]
        state = _advancing_state(cache)
        saved = [t.clone() for t in state]

        def run() -> torch.Tensor:
            return self.step(*buffers, cache)

        def restore() -> None:
            for t, s in zip(state, saved):
                t.copy_(s)

        self.backend.warm(run)
        out, replay = self.backend.capture(run)
        restore()  # undo the warm-up (a real capture runs nothing; the rerun backend's ran the step once)
        self.captures += 1
        # the entry holds the cache: its id cannot be reused by another cache while the graph is kept
        return cache, buffers, out, replay
