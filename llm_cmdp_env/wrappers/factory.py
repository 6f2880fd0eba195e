"""Build a constraint-handling stack by name: the one registry of names.

``apply_constraint(env, "budget", budget=40.0)`` is what ``gym.make("MathDistill-v0", constraint="budget",
budget=40.0)`` calls; ``apply_vector_constraint`` is its vector twin. A new rule is registered with one call
(or one line in :data:`REGISTRY`), see :func:`register_constraint` and docs/architecture.md.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium.vector import VectorEnv

from llm_cmdp_env.wrappers.budget import BudgetReward
from llm_cmdp_env.wrappers.constraint import (
    Constraint,
    ConstraintWrapper,
    VectorConstraintWrapper,
    check_budget_reachable,
    wrapper_class,
)
from llm_cmdp_env.wrappers.distill import DistillReward
from llm_cmdp_env.wrappers.lagrangian import FixedLagrangian, LearnedLagrangian
from llm_cmdp_env.wrappers.saute import Saute
from llm_cmdp_env.wrappers.stats import CostEpisodeStatistics, VectorCostEpisodeStatistics
from llm_cmdp_env.wrappers.worst_case import WorstCase

__all__ = ["CONSTRAINTS", "REGISTRY", "ConstraintSpec", "apply_constraint", "apply_vector_constraint", "build_rule",
           "constraint_spec", "register_constraint"]

_BUDGET_USES = ("required", "stats", "bound")


@dataclass(frozen=True)
class ConstraintSpec:
    """One registered constraint name: its rule and what its budget means. Callers (the agent, the CLI, the plots)
    read what they need from here and from the rule's class attributes, never from the name.

    Attributes
    ----------
    rule : Constraint subclass or None
        The rule (None: no reward change, statistics only).
    budget : str
        How ``budget=`` is used: ``"required"`` (the rule's episode-cost budget, passed to it), ``"stats"``
        (optional; it only feeds ``constraint_satisfied``), ``"bound"`` (required, passed to the rule, but not
        an episode-cost budget: the statistics take ``constraint_satisfied`` from the rule's own flag).
    help : str
        One line for ``--help`` and the docs.
    """

    rule: type[Constraint] | None
    budget: str
    help: str

    @property
    def reads_budget(self) -> bool:
        """Whether the rule, and so what a policy trained under it learns, depends on the budget (False for
        ``"stats"``: the budget only feeds the statistics' ``constraint_satisfied``)."""
        return self.budget != "stats"

    @property
    def episode_budget(self) -> bool:
        """Whether the budget bounds the episode cost, what the statistics check (False for a ``"bound"`` on
        another quantity: worst-case's per-token mean cost of every prefix)."""
        return self.budget != "bound"

    def statistics_budget(self, budget: float | None) -> float | None:
        """The budget the episode statistics check ``constraint_satisfied`` against (None for a ``"bound"``: the
        statistics then take the rule's own ``constraint_violated`` flag)."""
        return budget if self.episode_budget else None

    @property
    def needs(self) -> tuple[str, ...]:
        """The rule's options without a default (besides ``budget``), named in the error when missing."""
        if self.rule is None:
            return ()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in inspect.signature(self.rule).parameters.values()
                     if p.default is p.empty and p.kind in kinds and p.name != "budget")

    @property
    def observation_key(self) -> str | None:
        """The key of the state field the rule appends to a ``Dict`` observation by default (what a
        budget-conditioned policy reads; the rule's ``obs_key`` option may rename it), or None."""
        rule = self.rule
        return None if rule is None or rule.observed_field is None else rule.obs_key

    @property
    def learns(self) -> bool:
        """Whether the rule learns from finished episodes (:attr:`Constraint.learns_from_episodes`)."""
        return self.rule is not None and self.rule.learns_from_episodes


#: Every constraint name accepted by :func:`apply_constraint` (and ``gym.make(..., constraint=...)``).
REGISTRY: dict[str, ConstraintSpec] = {
    "none": ConstraintSpec(None, "stats", "reward unchanged (task reward); episode statistics only"),
    "budget": ConstraintSpec(BudgetReward, "required", "the paper's budget reward (BudgetRewardWrapper): task reward "
                             "forfeited once the episode cost exceeds the budget; needs budget"),
    "saute": ConstraintSpec(Saute, "required", "Sauté RL (SauteWrapper): remaining normalised budget appended to "
                            "the observation; needs budget"),
    "lagrangian": ConstraintSpec(FixedLagrangian, "stats", "fixed-multiplier soft Lagrangian r - lam*c "
                                 "(FixedLagrangianWrapper); needs lam"),
    "learned-lagrangian": ConstraintSpec(LearnedLagrangian, "required", "learned multiplier, dual ascent or PID "
                                         "(LearnedLagrangianWrapper); needs budget"),
    "worst-case": ConstraintSpec(WorstCase, "bound", "per-prefix mean-cost bound, absorbing violation "
                                 "(WorstCaseWrapper); budget is the per-token bound"),
    "distill": ConstraintSpec(DistillReward, "stats", "pure distillation baseline, reward = -cost "
                              "(DistillRewardWrapper)"),
}

#: name -> one-line description (derived from :data:`REGISTRY`; kept for ``--help`` and older code).
CONSTRAINTS: dict[str, str] = {name: spec.help for name, spec in REGISTRY.items()}


def register_constraint(name: str, rule: type[Constraint], *, budget: str = "required", help: str) -> None:
    """Make ``rule`` available as ``constraint=name`` (in ``apply_constraint``, ``gym.make`` and the CLI of this
    process); ``budget`` says how it uses ``budget=`` (see :class:`ConstraintSpec`). Re-registering a name replaces
    it."""
    if not (isinstance(rule, type) and issubclass(rule, Constraint)):
        raise TypeError(f"rule must be a Constraint subclass, got {rule!r}")
    if budget not in _BUDGET_USES:
        raise ValueError(f"budget must be one of {_BUDGET_USES}, got {budget!r}")
    REGISTRY[name] = ConstraintSpec(rule, budget, help)
    CONSTRAINTS[name] = help


def constraint_spec(name: str | None) -> ConstraintSpec:
    """The registry entry of a constraint name (None is ``"none"``); an unknown name is an error listing the
    accepted ones."""
    if name is not None and (not isinstance(name, str) or name not in REGISTRY):
        raise ValueError(f"unknown constraint {name!r}; accepted: None or one of {', '.join(map(repr, REGISTRY))}")
    return REGISTRY["none" if name is None else name]


def build_rule(constraint: str | None, budget: float | None, kwargs: dict[str, Any],
               env: Any = None) -> tuple[ConstraintSpec, Constraint | None]:
    """The registry entry and the built rule (None for "none"), after checking the budget can be met in ``env``."""
    spec = constraint_spec(constraint)
    name = "none" if constraint is None else constraint
    if spec.budget in ("required", "bound") and budget is None:
        raise ValueError(f"constraint {name!r} needs budget= (a float)")
    for key in spec.needs:
        if key not in kwargs:
            raise ValueError(f"constraint {name!r} needs {key}=")
    check_budget_reachable(name, budget, env)
    if spec.rule is None:
        if kwargs:
            raise TypeError(f"constraint {name!r} takes no extra arguments, got {sorted(kwargs)}")
        return spec, None
    try:
        rule = spec.rule(budget=budget, **kwargs) if spec.reads_budget else spec.rule(**kwargs)
    except TypeError as e:  # an unknown keyword: name the constraint
        raise TypeError(f"constraint {name!r}: {e}") from None
    return spec, rule


def apply_constraint(
    env: gym.Env,
    constraint: str | None = None,
    budget: float | None = None,
    *,
    statistics: bool = True,
    **kwargs: Any,
) -> gym.Env:
    """Wrap ``env`` with the named constraint handling, then :class:`CostEpisodeStatistics`.

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"`` (e.g. ``MathDistill-v0``).
    constraint : str or None
        One of :data:`CONSTRAINTS`; ``None`` is ``"none"``.
    budget : float, optional
        The budget :math:`d`: required by ``budget``, ``saute``, ``learned-lagrangian`` (episode cost) and
        ``worst-case`` (per-token mean of every prefix); for the others it only feeds
        ``info["episode"]["constraint_satisfied"]``.
    statistics : bool
        Add :class:`CostEpisodeStatistics` on top (default True).
    **kwargs
        Passed to the constraint rule (e.g. ``unsafe_reward=``, ``discount=``, ``lam=``, ``lr=``,
        ``pid=``, ``penalty=``, ``terminate_on_violation=``).

    Returns
    -------
    gymnasium.Env
        ``CostEpisodeStatistics(ConstraintWrapper(env, rule))`` (or ``CostEpisodeStatistics(env)`` for
        ``"none"``). The named classes (``BudgetRewardWrapper``, ...) are these adapters with their rule.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the accepted ones) or a missing ``budget``/``lam``.
    """
    spec, rule = build_rule(constraint, budget, kwargs, env)
    wrapped = env if rule is None else wrapper_class(ConstraintWrapper, rule)(env, rule)
    if statistics:
        wrapped = CostEpisodeStatistics(wrapped, budget=spec.statistics_budget(budget))
    return wrapped


def apply_vector_constraint(
    venv: VectorEnv,
    constraint: str | None = None,
    budget: float | None = None,
    *,
    statistics: bool = True,
    **kwargs: Any,
) -> VectorEnv:
    """Vector twin of :func:`apply_constraint`: the same rule in a :class:`VectorConstraintWrapper`, then
    :class:`VectorCostEpisodeStatistics`. Same parameters; ``venv`` must use NEXT_STEP autoreset."""
    spec, rule = build_rule(constraint, budget, kwargs, venv)
    wrapped = venv if rule is None else wrapper_class(VectorConstraintWrapper, rule)(venv, rule)
    if statistics:
        wrapped = VectorCostEpisodeStatistics(wrapped, budget=spec.statistics_budget(budget))
    return wrapped

