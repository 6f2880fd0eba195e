r"""Lagrangian reward shaping: a fixed multiplier, and a learned one (dual ascent or PID, by a
:class:`~llm_cmdp_env.wrappers.multiplier.LagrangeMultiplier`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from llm_cmdp_env.common.validation import check_bool, check_real
from llm_cmdp_env.wrappers.constraint import Constraint, State, named_wrappers
from llm_cmdp_env.wrappers.multiplier import SETTINGS, LagrangeMultiplier

__all__ = ["FixedLagrangian", "LagrangeMultiplier", "LearnedLagrangian"]


# ------------------------------------------------------------------------------------------------ fixed


@dataclass
class FixedLagrangian(Constraint):
    r"""The soft Lagrangian relaxation baseline: :math:`\tilde r_t = r_t - \lambda c_t` with a fixed
    :math:`\lambda \ge 0`.

    ``info`` keeps ``cost`` and ``task_reward`` and adds ``lagrange_multiplier``. :math:`\lambda = 0` is the
    task reward alone; large :math:`\lambda` approaches pure distillation.

    Parameters
    ----------
    lam : float
        The multiplier :math:`\lambda \ge 0`.
    """

    lam: float

    def __post_init__(self) -> None:
        self.lam = check_real(self.lam, "lam", nonnegative=True)

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        return reward - self.lam * cost, {"lagrange_multiplier": self.lam}


FixedLagrangianWrapper, VectorFixedLagrangianWrapper = named_wrappers(FixedLagrangian, "FixedLagrangianWrapper")


@dataclass(init=False)
class LearnedLagrangian(Constraint):
    r"""Lagrangian shaping with a learned multiplier: :math:`\tilde r_t = r_t - \lambda_e c_t`.

    :math:`\lambda_e` is the multiplier's value when episode :math:`e` began (it stays fixed within an
    episode, so an episode's return is one consistent objective). When an episode ends, its cost
    :math:`C = \sum_t c_t` goes to the :class:`LagrangeMultiplier` (dual ascent or PID toward the budget
    :math:`d`; see there for the equations), unless ``auto_update=False``, in which case an external
    trainer feeds costs itself with :meth:`update`. Several envs may share one multiplier
    (``multiplier=``); a vector env's sub-envs share one, fed in sub-env order, and a sub-env starting an
    episode at a step sees the updates of lower-indexed sub-envs ending theirs at that step (the order of
    ``SyncVectorEnv`` of single wrappers sharing one multiplier).

    ``info`` keeps ``cost`` and ``task_reward`` and adds ``lagrange_multiplier`` (:math:`\lambda_e`; also in
    the reset info), ``episode_cost`` (running :math:`C_t`) and ``constraint_violated`` (:math:`C_t > d`). An
    algorithm that prefers to rebuild the Lagrangian itself (separate reward and cost critics) can read those.

    Parameters
    ----------
    budget : float
        The episode cost budget :math:`d` (may be omitted when ``multiplier`` is given).
    **settings
        The other parameters of :class:`~llm_cmdp_env.wrappers.multiplier.LagrangeMultiplier` (:data:`SETTINGS`, with
        its defaults); not allowed with a ``multiplier``.
    auto_update : bool
        Feed every finished episode's cost to the multiplier (default True).
    multiplier : LagrangeMultiplier, optional
        A multiplier to use (and share) instead of building one.
    """

    budget: float | None
    auto_update: bool
    multiplier: LagrangeMultiplier = field(compare=False)

    state_fields: ClassVar[dict[str, float | bool | int]] = {"episode_lam": 0.0, "episode_cost": 0.0}
    learns_from_episodes: ClassVar[bool] = True

    def __init__(self, budget: float | None = None, *, auto_update: bool = True,
                 multiplier: LagrangeMultiplier | None = None, **settings: Any) -> None:
        if multiplier is None:
            if budget is None:
                raise ValueError("budget is required (or pass a shared multiplier=LagrangeMultiplier(...))")
            multiplier = LagrangeMultiplier(budget, **settings)
        elif settings:  # a shared multiplier keeps its own settings: never drop the caller's silently
            raise TypeError(f"{sorted(settings)} set the multiplier's parameters: not allowed with multiplier=")
        elif not isinstance(multiplier, LagrangeMultiplier):
            raise TypeError(f"multiplier must be a LagrangeMultiplier, got {type(multiplier).__name__}")
        elif budget is not None and check_real(budget, "budget") != multiplier.budget:
            raise ValueError(f"budget={budget} differs from the shared multiplier's budget {multiplier.budget}")
        self.multiplier, self.budget = multiplier, multiplier.budget
        self.auto_update = check_bool(auto_update, "auto_update")

    def __getattr__(self, name: str) -> Any:  # lr, pid, lam_init, lam_max, update_every: the multiplier's
        if name in SETTINGS and "multiplier" in self.__dict__:
            return getattr(self.multiplier, name)
        raise AttributeError(name)

    @property
    def lam(self) -> float:
        """The multiplier's current value (used from the next episode on)."""
        return self.multiplier.value

    def update(self, episode_costs: float | Iterable[float]) -> float:
        """Update the multiplier from finished episodes' costs (for trainers that feed it themselves)."""
        return self.multiplier.update(episode_costs)

    def state_dict(self) -> dict[str, Any]:
        """The multiplier's state (save between episodes; the env itself is not saved)."""
        return self.multiplier.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the multiplier's state; episodes started from now on use the restored value."""
        self.multiplier.load_state_dict(state)

    def start(self, state: State, rngs: Any) -> dict[str, np.ndarray]:
        state.episode_lam[:] = self.multiplier.value
        return {"lagrange_multiplier": state.episode_lam.copy()}

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        lam = state.episode_lam
        c = state.episode_cost = state.episode_cost + cost
        extra = {"lagrange_multiplier": lam, "episode_cost": c, "constraint_violated": c > self.budget}
        return reward - lam * cost, extra

    def episodes_until_start_changes(self) -> int | None:
        r"""The multiplier changes (and with it the next episodes' :math:`\lambda_e`) at the episode end that
        completes its next batch of ``update_every``."""
        if not self.auto_update:
            return None
        return max(1, self.multiplier.update_every - len(self.multiplier.pending))

    def finish(self, state: State) -> dict[str, Any]:
        if self.auto_update:
            self.multiplier.observe(state.episode_cost)
        return {}



LearnedLagrangianWrapper, VectorLearnedLagrangianWrapper = named_wrappers(LearnedLagrangian,
                                                                          "LearnedLagrangianWrapper")
