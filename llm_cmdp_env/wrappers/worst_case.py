r"""Worst-case per-prefix constraint: the running mean cost of every prefix stays under a bound."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from llm_cmdp_env.wrappers._common import (
    check_next_step_autoreset,
    check_positive_int,
    check_real,
    copy_options,
    force_vector_reset,
    keep_raw,
    reset_mask_of,
    set_vector_info,
    step_cost,
    vector_costs,
    vector_task_rewards,
)

__all__ = ["VectorWorstCaseWrapper", "WorstCaseWrapper"]


class _WorstCaseParams:
    def __init__(self, budget: float, penalty: float, unsafe_reward: float, min_prefix: int,
                 terminate_on_violation: bool) -> None:
        self.budget = check_real(budget, "budget")
        self.penalty = check_real(penalty, "penalty")
        self.unsafe_reward = check_real(unsafe_reward, "unsafe_reward")
        self.min_prefix = check_positive_int(min_prefix, "min_prefix")
        if not isinstance(terminate_on_violation, (bool, np.bool_)):
            raise TypeError(f"terminate_on_violation must be a bool, got {terminate_on_violation!r}")
        self.terminate_on_violation = bool(terminate_on_violation)


class WorstCaseWrapper(gym.Wrapper):
    r"""Worst-case per-prefix constraint (the follow-up work, arXiv 2610.00332).

    The constraint is on every prefix, not on the expectation of the total: with
    :math:`\bar c_t = \frac1t \sum_{s=1}^{t} c_s` the mean per-token cost of the first :math:`t` tokens,

    .. math::

        \bar c_t \le d \quad \text{for every } t \ge \text{min\_prefix}.

    The first step :math:`\tau` where it fails marks the episode violated, and the violation is
    **absorbing**: later cheap tokens lower :math:`\bar c_t` but do not repair it. The reward is

    .. math::

        \tilde r_t = \begin{cases} r_t & t < \tau \\ u + p & t = \tau \\ u & t > \tau \end{cases}

    with :math:`p` = ``penalty`` (paid once) and :math:`u` = ``unsafe_reward`` (replacing the task
    reward from the violation on). With the terminal task reward of MathDistill a violating episode thus
    returns exactly :math:`u + p` (when :math:`\tau` is the last step) or :math:`(T-\tau+1)u + p`.
    ``terminate_on_violation`` ends the episode at :math:`\tau` (``info["worst_case_terminated"]``).

    ``info`` keeps ``cost`` and ``task_reward`` and adds ``prefix_mean_cost`` (:math:`\bar c_t`) and
    ``constraint_violated`` (the absorbing flag), which :class:`CostEpisodeStatistics` turns into
    ``constraint_satisfied``.

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"``.
    budget : float
        The bound :math:`d` on the mean per-token cost of every prefix (e.g. a teacher NLL in nats/token).
    penalty : float
        :math:`p`, added once at the violating step (default -1).
    unsafe_reward : float
        :math:`u`, the reward at and after the violating step (default 0).
    min_prefix : int
        Shortest prefix checked (default 1: every prefix, the first token included).
    terminate_on_violation : bool
        End the episode at the violating step (default False).
    """

    def __init__(
        self,
        env: gym.Env,
        budget: float,
        penalty: float = -1.0,
        unsafe_reward: float = 0.0,
        min_prefix: int = 1,
        terminate_on_violation: bool = False,
    ) -> None:
        super().__init__(env)
        p = _WorstCaseParams(budget, penalty, unsafe_reward, min_prefix, terminate_on_violation)
        self.budget = p.budget
        self.penalty = p.penalty
        self.unsafe_reward = p.unsafe_reward
        self.min_prefix = p.min_prefix
        self.terminate_on_violation = p.terminate_on_violation
        self._clear()

    def _clear(self) -> None:
        self.cost_sum = 0.0
        self.length = 0
        self.violated = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the env and the prefix statistics."""
        self._clear()
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, check the new prefix, and shape the reward."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        keep_raw(info, float(reward))
        self.cost_sum += cost
        self.length += 1
        mean = self.cost_sum / self.length
        newly = (not self.violated) and self.length >= self.min_prefix and mean > self.budget
        self.violated = self.violated or newly
        if not self.violated:
            new_reward = float(reward)
        elif newly:
            new_reward = self.unsafe_reward + self.penalty
        else:
            new_reward = self.unsafe_reward
        info["prefix_mean_cost"] = mean
        info["constraint_violated"] = self.violated
        if newly and self.terminate_on_violation and not (terminated or truncated):
            terminated = True
            info["worst_case_terminated"] = True
        return obs, new_reward, terminated, truncated, info


