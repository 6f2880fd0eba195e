"""Training algorithms by name: the one registry the trainer, the run builder, the command line and the comparison
harness read (``--algo``, ``TrainConfig(algo=...)``). Nothing outside it decides by an algorithm's name.

An algorithm is one module of ``algos/`` (or of your own package): its config class (a :class:`TrainConfig`
subclass holding its options), its update function and one :func:`register_algorithm` call stating its traits.
docs/architecture.md shows a complete one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from llm_cmdp_agents.algos.config import TrainConfig
    from llm_cmdp_agents.engine.minibatch import UpdateContext
    from llm_cmdp_agents.engine.rollout import Rollout

__all__ = ["ALGORITHMS", "AlgorithmSpec", "get_algorithm", "register_algorithm"]

#: ``update(ctx, batch) -> statistics``: one update of the policy on a collected batch (see
#: :class:`~llm_cmdp_agents.engine.minibatch.UpdateContext`); the statistics go into ``progress.csv``.
UpdateFn = Callable[["UpdateContext", "Rollout"], dict[str, float]]
#: ``reference(config, rng) -> bool``: drawn once per update; True trains this update on the problems' reference
#: solutions instead of the policy's samples.
ReferenceFn = Callable[[Any, "np.random.Generator"], bool]


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered algorithm: its config class, its update and the traits its callers read.

    Attributes
    ----------
    name : str
        The ``--algo`` / ``TrainConfig(algo=...)`` name.
    config : type
        Its :class:`TrainConfig` subclass (shared settings plus its options).
    update : callable
        ``update(ctx, batch) -> statistics`` (:data:`UpdateFn`).
    help : str
        One line for ``--help`` and the docs.
    value_head : bool
        The policy needs a value head (a learned critic, as PPO's).
    uses_reward : bool
        It optimises the wrapper stack's reward (False: a distillation loss alone; the env's reward and cost are
        still logged).
    reference : callable or None
        Which data an update trains on (:data:`ReferenceFn`; None: always the policy's samples). When given, the
        trainer logs ``on_policy`` per update.
    """

    name: str
    config: type[TrainConfig]
    update: UpdateFn
    help: str
    value_head: bool = False
    uses_reward: bool = True
    reference: ReferenceFn | None = None


ALGORITHMS: dict[str, AlgorithmSpec] = {}
"""Every algorithm accepted by ``TrainConfig(algo=...)`` and ``llm-cmdp train --algo``, by name."""


def register_algorithm(name: str, config: type[TrainConfig], update: UpdateFn, *, help: str, value_head: bool = False,
                       uses_reward: bool = True, reference: ReferenceFn | None = None) -> None:
    """Make ``update`` available as ``algo=name`` (in ``TrainConfig``, ``Trainer``, ``llm-cmdp train --algo`` and
    compare/bench configs of this process). ``config`` must be a :class:`TrainConfig` subclass whose ``algo``
    defaults to ``name``. Re-registering a name replaces it."""
    base = sys.modules["llm_cmdp_agents.algos.config"].TrainConfig  # loaded: an algorithm's module defines its config
    if not (isinstance(config, type) and issubclass(config, base)) or config is base:
        raise TypeError(f"config must be a subclass of TrainConfig, got {config!r}")
    default = config.__dataclass_fields__["algo"].default
    if default != name:
        raise ValueError(f"{config.__name__}.algo defaults to {default!r}; it must default to the name {name!r}")
    if not callable(update):
        raise TypeError(f"update must be callable, got {update!r}")
    ALGORITHMS[name] = AlgorithmSpec(name, config, update, help, value_head, uses_reward, reference)


def get_algorithm(name: str) -> AlgorithmSpec:
    """Look up an algorithm by name; an unknown name raises ``ValueError`` listing the accepted ones."""
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"algo must be one of {tuple(ALGORITHMS)}, got {name!r}") from None
