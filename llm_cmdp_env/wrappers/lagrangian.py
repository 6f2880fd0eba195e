r"""Lagrangian reward shaping: a fixed multiplier, and a learned one (dual ascent or PID)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from llm_cmdp_env.validation import check_bool, check_positive_int, check_real
from llm_cmdp_env.wrappers.constraint import Constraint, State, named_wrappers

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


# ----------------------------------------------------------------------------------------- multiplier


@dataclass(eq=False)  # a mutable object shared by identity
class LagrangeMultiplier:
    r"""A Lagrange multiplier :math:`\lambda \in [0, \lambda_{\max}]` learned from episode costs.

    Each update takes a batch of finished episodes' costs :math:`C^{(1..m)}`, their mean
    :math:`J_C = \frac1m \sum_j C^{(j)}`, and the violation :math:`\Delta = J_C - d`.

    *Dual ascent* (default):

    .. math:: \lambda \leftarrow \operatorname{clip}(\lambda + \eta\,\Delta,\; 0,\; \lambda_{\max})

    *PID* (Stooke, Achiam & Abbeel 2020, "Responsive Safety in RL by PID Lagrangian Methods",
    Alg. 2, without the EMA smoothing), with gains :math:`(K_P, K_I, K_D)`:

    .. math::

        I &\leftarrow \operatorname{clip}(I + \Delta,\; 0,\; \lambda_{\max}/K_I) \\
        \partial &= \max(0,\; J_C - J_C^{\text{prev}}) \quad (0 \text{ at the first update}) \\
        \lambda &\leftarrow \operatorname{clip}(K_P \Delta + K_I I + K_D \partial,\; 0,\; \lambda_{\max})

    The integral starts at :math:`I_0 = \lambda_{\text{init}} / K_I` (0 when :math:`K_I = 0`) and is
    bounded (anti-windup), so ``pid=(0, eta, 0)`` is dual ascent with rate :math:`\eta`.

    Finished episodes can be fed one at a time with :meth:`observe` (an update every ``update_every``
    episodes, on their mean) or as a batch with :meth:`update`. :meth:`state_dict` /
    :meth:`load_state_dict` save and restore everything that evolves, so a resumed run continues
    exactly.

    Parameters
    ----------
    budget : float
        The episode cost budget :math:`d`.
    lr : float, optional
        Dual ascent rate :math:`\eta > 0` (default 0.05). Not allowed together with ``pid``.
    pid : tuple of 3 floats, optional
        Gains :math:`(K_P, K_I, K_D) \ge 0` for the PID update instead of dual ascent.
    lam_init : float
        Initial :math:`\lambda` (default 0).
    lam_max : float
        Upper bound :math:`\lambda_{\max} > 0` (default 100; ``inf`` allowed).
    update_every : int
        Episodes per automatic update in :meth:`observe` (default 1).
    """

    budget: float
    lr: float | None = None
    pid: tuple[float, float, float] | None = None
    lam_init: float = 0.0
    lam_max: float = 100.0
    update_every: int = 1
    value: float = field(init=False)  # what evolves (state_dict)
    integral: float = field(init=False)
    prev_cost: float | None = field(init=False, default=None)
    pending: list[float] = field(init=False, default_factory=list)
    num_updates: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.budget = check_real(self.budget, "budget")
        if self.pid is not None and self.lr is not None:
            raise ValueError("give either lr= (dual ascent) or pid=(kp, ki, kd), not both")
        if self.pid is None:
            self.lr = check_real(0.05 if self.lr is None else self.lr, "lr", positive=True)
        else:
            gains = tuple(self.pid)
            if len(gains) != 3:
                raise ValueError(f"pid must be a tuple (kp, ki, kd), got {self.pid!r}")
            self.pid = tuple(check_real(g, f"pid[{i}]", nonnegative=True) for i, g in enumerate(gains))
        self.lam_max = check_real(self.lam_max, "lam_max", positive=True, allow_inf=True)
        self.lam_init = check_real(self.lam_init, "lam_init", nonnegative=True)
        if self.lam_init > self.lam_max:
            raise ValueError(f"lam_init ({self.lam_init}) must be <= lam_max ({self.lam_max})")
        self.update_every = check_positive_int(self.update_every, "update_every")
        self.value = self.lam_init
        ki = self.pid[1] if self.pid is not None else 0.0
        self.integral = self.lam_init / ki if ki > 0 else 0.0

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        rule = f"pid={self.pid}" if self.pid is not None else f"lr={self.lr}"
        return f"LagrangeMultiplier(value={self.value}, budget={self.budget}, {rule}, lam_max={self.lam_max})"

    def observe(self, episode_cost: float) -> bool:
        """Queue one finished episode's cost; update once ``update_every`` are queued.

        Returns
        -------
        bool
            Whether an update happened.
        """
        self.pending.append(check_real(episode_cost, "episode_cost"))
        if len(self.pending) >= self.update_every:
            batch, self.pending = self.pending, []
            self.update(batch)
            return True
        return False

    def update(self, episode_costs: float | Iterable[float]) -> float:
        """One update from a batch of finished episodes' costs (their mean is :math:`J_C`).

        Returns
        -------
        float
            The new :math:`\\lambda`.
        """
        costs = [episode_costs] if isinstance(episode_costs, (int, float, np.number)) else list(episode_costs)
        if not costs:
            raise ValueError("update() needs at least one episode cost")
        jc = float(np.mean([check_real(c, "episode cost") for c in costs]))
        delta = jc - self.budget
        if self.pid is None:
            assert self.lr is not None
            self.value = min(max(self.value + self.lr * delta, 0.0), self.lam_max)
        else:
            kp, ki, kd = self.pid
            i_max = self.lam_max / ki if ki > 0 else math.inf
            self.integral = min(max(self.integral + delta, 0.0), i_max)
            deriv = 0.0 if self.prev_cost is None else max(0.0, jc - self.prev_cost)
            # a saturated integral contributes exactly lam_max (ki * (lam_max / ki) may round one ulp below)
            i_term = self.lam_max if self.integral >= i_max else ki * self.integral
            self.value = min(max(kp * delta + i_term + kd * deriv, 0.0), self.lam_max)
        self.prev_cost = jc
        self.num_updates += 1
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """Everything that evolves (plain Python values, JSON-serialisable), plus the settings for reference."""
        return {
            "value": self.value,
            "integral": self.integral,
            "prev_cost": self.prev_cost,
            "pending": list(self.pending),
            "num_updates": self.num_updates,
            "settings": {**self.settings(), "pid": list(self.pid) if self.pid else None},
        }

    def settings(self) -> dict[str, Any]:
        """The parameters it was built with (``LagrangeMultiplier(**m.settings())`` builds a fresh copy)."""
        return {f: getattr(self, f) for f in _SETTINGS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the settings of this instance are kept)."""
        value = check_real(state["value"], "state['value']", nonnegative=True)
        if value > self.lam_max:
            raise ValueError(f"state['value'] = {value} exceeds lam_max = {self.lam_max}")
        self.value = value
        self.integral = float(state["integral"])
        self.prev_cost = None if state["prev_cost"] is None else float(state["prev_cost"])
        self.pending = [float(c) for c in state["pending"]]
        self.num_updates = int(state["num_updates"])


#: The multiplier's parameters (the fields of :class:`LagrangeMultiplier` a caller sets).
_SETTINGS = ("budget", "lr", "pid", "lam_init", "lam_max", "update_every")


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
        ``lr``, ``pid``, ``lam_init``, ``lam_max``, ``update_every``: as in :class:`LagrangeMultiplier` (defaults:
        dual ascent, ``lr=0.05``, ``lam_init=0``, ``lam_max=100``, ``update_every=1``); ignored when a
        ``multiplier`` is given.
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
        elif not isinstance(multiplier, LagrangeMultiplier):
            raise TypeError(f"multiplier must be a LagrangeMultiplier, got {type(multiplier).__name__}")
        elif budget is not None and check_real(budget, "budget") != multiplier.budget:
            raise ValueError(f"budget={budget} differs from the shared multiplier's budget {multiplier.budget}")
        self.multiplier, self.budget = multiplier, multiplier.budget
        self.auto_update = check_bool(auto_update, "auto_update")

    def __getattr__(self, name: str) -> Any:  # lr, pid, lam_init, lam_max, update_every: the multiplier's
        if name in _SETTINGS and "multiplier" in self.__dict__:
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
