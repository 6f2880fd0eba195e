"""Every setting of a training run, as plain dataclasses: what ``config.json`` of a run folder holds, what
``llm-cmdp train --config`` reads, and what the command-line flags fill in. Light to import (no torch), so the
CLI can show every default in ``--help`` without loading the models' libraries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from llm_cmdp_env.validation import check_bool, check_positive_int, check_real
from llm_cmdp_env.wrappers.factory import REGISTRY

__all__ = ["ALGOS", "PARALLEL", "RL_ALGOS", "EnvConfig", "EvalConfig", "PolicyConfig", "RunConfig", "TrainConfig"]

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


ALGOS = ("ppo", "grpo", "gkd", "minillm")
# algorithms whose loss is a policy gradient on the wrapper stack's reward (the others distil: see distill_losses)
RL_ALGOS = ("ppo", "grpo")
# how a data-parallel run spreads the student (llm_cmdp_agents.data_parallel)
PARALLEL = ("ddp", "fsdp")


@dataclass
class TrainConfig:
    """Trainer settings (all plain values, saved in checkpoints and run folders).

    Parameters
    ----------
    algo : str
        ``"ppo"`` (token-level GAE advantages, value head), ``"grpo"`` (group-normalised returns, no critic), or a
        distillation baseline of the paper: ``"gkd"`` (Agarwal et al. 2024: the generalised JSD to the teacher on a
        mix of student samples and reference solutions; no reward) or ``"minillm"`` (Gu et al. 2024: policy
        gradient of the reverse KL with length-normalised future rewards ``log p_teacher - log p_student`` plus the
        exact per-step reverse KL; no task reward).
    updates : int
        Number of updates :meth:`Trainer.train` runs in total.
    prompts_per_update : int
        Distinct prompts per update.
    group_size : int, optional
        Completions per prompt (default 1 for PPO, 4 for GRPO, which needs >= 2).
    epochs, minibatch_size : int
        Passes over each batch and episodes per gradient step.
    lr, weight_decay : float
        AdamW settings.
    clip : float
        PPO/GRPO ratio clip epsilon.
    vf_coef, ent_coef : float
        Value-loss weight (PPO) and entropy bonus.
    gamma, gae_lambda : float
        Discount and GAE lambda (PPO).
    normalise_advantages : bool
        PPO and MiniLLM: whiten the advantages over the batch's tokens. GRPO: divide each group's centred returns
        by the group's std (False: centred only, Dr. GRPO, so that a penalty's size ``lam * cost`` survives in
        groups that tie on the task reward; :func:`~llm_cmdp_agents.grpo.group_advantages`).
    max_grad_norm : float
        Gradient clipping norm.
    temperature, top_p : float
        The policy's sampling temperature (also used in the training forward) and nucleus filter.
    seed : int
        Seeds the env's problem stream, sampling and minibatch shuffling.
    checkpoint_every : int
        Save a checkpoint every this many updates (0: only at the end and on Ctrl-C).
    gkd_beta : float
        The generalised JSD's interpolation in [0, 1] (0: forward KL(teacher || student), 1: reverse KL; TRL's
        ``GKDConfig.beta``, default 0.5).
    gkd_lambda : float
        GKD's on-policy fraction (TRL's ``lmbda``): each update trains on student samples with this probability,
        else on the problems' reference solutions.
    distill_coef : float
        Weight of the generalised JSD (``gkd_beta``) added to PPO's or GRPO's loss (GRPO + GKD); 0 = none.
    parallel : str
        How a data-parallel run (``torchrun``) spreads the student: ``"ddp"`` (a full copy per rank) or ``"fsdp"``
        (weights, gradients and optimiser state sharded over the ranks, for students that do not fit one
        device; see :mod:`llm_cmdp_agents.data_parallel`). No effect in a single process.
    """

    algo: str = "ppo"
    updates: int = 20
    prompts_per_update: int = 8
    group_size: int | None = None
    epochs: int = 2
    minibatch_size: int = 8
    lr: float = 2e-5
    weight_decay: float = 0.0
    clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    gamma: float = 1.0
    gae_lambda: float = 0.95
    normalise_advantages: bool = True
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    checkpoint_every: int = 10
    gkd_beta: float = 0.5
    gkd_lambda: float = 0.5
    distill_coef: float = 0.0
    parallel: str = "ddp"

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.group_size is None:
            self.group_size = 4 if self.algo == "grpo" else 1
        if self.algo == "grpo" and self.group_size < 2:
            raise ValueError(
                f"GRPO needs group_size >= 2 (advantages are normalised within a group), got {self.group_size}"
            )
        for name in ("updates", "prompts_per_update", "group_size", "epochs", "minibatch_size"):
            setattr(self, name, check_positive_int(getattr(self, name), name))
        self.checkpoint_every = check_positive_int(self.checkpoint_every, "checkpoint_every", minimum=0)
        self.seed = check_positive_int(self.seed, "seed", minimum=0)
        for name in ("lr", "max_grad_norm", "temperature"):
            setattr(self, name, check_real(getattr(self, name), name, positive=True))
        for name in ("weight_decay", "vf_coef", "ent_coef"):
            setattr(self, name, check_real(getattr(self, name), name, nonnegative=True))
        self.clip = check_real(self.clip, "clip", positive=True)
        for name in ("gamma", "gae_lambda"):
            setattr(self, name, check_real(getattr(self, name), name, low=0.0, high=1.0))
        self.top_p = check_real(self.top_p, "top_p", positive=True, high=1.0)
        self.normalise_advantages = check_bool(self.normalise_advantages, "normalise_advantages")
        for name in ("gkd_beta", "gkd_lambda"):
            setattr(self, name, check_real(getattr(self, name), name, low=0.0, high=1.0))
        self.distill_coef = check_real(self.distill_coef, "distill_coef", nonnegative=True)
        if self.parallel not in PARALLEL:
            raise ValueError(f"parallel must be one of {PARALLEL}, got {self.parallel!r}")
        if self.distill_coef and self.algo not in RL_ALGOS:
            raise ValueError(f"distill_coef adds the JSD to PPO's or GRPO's loss; {self.algo!r} has its own "
                             "distillation loss")

    @property
    def episodes_per_update(self) -> int:
        """``prompts_per_update * group_size``."""
        assert self.group_size is not None
        return self.prompts_per_update * self.group_size

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        if "normalize_advantages" in d and "normalise_advantages" not in d:  # the spelling of configs before 0.2
            d["normalise_advantages"] = d.pop("normalize_advantages")
        return _from_dict(cls, d, "train")



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


@dataclass
class PolicyConfig:
    """How to build the policy (see :class:`~llm_cmdp_agents.policy.LLMPolicy`)."""

    model: str = "zoo:student"
    device: str = "auto"
    lora: dict[str, Any] | None = None
    gradient_checkpointing: bool = False
    budget_conditioning: bool | None = None  # None: on iff the constraint's rule adds its state to the observation
    decode: str = "eager"  # the sampler's decode: eager, static, compiled or cudagraph (llm_cmdp_agents.static_decode)


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
        return {name: _field_defaults(typ) for name, typ in
                (("env", EnvConfig), ("policy", PolicyConfig), ("train", TrainConfig), ("eval", EvalConfig))}

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


