"""How the student's training forward is spread over data-parallel ranks: DDP (replicated) or FSDP (sharded).

``TrainConfig.parallel = "ddp"`` keeps a full copy of the student on every rank and averages gradients
(``DistributedDataParallel``). ``"fsdp"`` shards it with FSDP2 (``torch.distributed.fsdp.fully_shard``): every
decoder layer is its own group, the rest of the policy (embeddings, final norm, LM head, value head, condition
projection) the root group, so each rank holds 1/N of the weights, gradients and AdamW state and gathers a
layer's weights just before it runs. What the rest of the agent does because of that:

- ranks run their forwards in lockstep (a layer's all-gather needs every rank): sampling goes on until every
  rank's rows are done (:func:`lockstep`), an evaluation round gives a rank without a batch a dummy one, and
  every minibatch step runs on every rank (as with DDP);
- forwards outside the training step (sampling, PPO's values, GKD's reference log-probs) run inside
  :func:`gathered`, which gathers the root group for the whole loop; the layers gather per call;
- checkpoints hold full (unsharded) state dicts gathered to rank 0 (:func:`training_state`), keyed by parameter
  name, so a run resumes with any number of ranks, one included.

The teacher is not sharded: it is frozen and replicated on every rank (docs/distributed.md: memory planning).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from llm_cmdp_agents.engine.distributed import World
from llm_cmdp_agents.engine.parallel_modes import PARALLEL

if TYPE_CHECKING:
    from llm_cmdp_agents.engine.policy import LLMPolicy

__all__ = ["PARALLEL", "ActionEvaluator", "Sharding", "gathered", "load_training_state", "lockstep",
           "parameters_per_rank", "shard_policy", "training_forward", "training_state", "unsharded_copy"]



class ActionEvaluator(torch.nn.Module):
    """A module whose ``forward`` is :meth:`LLMPolicy.evaluate_actions`: what DDP and FSDP wrap (they act on what
    runs through a wrapped module's forward: DDP synchronises its gradients, FSDP gathers the root group)."""

    def __init__(self, policy: LLMPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, prompts: Any, completions: Any, temperature: float, conditions: Any = None,
                full: bool = False) -> Any:
        return self.policy.evaluate_actions(prompts, completions, temperature, conditions, full)


@dataclass(frozen=True)
class Sharding:
    """A policy sharded by :func:`shard_policy`: its FSDP root (an :class:`ActionEvaluator`) and the ranks."""

    root: torch.nn.Module
    world: World


def training_forward(policy: LLMPolicy, world: World, parallel: str = "ddp") -> Any:
    """The training forward the update functions call: None (``policy.evaluate_actions``) in a world of one,
    else the DDP-wrapped or the FSDP-sharded :class:`ActionEvaluator` of ``policy`` (build the optimiser after
    this: FSDP replaces the parameters by their shards)."""
    if parallel not in PARALLEL:
        raise ValueError(f"parallel must be one of {PARALLEL}, got {parallel!r}")
    if not world.active:
        return None
    if parallel == "fsdp":
        return shard_policy(policy, world)
    from torch.nn.parallel import DistributedDataParallel

    ids = [policy.device.index] if policy.device.type == "cuda" else None
    return DistributedDataParallel(ActionEvaluator(policy), device_ids=ids)


def _layer_classes(policy: LLMPolicy) -> set[str]:
    """The decoder-layer classes of the student (transformers names them in ``_no_split_modules``)."""
    names = set(getattr(policy.hf_model, "_no_split_modules", None) or ())
    if not names:
        raise ValueError(f"FSDP: {type(policy.hf_model).__name__} does not name its decoder layers "
                         "(_no_split_modules); use parallel='ddp'")
    return names


def shard_policy(policy: LLMPolicy, world: World) -> torch.nn.Module:
    """Shard ``policy`` over ``world`` in place (FSDP2) and return its root :class:`ActionEvaluator`.

    A no-grad warm-up forward through the root follows, so that FSDP takes the root for the root before any
    layer runs on its own (sampling calls the layers directly). Build the optimiser after this."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if policy.lora_config:
        raise ValueError("FSDP with LoRA adapters is not supported: LoRA trains few weights, use parallel='ddp'")
    if policy.decode != "eager":
        raise ValueError(f"FSDP samples with the eager decoder (a static-cache step would need the gathered "
                         f"weights to stay in place); got decode={policy.decode!r}")
    mesh = init_device_mesh(policy.device.type, (world.size,))
    classes = _layer_classes(policy)
    layers = [m for m in policy.hf_model.modules() if type(m).__name__ in classes]
    if not layers:
        raise ValueError(f"FSDP: no module of the classes {sorted(classes)} in the student")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    root = ActionEvaluator(policy)
    fully_shard(root, mesh=mesh)
    policy.sharding = Sharding(root, world)
    conditions = [torch.zeros(1, device=policy.device)] if policy.conditioned else None
    with torch.no_grad():
        root([[0]], [[0]], 1.0, conditions)
    # the root group stays gathered after a forward (FSDP does not reshard the root): reshard it, so the
    # parameters the optimiser is built from are the shards it must update
    root.reshard()  # type: ignore[operator]
    return root


def parameters_per_rank(policy: LLMPolicy) -> int:
    """How many of the policy's parameter values this rank holds (all of them unless it is sharded)."""
    return sum(int(p.to_local().numel() if hasattr(p, "to_local") else p.numel()) for p in policy.parameters())


@contextlib.contextmanager
def gathered(policy: LLMPolicy) -> Iterator[None]:
    """Within: forwards of a sharded policy may run outside its root's forward (sampling, no-grad scoring), every
    rank in lockstep. Nothing happens for a policy that is not sharded."""
    s = policy.sharding
    if s is None:
        yield
        return
    s.root.unshard()  # type: ignore[operator]
    try:
        yield
    finally:
        s.root.reshard()  # type: ignore[operator]


def lockstep(policy: LLMPolicy) -> Callable[[bool], bool] | None:
    """The sampler's ``stop_together`` for a sharded policy (stop when every rank is done), else None."""
    s = policy.sharding
    return None if s is None else s.world.all_true


# ---------------------------------------------------------------------------------------------- checkpoints
_ROOT = "policy."
"""The prefix of the policy's tensors in its :class:`ActionEvaluator`'s state dicts."""


def _unprefixed(state: dict[str, Any]) -> dict[str, Any]:
    return {k[len(_ROOT):]: v for k, v in state.items()}


def _dcp_module(policy: LLMPolicy) -> tuple[torch.nn.Module, bool]:
    s = policy.sharding
    return (s.root, True) if s is not None else (ActionEvaluator(policy), False)


def training_state(policy: LLMPolicy, optimizer: torch.optim.Optimizer,
                   parallel: str = "ddp") -> tuple[dict[str, Any], dict[str, Any]]:
    """The trained tensors and the optimiser state a checkpoint holds.

    ``ddp`` (and a world of one): ``policy.trainable_state_dict()`` and ``optimizer.state_dict()``. ``fsdp``: the
    full, unsharded state dicts keyed by parameter name (``torch.distributed.checkpoint.state_dict``), whatever
    the number of ranks; a collective for a sharded policy (every rank calls it; rank 0 receives the tensors,
    the others empty dicts)."""
    if parallel != "fsdp":
        return policy.trainable_state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    module, sharded = _dcp_module(policy)
    options = StateDictOptions(full_state_dict=True, cpu_offload=sharded)
    model = get_model_state_dict(module, options=options)
    optim = get_optimizer_state_dict(module, optimizer, options=options)
    names = policy.trainable_names()
    return {k: v for k, v in _unprefixed(model).items() if k in names}, optim


def load_training_state(policy: LLMPolicy, optimizer: torch.optim.Optimizer, model: dict[str, Any],
                        optim: dict[str, Any], parallel: str = "ddp") -> None:
    """Restore :func:`training_state` output (every rank calls it with the full dicts it read)."""
    if parallel != "fsdp":
        policy.load_trainable_state_dict({k: v.to(policy.device) for k, v in model.items()})
        optimizer.load_state_dict(optim)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    policy.check_trainable_state(model)
    module, _ = _dcp_module(policy)
    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(module, {_ROOT + k: v for k, v in model.items()}, options=options)
    set_optimizer_state_dict(module, optimizer, optim, options=options)


def unsharded_copy(policy: LLMPolicy, build: Callable[[], LLMPolicy]) -> LLMPolicy | None:
    """A plain (unsharded, CPU) copy of a sharded policy's weights on rank 0, None on the other ranks; a
    collective. ``build`` makes a fresh policy of the same architecture to load them into (e.g. to write the
    final model with ``save_pretrained``). A policy that is not sharded is returned as is."""
    s = policy.sharding
    if s is None:
        return policy
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(s.root, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not s.world.is_main:
        return None
    copy = build()
    copy.load_state_dict(_unprefixed(full), strict=True)
    return copy
