"""Every setting of a training run, as plain dataclasses: what ``config.json`` of a run folder holds, what
``llm-cmdp train --config`` reads, and what the command-line flags fill in. The ``train`` section is the
algorithm's own config (:class:`~llm_cmdp_agents.algos.config.TrainConfig`). Light to import (no torch), so the
CLI can show every default in ``--help`` without loading the models' libraries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from llm_cmdp_agents.algos.config import TrainConfig
from llm_cmdp_env.common.validation import check_positive_int
from llm_cmdp_env.wrappers.factory import REGISTRY

__all__ = ["EnvConfig", "EvalConfig", "PolicyConfig", "RunConfig", "TrainConfig"]

def _from_dict(cls: type, d: Mapping[str, Any], section: str) -> Any:
    """``cls(**d)`` after checking every key is a field (unknown keys are an error naming the accepted ones)."""
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {section!r} settings {sorted(unknown)}; accepted: {sorted(names)}")
    return cls(**d)


def _field_defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a dataclass, as declared (no ``__post_init__`` applied)."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@dataclass
class EnvConfig:
    """How to build the env: ``gym.make("MathDistill-v0", **env_kwargs, constraint=..., budget=...)``.

    ``budget`` is also the constraint-satisfaction threshold of the evaluation (summed episode cost; for
    ``worst-case``, the per-token bound of every prefix).
    """

    teacher: str = "zoo:teacher"
    dataset: str = "arithmetic"
    split: str | None = None  # the training split (None: the dataset's default, train)
    divergence: str = "teacher_nll"
    max_new_tokens: int = 128  # the shipped task's solutions take up to ~110 tokens (96 cut 3% of them)
    max_prompt_tokens: int = 256
    device: str = "cpu"
    constraint: str = "none"
    budget: float | None = None
    constraint_kwargs: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from llm_cmdp_env.divergences import get_divergence
        from llm_cmdp_env.wrappers.constraint import check_budget
        from llm_cmdp_env.wrappers.factory import build_rule

        # what building the env would refuse, refused with the settings (so --print-config shows only valid ones):
        # the budget against the divergence's lowest cost, and the constraint rule with its options
        floor = 0.0 if get_divergence(self.divergence).nonnegative else None
        check_budget(self.constraint, self.budget, floor, self.divergence)
        build_rule(self.constraint, self.budget, dict(self.constraint_kwargs))


@dataclass
class PolicyConfig:
    """How to build the policy (see :class:`~llm_cmdp_agents.engine.policy.LLMPolicy`)."""

    model: str = "zoo:student"
    device: str = "auto"
    lora: dict[str, Any] | None = None
    gradient_checkpointing: bool = False
    budget_conditioning: bool | None = None  # None: on iff the constraint's rule adds its state to the observation
    decode: str = "eager"  # the sampler's decode: eager, static, compiled or cudagraph (engine/static_decode.py)


@dataclass
class EvalConfig:
    """The evaluation before and after training (and the default of ``llm-cmdp eval RUN``): greedy decoding of
    problems ``0 .. n-1`` of ``split`` (of ``dataset``, default the training dataset); ``n = 0`` skips it."""

    n: int = 100
    batch_size: int = 64
    split: str = "test"
    dataset: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.n = check_positive_int(self.n, "eval n", minimum=0)
        self.batch_size = check_positive_int(self.batch_size, "eval batch_size")


@dataclass
class RunConfig:
    """Every setting of a run, as stored in its ``config.json`` (and read by ``llm-cmdp train --config``)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    SECTIONS: ClassVar[tuple[str, ...]] = ("env", "policy", "train", "eval")

    def __post_init__(self) -> None:
        ckw = self.env.constraint_kwargs
        spec = REGISTRY.get(self.env.constraint)  # an unknown name is refused when the env is built
        if spec is not None and spec.learns and "update_every" not in ckw:
            # one multiplier update per training batch, after its last episode: every episode of a batch sees one λ
            # (a new dict: the caller's settings stay as given, e.g. those a comparison run is fingerprinted by)
            self.env.constraint_kwargs = {**ckw, "update_every": self.train.episodes_per_update}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return {"env": dataclasses.asdict(self.env), "policy": dataclasses.asdict(self.policy),
                "train": self.train.to_dict(), "eval": dataclasses.asdict(self.eval)}

    @classmethod
    def defaults(cls) -> dict[str, dict[str, Any]]:
        """Every field's own default, before any default that depends on another field is applied (e.g.
        ``group_size``: None, resolved from ``algo`` at construction). The base that ``--config`` and the flags
        are merged onto, so a dependent default follows the value the user gave, not the default of the other
        field (``--algo grpo`` alone gets GRPO's group size)."""
        out = {name: _field_defaults(typ) for name, typ in (("env", EnvConfig), ("policy", PolicyConfig),
                                                            ("eval", EvalConfig))}
        return {"env": out["env"], "policy": out["policy"], "train": TrainConfig.shared_defaults(),
                "eval": out["eval"]}

    @classmethod
    def unknown_sections(cls, d: Mapping[str, Any]) -> list[str]:
        """Top-level keys of ``d`` that are no section (keys starting with ``_``, e.g. ``_comment``, are comments;
        ``world_size`` records a data-parallel run's size, ``threads`` its torch thread count)."""
        return sorted(k for k in set(d) - set(cls.SECTIONS) - {"world_size", "threads"} if not str(k).startswith("_"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; missing sections/fields take their defaults, unknown ones are an error."""
        extra = cls.unknown_sections(d)
        if extra:
            raise ValueError(f"unknown config sections {sorted(extra)}; accepted: {list(cls.SECTIONS)}")
        return cls(_from_dict(EnvConfig, d.get("env", {}), "env"),
                   _from_dict(PolicyConfig, d.get("policy", {}), "policy"),
                   TrainConfig.from_dict(d.get("train", {})),
                   _from_dict(EvalConfig, d.get("eval", {}), "eval"))


