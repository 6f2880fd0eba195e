r"""The budget reward of arXiv 2509.22921: Sauté's budget accounting without augmenting the state."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from llm_cmdp_env.wrappers._common import (
    check_next_step_autoreset,
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

__all__ = ["BudgetRewardWrapper", "VectorBudgetRewardWrapper", "budget_reward"]


def budget_reward(
    reward: Any, cost_before: Any, cost_after: Any, budget: float, unsafe_reward: float, overrun_penalty: float
) -> Any:
    r"""The budget-shaped reward of one step (scalars or arrays).

    .. math::

        \tilde r_t = \begin{cases} r_t & C_t \le d \\ \text{unsafe\_reward} & C_t > d \end{cases}
        \; - \; k\,(O_t - O_{t-1}), \qquad C_t = \sum_{s \le t} c_s,\quad O_t = \max(0, C_t - d)

    with :math:`k` = ``overrun_penalty``. The overrun term telescopes: over an episode it sums to
    :math:`-k \max(0, C_T - d)`.
    """
    if type(cost_after) is float and type(cost_before) is float:  # one env: plain floats, ~10x faster than ufuncs
        kept = unsafe_reward if cost_after > budget else reward
        if overrun_penalty == 0.0:
            return kept
        return kept - overrun_penalty * (max(0.0, cost_after - budget) - max(0.0, cost_before - budget))
    over_before = np.maximum(0.0, cost_before - budget)
    over_after = np.maximum(0.0, cost_after - budget)
    kept = np.where(cost_after > budget, unsafe_reward, reward)
    if overrun_penalty == 0.0:
        return kept
    return kept - overrun_penalty * (over_after - over_before)


class _BudgetParams:
    def __init__(self, budget: float, unsafe_reward: float, overrun_penalty: float,
                 terminate_on_violation: bool) -> None:
        self.budget = check_real(budget, "budget")
        self.unsafe_reward = check_real(unsafe_reward, "unsafe_reward")
        self.overrun_penalty = check_real(overrun_penalty, "overrun_penalty", nonnegative=True)
        if not isinstance(terminate_on_violation, (bool, np.bool_)):
            raise TypeError(f"terminate_on_violation must be a bool, got {terminate_on_violation!r}")
        self.terminate_on_violation = bool(terminate_on_violation)


class BudgetRewardWrapper(gym.Wrapper):
    r"""The paper's budget reward: Sauté's accounting, no state augmentation, no teacher at deployment.

    With :math:`C_t = \sum_{s \le t} c_s` the running cost (``info["cost"]``), :math:`d` the budget and
    :math:`O_t = \max(0, C_t - d)` the overrun,

    .. math::

        \tilde r_t = \begin{cases} r_t & C_t \le d \\ u & C_t > d \end{cases} \; - \; k\,(O_t - O_{t-1})

    where :math:`u` = ``unsafe_reward`` (the *constant* penalty form: the task reward is replaced while
    over budget) and :math:`k` = ``overrun_penalty`` (the *proportional* form: the overrun penalties of an
    episode sum to :math:`-k\,O_T`). Both may be combined. This is Sauté with :math:`\gamma = 1`,
    :math:`z_0 = 1` and :math:`z_{t+1} = 1 - C_t/d`, except that the boundary :math:`C_t = d` counts as
    within budget (the constraint is :math:`C \le d`). With ``terminate_on_violation`` the step where
    :math:`C_t > d` first holds ends the episode (``terminated=True``, ``info["budget_terminated"]``).

    No budget enters the observation: transitions are deterministic, so :math:`C_t` is a function of
    the prefix the policy already conditions on (see docs/wrappers.md for the argument and its
    assumptions).

    ``info`` keeps ``cost`` and ``task_reward`` and adds ``episode_cost`` (:math:`C_t`),
    ``budget_remaining`` (:math:`d - C_t`), ``budget_overrun`` (:math:`O_t`) and ``constraint_violated``
    (:math:`C_t > d`).

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"``.
    budget : float
        The episode cost budget :math:`d` (any finite number; costs may be negative).
    unsafe_reward : float
        :math:`u`, the reward while over budget (default 0: an over-budget episode forfeits its task
        reward; take it below the lowest return a within-budget episode can have to make every violation
        strictly worse than every satisfying episode).
    overrun_penalty : float
        :math:`k \ge 0`, the penalty per unit of overrun (default 0).
    terminate_on_violation : bool
        End the episode at the first step over budget (default False).
    """

    def __init__(
        self,
        env: gym.Env,
        budget: float,
        unsafe_reward: float = 0.0,
        overrun_penalty: float = 0.0,
        terminate_on_violation: bool = False,
    ) -> None:
        super().__init__(env)
        p = _BudgetParams(budget, unsafe_reward, overrun_penalty, terminate_on_violation)
        self.budget = p.budget
        self.unsafe_reward = p.unsafe_reward
        self.overrun_penalty = p.overrun_penalty
        self.terminate_on_violation = p.terminate_on_violation
        self.episode_cost = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the env and the running cost."""
        self.episode_cost = 0.0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and shape the reward from the running cost."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        keep_raw(info, float(reward))
        before = self.episode_cost
        self.episode_cost = before + cost
        new_reward = float(budget_reward(float(reward), before, self.episode_cost, self.budget,
                                         self.unsafe_reward, self.overrun_penalty))
        violated = self.episode_cost > self.budget
        info["episode_cost"] = self.episode_cost
        info["budget_remaining"] = self.budget - self.episode_cost
        info["budget_overrun"] = max(0.0, self.episode_cost - self.budget)
        info["constraint_violated"] = violated
        if self.terminate_on_violation and violated and not (terminated or truncated):
            terminated = True
            info["budget_terminated"] = True
        return obs, new_reward, terminated, truncated, info


