"""Data-parallel training on PyTorch's own distributed engine (``torchrun``; gloo on CPU, NCCL on CUDA).

:class:`World` is this process's place in the job: its rank, the number of ranks, and the few collectives the
agent needs (sums, gathers, a broadcast), all ``torch.distributed`` calls. A single process is a world of one,
where every collective is the identity, so the trainer has one code path.

How the work is split (docs/distributed.md): every rank draws the same global batch of prompts from the same
seeded stream and keeps a contiguous share (whole GRPO groups stay on one rank); sampling draws one uniform per
row and token for the *global* batch from a shared generator, so a row gets the same random numbers whichever
rank samples it; the minibatches are shuffles of the global episode indices (each rank contributes the
episodes it holds, losses are normalised by the global counts, DDP averages the gradients); statistics that
drive a decision (PPO's advantage whitening, the learned multiplier's episode costs, logged means) are reduced
over all ranks first. A 2-process run therefore follows a 1-process run with the same global batch, up to
floating-point reduction order (tested).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["World", "init_world"]


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` data-parallel ranks (a world of one: no process group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether there are other ranks to talk to."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, logs and writes the run folder."""
        return self.rank == 0

    def share(self, n: int, what: str = "prompts per update") -> slice:
        """The contiguous share ``[rank * n / size, (rank + 1) * n / size)`` of ``n`` items (``n`` must divide)."""
        if n % self.size:
            raise ValueError(f"{what} ({n}) must be a multiple of the number of processes ({self.size})")
        k = n // self.size
        return slice(self.rank * k, (self.rank + 1) * k)

    def sum(self, values: Sequence[float] | np.ndarray | float) -> np.ndarray:
        """Element-wise sum over the ranks (float64)."""
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        if not self.active:
            return arr
        t = torch.as_tensor(arr, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().numpy()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (any picklable object)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def concat(self, values: Sequence[Any] | np.ndarray) -> list[Any]:
        """The ranks' lists concatenated in rank order: the global batch in its order, when each rank holds a
        contiguous share."""
        return [x for part in self.gather(list(values)) for x in part]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank (to stop loops in lockstep)."""
        return bool(self.sum(0.0 if flag else 1.0)[0] == 0.0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def _device(self) -> torch.device:
        nccl = dist.get_backend() == "nccl"
        return torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")


def init_world(device: str = "auto", timeout_minutes: float = 30.0) -> World:
    """Join the job ``torchrun`` started (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT`` in the
    environment), or return a world of one when there is none. NCCL when the policy runs on CUDA (each rank on
    ``cuda:LOCAL_RANK``), gloo otherwise. A collective that waits longer than ``timeout_minutes`` for a rank
    (which died or hangs) raises instead of waiting forever; torchrun stops the other ranks when one fails."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes))
    return World(rank=rank, size=size, local_rank=local_rank)
