r"""Lagrangian reward shaping: a fixed multiplier, and a learned one (dual ascent or PID)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from llm_cmdp_env.wrappers._common import (
    check_next_step_autoreset,
    check_positive_int,
    check_real,
    copy_options,
    keep_raw,
    reset_mask_of,
    set_vector_info,
    step_cost,
    vector_costs,
    vector_task_rewards,
)

__all__ = [
    "FixedLagrangianWrapper",
    "LagrangeMultiplier",
    "LearnedLagrangianWrapper",
    "VectorFixedLagrangianWrapper",
    "VectorLearnedLagrangianWrapper",
]


# ------------------------------------------------------------------------------------------------ fixed


class FixedLagrangianWrapper(gym.Wrapper):
    r"""The soft Lagrangian relaxation baseline: :math:`\tilde r_t = r_t - \lambda c_t` with a fixed
    :math:`\lambda \ge 0`.

    ``info`` keeps ``cost`` and ``task_reward`` and adds ``lagrange_multiplier``. :math:`\lambda = 0` is the
    task reward alone; large :math:`\lambda` approaches pure distillation.

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"``.
    lam : float
        The multiplier :math:`\lambda \ge 0`.
    """

    def __init__(self, env: gym.Env, lam: float) -> None:
        super().__init__(env)
        self.lam = check_real(lam, "lam", nonnegative=True)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and return :math:`r - \\lambda c`."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        keep_raw(info, float(reward))
        info["lagrange_multiplier"] = self.lam
        return obs, float(reward) - self.lam * cost, terminated, truncated, info


class VectorFixedLagrangianWrapper(VectorWrapper):
    r"""Vector version of :class:`FixedLagrangianWrapper`: :math:`\tilde r = r - \lambda c` per sub-env
    (the autoreset step's zero reward passes through)."""

    def __init__(self, env: VectorEnv, lam: float) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        self.lam = check_real(lam, "lam", nonnegative=True)
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs."""
        mask = reset_mask_of(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        self._prev_dones[mask] = False
        return obs, infos

    def step(self, actions: Any):
        """Step all sub-envs and return :math:`r - \\lambda c`."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        stepped = ~self._prev_dones
        costs = vector_costs(infos, stepped, type(self).__name__)
        rewards = np.asarray(rewards, dtype=np.float64)
        vector_task_rewards(infos, rewards, stepped)
        new_rewards = np.where(stepped, rewards - self.lam * costs, rewards)
        set_vector_info(infos, "lagrange_multiplier", np.full(self.num_envs, self.lam), stepped)
        self._prev_dones = np.logical_or(terminations, truncations)
        return obs, new_rewards, terminations, truncations, infos


# ----------------------------------------------------------------------------------------- multiplier


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

    def __init__(
        self,
        budget: float,
        lr: float | None = None,
        pid: tuple[float, float, float] | None = None,
        lam_init: float = 0.0,
        lam_max: float = 100.0,
        update_every: int = 1,
    ) -> None:
        self.budget = check_real(budget, "budget")
        if pid is not None and lr is not None:
            raise ValueError("give either lr= (dual ascent) or pid=(kp, ki, kd), not both")
        if pid is None:
            self.lr: float | None = check_real(0.05 if lr is None else lr, "lr", positive=True)
            self.pid: tuple[float, float, float] | None = None
        else:
            gains = tuple(pid)
            if len(gains) != 3:
                raise ValueError(f"pid must be a tuple (kp, ki, kd), got {pid!r}")
            self.pid = tuple(check_real(g, f"pid[{i}]", nonnegative=True) for i, g in enumerate(gains))
            self.lr = None
        self.lam_max = check_real(lam_max, "lam_max", positive=True, allow_inf=True)
        self.lam_init = check_real(lam_init, "lam_init", nonnegative=True)
        if self.lam_init > self.lam_max:
            raise ValueError(f"lam_init ({self.lam_init}) must be <= lam_max ({self.lam_max})")
        self.update_every = check_positive_int(update_every, "update_every")
        self.value = self.lam_init
        ki = self.pid[1] if self.pid is not None else 0.0
        self.integral = self.lam_init / ki if ki > 0 else 0.0
        self.prev_cost: float | None = None
        self.pending: list[float] = []
        self.num_updates = 0

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
            "settings": {
                "budget": self.budget, "lr": self.lr, "pid": list(self.pid) if self.pid else None,
                "lam_init": self.lam_init, "lam_max": self.lam_max, "update_every": self.update_every,
            },
        }

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


