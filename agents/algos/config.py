"""The training settings every algorithm shares, and how an algorithm declares its own.

An algorithm's config is a dataclass subclass of :class:`TrainConfig` (``PPOConfig``, ``GRPOConfig``, ... in
``algos/<name>.py``): the shared fields (the loop, the optimiser, sampling) plus the algorithm's options, each
declared with :func:`option` (its default, its help line for ``llm-cmdp train --help``, its check).
``TrainConfig(algo="grpo", lr=1e-5)`` builds the registered algorithm's own class (as ``pathlib.Path()`` gives a
``PosixPath``), and :meth:`TrainConfig.from_dict` reads the flat dict that ``to_dict`` writes (a run's
``config.json`` section ``train``). Light to import (no torch), so the command line can list every option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from llm_cmdp_agents.algos.registry import ALGORITHMS, get_algorithm
from llm_cmdp_agents.engine.parallel_modes import PARALLEL
from llm_cmdp_env.common.validation import check_bool, check_positive_int, check_real

__all__ = ["TrainConfig", "misplaced", "option", "option_fields", "owners"]

Check = Callable[[Any, str], Any]


def option(default: Any, help: str, check: Check | None = None) -> Any:
    """A config field: ``default``, a one-line ``help`` (shown by ``llm-cmdp train --help``) and the ``check``
    applied at construction (``check(value, name) -> value``, raising a ValueError/TypeError naming ``name``)."""
    return dataclasses.field(default=default, metadata={"help": help, "check": check})


def count(minimum: int = 1) -> Check:
    return lambda v, name: check_positive_int(v, name, minimum=minimum)


def real(**bounds: Any) -> Check:
    return lambda v, name: check_real(v, name, **bounds)


def choice(accepted: tuple[str, ...]) -> Check:
    def check(v: Any, name: str) -> Any:
        if v not in accepted:
            raise ValueError(f"{name} must be one of {accepted}, got {v!r}")
        return v

    return check


def boolean(v: Any, name: str) -> bool:
    return check_bool(v, name)


def owners(name: str) -> list[str]:
    """The registered algorithms whose config has the option ``name``."""
    return [a for a, spec in ALGORITHMS.items() if name in {f.name for f in fields(spec.config)}]


def misplaced(key: str, algo: str) -> str:
    """The error for a train setting ``key`` that algorithm ``algo`` does not have."""
    found = owners(key)
    if found:
        return f"train setting {key!r} is an option of algo {', '.join(found)}, not of {algo!r}"
    accepted = sorted(f.name for f in fields(get_algorithm(algo).config))
    return f"unknown train setting {key!r}; accepted for algo {algo!r}: {accepted}"


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config class that carry a help line (every option shown on the command line)."""
    return [f for f in fields(cls) if "help" in f.metadata]


@dataclass
class TrainConfig:
    """Settings of the training loop every algorithm shares (saved in checkpoints and run folders).

    ``TrainConfig(algo=name, **settings)`` returns the algorithm's own config (``algos/<name>.py``), which adds
    its options to these. Each field's help line says what it is; ``llm-cmdp train --help`` lists them grouped by
    algorithm.
    """

    algo: str = option("ppo", "the algorithm (llm_cmdp_agents.algos registry: ppo, grpo, gkd, minillm, ...)")
    updates: int = option(20, "number of updates in total", count())
    prompts_per_update: int = option(8, "distinct prompts per update", count())
    group_size: int | None = option(None, "completions per prompt", lambda v, n: v if v is None else count()(v, n))
    epochs: int = option(2, "passes over each batch", count())
    minibatch_size: int = option(8, "episodes per gradient step", count())
    lr: float = option(2e-5, "AdamW learning rate (2e-5 suits the shipped student)", real(positive=True))
    weight_decay: float = option(0.0, "AdamW weight decay", real(nonnegative=True))
    ent_coef: float = option(0.0, "entropy bonus", real(nonnegative=True))
    max_grad_norm: float = option(1.0, "gradient clipping norm", real(positive=True))
    temperature: float = option(1.0, "sampling temperature of the policy (also used in the training forward)",
                                real(positive=True))
    top_p: float = option(1.0, "nucleus filter of the sampler", real(positive=True, high=1.0))
    seed: int = option(0, "seeds the problem stream, sampling and shuffling", count(0))
    checkpoint_every: int = option(10, "keep a numbered checkpoint every this many updates (0: only latest.pt, at "
                                   "the end and on Ctrl-C)", count(0))
    parallel: str = option("ddp", "under torchrun: ddp (a copy of the student per rank) or fsdp (the student "
                           "sharded over the ranks; docs/distributed.md)", choice(PARALLEL))

    #: the group size of ``group_size=None``, and the smallest one the algorithm accepts
    default_group_size: ClassVar[int] = 1
    min_group_size: ClassVar[int] = 1

    def __new__(cls, *args: Any, **kwargs: Any) -> TrainConfig:
        if cls is TrainConfig:  # the registered algorithm's own class
            cls = get_algorithm(kwargs.get("algo", "ppo")).config
            own = {f.name for f in fields(cls)}
            for key in kwargs:
                if key not in own:
                    raise ValueError(misplaced(key, kwargs.get("algo", "ppo")))
        return super().__new__(cls)

    def __post_init__(self) -> None:
        spec = get_algorithm(self.algo)
        if type(self) is not spec.config:
            raise ValueError(f"algo={self.algo!r} is configured by {spec.config.__name__}, not {type(self).__name__}")
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                setattr(self, f.name, check(getattr(self, f.name), f.name))
        if self.group_size is None:
            self.group_size = self.default_group_size
        if self.group_size < self.min_group_size:
            raise ValueError(f"{self.algo} needs group_size >= {self.min_group_size}, got {self.group_size}")

    @property
    def episodes_per_update(self) -> int:
        """``prompts_per_update * group_size``."""
        assert self.group_size is not None
        return self.prompts_per_update * self.group_size

    def to_dict(self) -> dict[str, Any]:
        """Plain flat dict (JSON-serialisable): the shared fields and the algorithm's own."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """The config of ``d["algo"]`` (default ``"ppo"``) from a flat dict (:meth:`to_dict`'s format).

        A key of another algorithm's options is an error naming the algorithms it belongs to, except at that
        option's default (older run folders and records list every algorithm's options, at their defaults for
        the ones the run's algorithm does not have). Unknown keys are an error naming the accepted ones.
        """
        d = dict(d)
        if "normalize_advantages" in d and "normalise_advantages" not in d:  # the American spelling, accepted
            d["normalise_advantages"] = d.pop("normalize_advantages")
        target = get_algorithm(d.get("algo", "ppo")).config
        own = {f.name for f in fields(target)}
        others: dict[str, list[tuple[str, Any]]] = {}
        for spec in ALGORITHMS.values():
            for f in fields(spec.config):
                if f.name not in own:
                    others.setdefault(f.name, []).append((spec.name, f.default))
        kept = {}
        for key, value in d.items():
            if key in own:
                kept[key] = value
            elif key not in others or all(value != default for _, default in others[key]):
                raise ValueError(misplaced(key, d.get("algo", "ppo")))
        return target(**kept)

    @classmethod
    def shared_defaults(cls) -> dict[str, Any]:
        """The shared fields' own defaults, before any default that depends on the algorithm is applied
        (``group_size``: None). The base that ``--config`` files and flags are merged onto."""
        return {f.name: f.default for f in fields(TrainConfig)}
