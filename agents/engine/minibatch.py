"""The minibatch loop of an update, shared by every algorithm: epochs of shuffled minibatches of whole episodes,
one training forward, the algorithm's loss, one optimiser step each.

An algorithm supplies only its loss (``loss(mb) -> (loss, terms)``) and gets back the update's statistics. What
the loop owns: the shuffle of the *global* episode indices (``Rollout.offset`` and ``Rollout.global_lengths`` place
this rank's episodes in the global batch), each minibatch's global token and sequence counts (a loss normalised by
them has the gradient of the whole minibatch once DDP averages over ranks), the gradient clip and step, and the
reduction of the logged terms over ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.engine.distributed import World

if TYPE_CHECKING:
    from llm_cmdp_agents.algos.config import TrainConfig
    from llm_cmdp_agents.engine.policy import ActionEval, LLMPolicy
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["LossTerms", "Minibatch", "UpdateContext", "minibatch_steps"]


@dataclass
class UpdateContext:
    """What an algorithm's update works with.

    Attributes
    ----------
    config : TrainConfig
        The algorithm's own config (its options and the shared settings).
    policy : LLMPolicy
        The policy being trained.
    optimizer : torch.optim.Optimizer
        Its optimiser.
    rng : numpy.random.Generator
        The trainer's shuffle generator (minibatch order; GKD's draw of its data).
    world : World
        This process's place in a data-parallel job (a world of one by default).
    forward : callable, optional
        The training forward, ``forward(prompts, completions, temperature, conditions, full=...)``: the DDP- or
        FSDP-wrapped :meth:`LLMPolicy.evaluate_actions` in a data-parallel run; None: ``policy.evaluate_actions``.
    teacher : torch.nn.Module, optional
        The env's frozen teacher, for losses that compare distributions with it (distillation terms).
    pad_id : int
        The teacher's padding id.
    """

    config: TrainConfig
    policy: LLMPolicy
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    world: World = field(default_factory=World)
    forward: Callable[..., ActionEval] | None = None
    teacher: torch.nn.Module | None = None
    pad_id: int = 0

    def train_forward(self, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                      conditions: Sequence[torch.Tensor] | None, full: bool = False) -> ActionEval:
        """The training forward of a minibatch (with gradients) at the config's temperature."""
        forward = self.forward or self.policy.evaluate_actions
        return forward(prompts, completions, self.config.temperature, conditions, full=full)


@dataclass
class Minibatch:
    """One minibatch as the loss sees it.

    Attributes
    ----------
    rows : ndarray
        Its episodes' indices in this rank's batch.
    sel : Tensor
        ``rows`` on the policy's device (to index ``[N, T]`` tensors of the batch).
    prompts, completions : list of list of int
        Their token ids.
    ev : ActionEval
        The training forward of these episodes.
    tokens : float
        The minibatch's completion tokens on every rank together (the denominator of a per-token mean).
    sequences : float
        Its episodes on every rank together (the denominator of a per-sequence mean).
    """

    rows: np.ndarray
    sel: torch.Tensor
    prompts: list[list[int]]
    completions: list[list[int]]
    ev: ActionEval
    tokens: float
    sequences: float

    @property
    def width(self) -> int:
        """``T``, the longest completion of the minibatch (the width of ``ev``'s tensors)."""
        return int(self.ev.logprobs.shape[1])


@dataclass
class LossTerms:
    """What a loss reports of one minibatch: ``sums`` (already normalised by the minibatch's global counts, so
    they are summed over ranks) and ``token_means`` (means over this rank's tokens, averaged over ranks weighted
    by their tokens), in the order they are logged."""

    sums: dict[str, float] = field(default_factory=dict)
    token_means: dict[str, float] = field(default_factory=dict)


LossFn = Callable[[Minibatch], "tuple[torch.Tensor, LossTerms]"]


def minibatch_steps(ctx: UpdateContext, batch: Rollout, loss: LossFn, *, full: bool = False) -> dict[str, float]:
    """``ctx.config.epochs`` epochs of shuffled minibatches of ``ctx.config.minibatch_size`` whole episodes: the
    training forward (``full``: with the whole next-token distribution), ``loss``, backward, gradient clip at
    ``max_grad_norm`` and an optimiser step each. Returns each logged term's mean over the steps, with
    ``grad_norm``.

    In a data-parallel run every rank runs every step (DDP's collectives): a rank holding none of a minibatch's
    episodes runs its first episode with weight 0."""
    cfg, policy, world = ctx.config, ctx.policy, ctx.world
    n = len(batch)
    lengths = np.asarray(batch.global_lengths if batch.global_lengths is not None
                         else [len(c) for c in batch.completions])
    total, offset = len(lengths), batch.offset
    logs: dict[str, list[float]] = {}
    policy.train()
    for _ in range(cfg.epochs):
        order = ctx.rng.permutation(total)
        for start in range(0, total, cfg.minibatch_size):
            members = order[start: start + cfg.minibatch_size]
            mine = [int(i) - offset for i in members if offset <= i < offset + n]
            weight = 1.0
            if not mine:
                mine, weight = [0], 0.0
            idx = np.asarray(mine)
            prompts, comps = [batch.prompts[i] for i in idx], [batch.completions[i] for i in idx]
            conditions = None if batch.conditions is None else [batch.conditions[i] for i in idx]
            ev = ctx.train_forward(prompts, comps, conditions, full=full)
            mb = Minibatch(idx, torch.as_tensor(idx, device=policy.device), prompts, comps, ev,
                           tokens=float(lengths[members].sum()), sequences=float(len(members)))
            value, terms = loss(mb)
            ctx.optimizer.zero_grad(set_to_none=True)
            (value * (weight * world.size)).backward()  # DDP averages over ranks: the sum is what we want
            gn = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.max_grad_norm)
            ctx.optimizer.step()
            tokens = float(ev.mask.sum()) * weight
            sums = [v * weight for v in terms.sums.values()]
            means = [v * tokens for v in terms.token_means.values()]
            reduced = world.sum([*sums, *means, tokens])
            tok = reduced[-1]
            step = dict(zip(terms.sums, reduced[: len(sums)]))
            step.update({k: v / max(tok, 1.0) for k, v in zip(terms.token_means, reduced[len(sums): -1])})
            step["grad_norm"] = _scalar(gn)
            for k, v in step.items():
                logs.setdefault(k, []).append(float(v))
    policy.eval()
    return {k: float(np.mean(v)) for k, v in logs.items()}


def _scalar(x: Any) -> float:
    """A float of a (possibly distributed: FSDP's gradient norm is a DTensor) scalar tensor."""
    return float(x.full_tensor() if hasattr(x, "full_tensor") else x)