def _make_multiplier(
    multiplier: LagrangeMultiplier | None,
    budget: float | None,
    lr: float | None,
    pid: tuple[float, float, float] | None,
    lam_init: float,
    lam_max: float,
    update_every: int,
) -> LagrangeMultiplier:
    if multiplier is not None:
        if not isinstance(multiplier, LagrangeMultiplier):
            raise TypeError(f"multiplier must be a LagrangeMultiplier, got {type(multiplier).__name__}")
        if budget is not None and check_real(budget, "budget") != multiplier.budget:
            raise ValueError(f"budget={budget} differs from the shared multiplier's budget {multiplier.budget}")
        return multiplier
    if budget is None:
        raise ValueError("budget is required (or pass a shared multiplier=LagrangeMultiplier(...))")
    return LagrangeMultiplier(budget, lr=lr, pid=pid, lam_init=lam_init, lam_max=lam_max,
                              update_every=update_every)


class LearnedLagrangianWrapper(gym.Wrapper):
    r"""Lagrangian shaping with a learned multiplier: :math:`\tilde r_t = r_t - \lambda_e c_t`.

    :math:`\lambda_e` is the multiplier's value when episode :math:`e` began (it stays fixed within an
    episode, so an episode's return is one consistent objective). When an episode ends, its cost
    :math:`C = \sum_t c_t` goes to the :class:`LagrangeMultiplier` (dual ascent or PID toward the budget
    :math:`d`; see there for the equations), unless ``auto_update=False``, in which case an external
    trainer feeds costs itself with :meth:`update`. Several envs may share one multiplier
    (``multiplier=``).

    ``info`` keeps ``cost`` and ``task_reward`` and adds ``lagrange_multiplier`` (:math:`\lambda_e`),
    ``episode_cost`` (running :math:`C_t`) and ``constraint_violated`` (:math:`C_t > d`). An algorithm that
    prefers to rebuild the Lagrangian itself (separate reward and cost critics) can read those.

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"``.
    budget : float
        The episode cost budget :math:`d` (may be omitted when ``multiplier`` is given).
    lr, pid, lam_init, lam_max, update_every
        As in :class:`LagrangeMultiplier` (defaults: dual ascent, ``lr=0.05``, ``lam_init=0``,
        ``lam_max=100``, ``update_every=1``).
    auto_update : bool
        Feed every finished episode's cost to the multiplier (default True).
    multiplier : LagrangeMultiplier, optional
        A multiplier to use (and share) instead of building one.
    """

    def __init__(
        self,
        env: gym.Env,
        budget: float | None = None,
        lr: float | None = None,
        pid: tuple[float, float, float] | None = None,
        lam_init: float = 0.0,
        lam_max: float = 100.0,
        update_every: int = 1,
        auto_update: bool = True,
        multiplier: LagrangeMultiplier | None = None,
    ) -> None:
        super().__init__(env)
        self.multiplier = _make_multiplier(multiplier, budget, lr, pid, lam_init, lam_max, update_every)
        self.budget = self.multiplier.budget
        self.auto_update = bool(auto_update)
        self.episode_lam = self.multiplier.value
        self.episode_cost = 0.0

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
        """Restore the multiplier's state; the next episode uses the restored value."""
        self.multiplier.load_state_dict(state)
        self.episode_lam = self.multiplier.value

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the env; the new episode uses the multiplier's current value."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_lam = self.multiplier.value
        self.episode_cost = 0.0
        info["lagrange_multiplier"] = self.episode_lam
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, return :math:`r - \\lambda_e c`, feed the episode cost at the end."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        keep_raw(info, float(reward))
        self.episode_cost += cost
        info["lagrange_multiplier"] = self.episode_lam
        info["episode_cost"] = self.episode_cost
        info["constraint_violated"] = self.episode_cost > self.budget
        if (terminated or truncated) and self.auto_update:
            self.multiplier.observe(self.episode_cost)
        return obs, float(reward) - self.episode_lam * cost, terminated, truncated, info