class VectorWorstCaseWrapper(VectorWrapper):
    """Vector version of :class:`WorstCaseWrapper` (NEXT_STEP autoreset); same parameters and reward.

    Per-sub-env prefix statistics are cleared on the autoreset step. ``terminate_on_violation`` works
    as in :class:`VectorBudgetRewardWrapper` (one ignored inner step, then ``reset_mask``).
    """

    def __init__(
        self,
        env: VectorEnv,
        budget: float,
        penalty: float = -1.0,
        unsafe_reward: float = 0.0,
        min_prefix: int = 1,
        terminate_on_violation: bool = False,
    ) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        p = _WorstCaseParams(budget, penalty, unsafe_reward, min_prefix, terminate_on_violation)
        self.budget = p.budget
        self.penalty = p.penalty
        self.unsafe_reward = p.unsafe_reward
        self.min_prefix = p.min_prefix
        self.terminate_on_violation = p.terminate_on_violation
        n = self.num_envs
        self.cost_sum = np.zeros(n)
        self.length = np.zeros(n, dtype=np.int64)
        self.violated = np.zeros(n, dtype=np.bool_)
        self._prev_dones = np.zeros(n, dtype=np.bool_)
        self._forced = np.zeros(n, dtype=np.bool_)

    def _clear(self, mask: np.ndarray) -> None:
        self.cost_sum[mask] = 0.0
        self.length[mask] = 0
        self.violated[mask] = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs and their prefix statistics."""
        mask = reset_mask_of(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        self._clear(mask)
        self._prev_dones[mask] = False
        self._forced[mask] = False
        return obs, infos

    def step(self, actions: Any):
        """Step all sub-envs, check each new prefix, and shape the rewards."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        terminations = np.array(terminations, dtype=np.bool_)
        truncations = np.array(truncations, dtype=np.bool_)
        if self._forced.any():
            obs, infos = force_vector_reset(self.env, self._forced, obs, infos)
            rewards[self._forced] = 0.0
            terminations[self._forced] = False
            truncations[self._forced] = False
        autoreset = self._prev_dones
        stepped = ~autoreset
        self._clear(autoreset)
        costs = vector_costs(infos, stepped, type(self).__name__)
        vector_task_rewards(infos, rewards, stepped)
        self.cost_sum[stepped] += costs[stepped]
        self.length[stepped] += 1
        mean = np.divide(self.cost_sum, self.length, out=np.zeros(self.num_envs), where=self.length > 0)
        newly = stepped & ~self.violated & (self.length >= self.min_prefix) & (mean > self.budget)
        self.violated |= newly
        shaped = np.where(self.violated, self.unsafe_reward, rewards)
        shaped = np.where(newly, self.unsafe_reward + self.penalty, shaped)
        new_rewards = np.where(stepped, shaped, rewards)
        set_vector_info(infos, "prefix_mean_cost", mean, stepped)
        set_vector_info(infos, "constraint_violated", self.violated.copy(), stepped)
        forced = np.zeros(self.num_envs, dtype=np.bool_)
        if self.terminate_on_violation:
            forced = newly & ~(terminations | truncations)
            if forced.any():
                terminations = terminations | forced
                set_vector_info(infos, "worst_case_terminated", forced, forced)
        self._forced = forced
        self._prev_dones = terminations | truncations
        return obs, new_rewards, terminations, truncations, infos
