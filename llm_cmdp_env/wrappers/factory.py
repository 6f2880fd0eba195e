"""Build a constraint-handling stack by name: the one place that lists the names.

``apply_constraint(env, "budget", budget=40.0)`` is what ``gym.make("MathDistill-v0", constraint="budget",
budget=40.0)`` calls; ``apply_vector_constraint`` is its vector twin.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import VectorEnv

from llm_cmdp_env.wrappers.budget import BudgetRewardWrapper, VectorBudgetRewardWrapper
from llm_cmdp_env.wrappers.distill import DistillRewardWrapper, VectorDistillRewardWrapper
from llm_cmdp_env.wrappers.lagrangian import (
    FixedLagrangianWrapper,
    LearnedLagrangianWrapper,
    VectorFixedLagrangianWrapper,
    VectorLearnedLagrangianWrapper,
)
from llm_cmdp_env.wrappers.saute import SauteWrapper, VectorSauteWrapper
from llm_cmdp_env.wrappers.stats import CostEpisodeStatistics, VectorCostEpisodeStatistics
from llm_cmdp_env.wrappers.worst_case import VectorWorstCaseWrapper, WorstCaseWrapper

__all__ = ["CONSTRAINTS", "apply_constraint", "apply_vector_constraint"]

#: The constraint names accepted by :func:`apply_constraint` (and ``gym.make(..., constraint=...)``),
#: each with what it does. ``None`` means ``"none"``.
CONSTRAINTS: dict[str, str] = {
    "none": "reward unchanged (task reward); episode statistics only",
    "budget": "the paper's budget reward (BudgetRewardWrapper): task reward forfeited once the episode "
              "cost exceeds the budget; needs budget",
    "saute": "Sauté RL (SauteWrapper): remaining normalised budget appended to the observation; needs budget",
    "lagrangian": "fixed-multiplier soft Lagrangian r - lam*c (FixedLagrangianWrapper); needs lam",
    "learned-lagrangian": "learned multiplier, dual ascent or PID (LearnedLagrangianWrapper); needs budget",
    "worst-case": "per-prefix mean-cost bound, absorbing violation (WorstCaseWrapper); budget is the "
                  "per-token bound",
    "distill": "pure distillation baseline, reward = -cost (DistillRewardWrapper)",
}

# name -> (single-env wrapper, vector wrapper, budget use: "required" by the wrapper, or "stats" only)
_WRAPPERS: dict[str, tuple[Any, Any, str]] = {
    "none": (None, None, "stats"),
    "budget": (BudgetRewardWrapper, VectorBudgetRewardWrapper, "required"),
    "saute": (SauteWrapper, VectorSauteWrapper, "required"),
    "lagrangian": (FixedLagrangianWrapper, VectorFixedLagrangianWrapper, "stats"),
    "learned-lagrangian": (LearnedLagrangianWrapper, VectorLearnedLagrangianWrapper, "required"),
    "worst-case": (WorstCaseWrapper, VectorWorstCaseWrapper, "required"),
    "distill": (DistillRewardWrapper, VectorDistillRewardWrapper, "stats"),
}
assert set(_WRAPPERS) == set(CONSTRAINTS)


def _resolve(constraint: str | None, budget: float | None, kwargs: dict[str, Any]) -> tuple[str, Any]:
    name = "none" if constraint is None else constraint
    if not isinstance(name, str) or name not in CONSTRAINTS:
        raise ValueError(
            f"unknown constraint {constraint!r}; accepted: None or one of {', '.join(map(repr, CONSTRAINTS))}"
        )
    single, vector, budget_use = _WRAPPERS[name]
    if budget_use == "required" and budget is None:
        raise ValueError(f"constraint {name!r} needs budget= (a float)")
    if single is None or single is DistillRewardWrapper:
        if kwargs:
            raise TypeError(f"constraint {name!r} takes no extra arguments, got {sorted(kwargs)}")
    if name == "lagrangian" and "lam" not in kwargs:
        raise ValueError("constraint 'lagrangian' needs lam= (the fixed multiplier, >= 0)")
    return name, (single, vector, budget_use)


def _stats_budget(name: str, budget: float | None) -> float | None:
    # The worst-case budget bounds the per-token mean of every prefix, not the episode sum: its
    # statistics take constraint_satisfied from the wrapper's absorbing flag instead.
    return None if name == "worst-case" else budget


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
        Passed to the constraint wrapper (e.g. ``unsafe_reward=``, ``discount=``, ``lam=``, ``lr=``,
        ``pid=``, ``penalty=``, ``terminate_on_violation=``).

    Returns
    -------
    gymnasium.Env
        ``CostEpisodeStatistics(Wrapper(env, ...))`` (or ``CostEpisodeStatistics(env)`` for ``"none"``).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the accepted ones) or a missing ``budget``/``lam``.
    """
    name, (single, _, budget_use) = _resolve(constraint, budget, kwargs)
    wrapped = env
    if single is not None:
        wrapped = single(env, budget=budget, **kwargs) if budget_use == "required" else single(env, **kwargs)
    if statistics:
        wrapped = CostEpisodeStatistics(wrapped, budget=_stats_budget(name, budget))
    return wrapped


def apply_vector_constraint(
    venv: VectorEnv,
    constraint: str | None = None,
    budget: float | None = None,
    *,
    statistics: bool = True,
    **kwargs: Any,
) -> VectorEnv:
    """Vector twin of :func:`apply_constraint`: the vector wrapper of the same name, then
    :class:`VectorCostEpisodeStatistics`. Same parameters; ``venv`` must use NEXT_STEP autoreset."""
    name, (_, vector, budget_use) = _resolve(constraint, budget, kwargs)
    wrapped = venv
    if vector is not None:
        wrapped = vector(venv, budget=budget, **kwargs) if budget_use == "required" else vector(venv, **kwargs)
    if statistics:
        wrapped = VectorCostEpisodeStatistics(wrapped, budget=_stats_budget(name, budget))
    return wrapped