class VectorLearnedLagrangianWrapper(VectorWrapper):
    """Vector version of :class:`LearnedLagrangianWrapper`: ONE multiplier for all sub-envs.

    Each sub-episode uses the multiplier's value at its (auto)reset. Finished sub-episodes are fed to
    the multiplier in sub-env order within a step, and a sub-env autoresetting at a step sees the updates
    made by lower-indexed sub-envs finishing at that same step: the same order as ``SyncVectorEnv`` of
    :class:`LearnedLagrangianWrapper` sharing one multiplier, which it matches step by step.
    Same parameters as the single-env wrapper.
    """

    def __init__(
        self,
        env: VectorEnv,
        budget: float | None = None,
        lr: float | None = None,
        pid: tuple[float, float, float] | None = None,
        lam_init: float = 0.0,
        lam_max: float = 100.0,
        update_every: int = 1,
        auto_update: bool = True,
        multiplier: LagrangeMultiplier | None = None,
    ) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        self.multiplier = _make_multiplier(multiplier, budget, lr, pid, lam_init, lam_max, update_every)
        self.budget = self.multiplier.budget
        self.auto_update = bool(auto_update)
        self.episode_lam = np.full(self.num_envs, self.multiplier.value)
        self.episode_cost = np.zeros(self.num_envs)
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)

    @property
    def lam(self) -> float:
        """The multiplier's current value."""
        return self.multiplier.value

    def update(self, episode_costs: float | Iterable[float]) -> float:
        """Update the multiplier from finished episodes' costs (for trainers that feed it themselves)."""
        return self.multiplier.update(episode_costs)

    def state_dict(self) -> dict[str, Any]:
        """The multiplier's state."""
        return self.multiplier.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the multiplier's state (sub-episodes started later use the restored value)."""
        self.multiplier.load_state_dict(state)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs; their episodes use the multiplier's current value."""
        mask = reset_mask_of(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        self.episode_lam[mask] = self.multiplier.value
        self.episode_cost[mask] = 0.0
        self._prev_dones[mask] = False
        set_vector_info(infos, "lagrange_multiplier", self.episode_lam.copy(), mask)
        return obs, infos

    def step(self, actions: Any):
        """Step all sub-envs, return :math:`r - \\lambda_e c`, feed finished episodes' costs in order."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        autoreset = self._prev_dones
        stepped = ~autoreset
        costs = vector_costs(infos, stepped, type(self).__name__)
        rewards = np.asarray(rewards, dtype=np.float64)
        vector_task_rewards(infos, rewards, stepped)
        dones = np.logical_or(terminations, truncations)
        self.episode_cost[stepped] += costs[stepped]
        new_rewards = np.where(stepped, rewards - self.episode_lam * costs, rewards)
        lam_at_step = self.episode_lam.copy()
        for i in range(self.num_envs):
            if autoreset[i]:
                self.episode_lam[i] = self.multiplier.value
                self.episode_cost[i] = 0.0
                lam_at_step[i] = self.episode_lam[i]
            elif dones[i] and self.auto_update:
                self.multiplier.observe(float(self.episode_cost[i]))
        all_envs = np.ones(self.num_envs, dtype=np.bool_)
        set_vector_info(infos, "lagrange_multiplier", lam_at_step, all_envs)
        set_vector_info(infos, "episode_cost", self.episode_cost.copy(), stepped)
        set_vector_info(infos, "constraint_violated", self.episode_cost > self.budget, stepped)
        self._prev_dones = dones
        return obs, new_rewards, terminations, truncations, infos
