r"""The learned Lagrange multiplier: dual ascent or PID on episode costs toward a budget.

Not a wrapper: :class:`~llm_cmdp_env.wrappers.lagrangian.LearnedLagrangian` shapes the reward with it, and a
trainer, an evaluation or several envs may hold (and share) the same one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from llm_cmdp_env.common.validation import check_positive_int, check_real

__all__ = ["SETTINGS", "LagrangeMultiplier"]


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
        return {f: getattr(self, f) for f in SETTINGS}

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


#: The multiplier's parameters (the fields of :class:`LagrangeMultiplier` a caller sets), read off the dataclass.
SETTINGS: tuple[str, ...] = tuple(f.name for f in fields(LagrangeMultiplier) if f.init)