class VectorBudgetRewardWrapper(VectorWrapper):
    """Vector version of :class:`BudgetRewardWrapper` (NEXT_STEP autoreset); same parameters and reward.

    Each sub-env keeps its own running cost, reset on its autoreset step (where no cost is counted and
    the zero reward passes through). With ``terminate_on_violation``, a sub-episode the wrapper ends is
    not ended in the inner vector env, so on the following step the inner env takes one more, ignored,
    step for it and is then reset with ``reset(options={"reset_mask": ...})``: seen from outside that step
    is the usual autoreset step (reset observation and info, reward 0, not done). The inner vector env
    must accept ``reset_mask`` (``SyncVectorEnv`` and ``AsyncVectorEnv`` do).
    """

    def __init__(
        self,
        env: VectorEnv,
        budget: float,
        unsafe_reward: float = 0.0,
        overrun_penalty: float = 0.0,
        terminate_on_violation: bool = False,
    ) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        p = _BudgetParams(budget, unsafe_reward, overrun_penalty, terminate_on_violation)
        self.budget = p.budget
        self.unsafe_reward = p.unsafe_reward
        self.overrun_penalty = p.overrun_penalty
        self.terminate_on_violation = p.terminate_on_violation
        self.episode_cost = np.zeros(self.num_envs)
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)
        self._forced = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs and their running costs."""
        mask = reset_mask_of(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        self.episode_cost[mask] = 0.0
        self._prev_dones[mask] = False
        self._forced[mask] = False
        return obs, infos

    def step(self, actions: Any):
        """Step all sub-envs and shape each reward from its running cost."""
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
        self.episode_cost[autoreset] = 0.0
        costs = vector_costs(infos, stepped, type(self).__name__)
        vector_task_rewards(infos, rewards, stepped)
        before = self.episode_cost.copy()
        self.episode_cost[stepped] = before[stepped] + costs[stepped]
        shaped = budget_reward(rewards, before, self.episode_cost, self.budget, self.unsafe_reward,
                               self.overrun_penalty)
        new_rewards = np.where(stepped, shaped, rewards)
        violated = self.episode_cost > self.budget
        set_vector_info(infos, "episode_cost", self.episode_cost.copy(), stepped)
        set_vector_info(infos, "budget_remaining", self.budget - self.episode_cost, stepped)
        set_vector_info(infos, "budget_overrun", np.maximum(0.0, self.episode_cost - self.budget), stepped)
        set_vector_info(infos, "constraint_violated", violated, stepped)
        inner_done = terminations | truncations
        forced = np.zeros(self.num_envs, dtype=np.bool_)
        if self.terminate_on_violation:
            forced = stepped & violated & ~inner_done
            if forced.any():
                terminations = terminations | forced
                set_vector_info(infos, "budget_terminated", forced, forced)
        self._forced = forced
        self._prev_dones = terminations | truncations
        return obs, new_rewards, terminations, truncations, infos
