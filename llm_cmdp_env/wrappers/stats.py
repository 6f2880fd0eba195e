"""Episode statistics that include the cost (Gymnasium's own recorder drops it)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from llm_cmdp_env.wrappers._common import (
    check_next_step_autoreset,
    check_positive_int,
    check_real,
    copy_options,
    reset_mask_of,
    step_cost,
    vector_costs,
)

__all__ = ["CostEpisodeStatistics", "VectorCostEpisodeStatistics"]


def _episode_dict(
    ret: float,
    cost: float,
    length: int,
    elapsed: float,
    task_return: float | None,
    max_prefix_mean: float,
    budget: float | None,
    violated_flag: bool | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "r": float(ret),
        "c": float(cost),
        "l": int(length),
        "t": float(round(elapsed, 6)),
        "c_max_prefix_mean": float(max_prefix_mean),
    }
    if task_return is not None:
        out["task_r"] = float(task_return)
    if budget is not None:
        out["constraint_satisfied"] = bool(cost <= budget)
    elif violated_flag is not None:
        out["constraint_satisfied"] = not bool(violated_flag)
    return out


class CostEpisodeStatistics(gym.Wrapper):
    r"""Record episode return, cost and length in ``info["episode"]`` when an episode ends.

    At the step where ``terminated or truncated`` is true, ``info[stats_key]`` is a dict with

    - ``"r"``: the episode return :math:`\sum_t r_t` of the rewards *as this wrapper sees them* (so,
      placed outermost, the shaped reward the learner optimises);
    - ``"c"``: the episode cost :math:`C = \sum_t c_t` (from ``info["cost"]``);
    - ``"l"``: the episode length; ``"t"``: wall-clock seconds since the reset;
    - ``"task_r"``: :math:`\sum_t` ``info["task_reward"]`` (the raw task return), when the env reports it;
    - ``"c_max_prefix_mean"``: :math:`\max_t \frac1t\sum_{s\le t} c_s`, the statistic of the worst-case
      per-prefix constraint;
    - ``"constraint_satisfied"``: with a ``budget`` :math:`d`, whether :math:`C \le d`; without one,
      ``not info["constraint_violated"]`` of the last step when a constraint wrapper underneath reports
      that flag (the worst-case wrapper does); otherwise the key is **absent**.

    An inner recorder's dict under the same key (e.g. stable-baselines3's ``Monitor``) is extended,
    these keys winning. The last ``buffer_length`` episodes are also kept in ``return_queue``,
    ``cost_queue`` and ``length_queue``.

    Parameters
    ----------
    env : gymnasium.Env
        Any env whose step info carries ``"cost"``.
    budget : float, optional
        The episode cost budget :math:`d` used for ``constraint_satisfied``.
    buffer_length : int
        Size of the queues of recent episodes (default 100).
    stats_key : str
        Info key of the statistics (default ``"episode"``, what stable-baselines3 reads).
    """

    def __init__(
        self, env: gym.Env, budget: float | None = None, buffer_length: int = 100, stats_key: str = "episode"
    ) -> None:
        super().__init__(env)
        self.budget = None if budget is None else check_real(budget, "budget")
        self.stats_key = stats_key
        n = check_positive_int(buffer_length, "buffer_length")
        self.return_queue: deque[float] = deque(maxlen=n)
        self.cost_queue: deque[float] = deque(maxlen=n)
        self.length_queue: deque[int] = deque(maxlen=n)
        self.episode_count = 0
        self._clear()

    def _clear(self) -> None:
        self._ret = 0.0
        self._cost = 0.0
        self._len = 0
        self._task_ret: float | None = None
        self._max_prefix_mean = -np.inf
        self._violated: bool | None = None
        self._start = time.perf_counter()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Reset the env and the running sums."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._clear()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, accumulate reward and cost, and report the statistics at the episode end."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        self._ret += float(reward)
        self._cost += cost
        self._len += 1
        self._max_prefix_mean = max(self._max_prefix_mean, self._cost / self._len)
        if "task_reward" in info:
            self._task_ret = (self._task_ret or 0.0) + float(info["task_reward"])
        if "constraint_violated" in info:
            self._violated = bool(info["constraint_violated"])
        if terminated or truncated:
            ep = _episode_dict(
                self._ret, self._cost, self._len, time.perf_counter() - self._start, self._task_ret,
                self._max_prefix_mean, self.budget, self._violated,
            )
            prior = info.get(self.stats_key)
            info[self.stats_key] = {**prior, **ep} if isinstance(prior, dict) else ep
            self.episode_count += 1
            self.return_queue.append(ep["r"])
            self.cost_queue.append(ep["c"])
            self.length_queue.append(ep["l"])
        return obs, reward, terminated, truncated, info


class VectorCostEpisodeStatistics(VectorWrapper):
    """Vector version of :class:`CostEpisodeStatistics` (NEXT_STEP autoreset).

    For each sub-env ``i`` whose episode ends at this step, ``infos[stats_key]`` holds the same entries
    as the single-env wrapper (arrays, each with its ``_key`` mask) and ``infos["_" + stats_key][i]`` is
    true: exactly what ``SyncVectorEnv`` of :class:`CostEpisodeStatistics`-wrapped envs reports. The
    autoreset step that follows an episode end counts toward no episode.

    Parameters
    ----------
    env : gymnasium.vector.VectorEnv
        A vector env with NEXT_STEP autoreset whose infos carry ``"cost"``.
    budget, buffer_length, stats_key
        As in :class:`CostEpisodeStatistics`.
    """

    def __init__(
        self, env: VectorEnv, budget: float | None = None, buffer_length: int = 100, stats_key: str = "episode"
    ) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        self.budget = None if budget is None else check_real(budget, "budget")
        self.stats_key = stats_key
        n = check_positive_int(buffer_length, "buffer_length")
        self.return_queue: deque[float] = deque(maxlen=n)
        self.cost_queue: deque[float] = deque(maxlen=n)
        self.length_queue: deque[int] = deque(maxlen=n)
        self.episode_count = 0
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)
        self._clear(np.ones(self.num_envs, dtype=np.bool_), first=True)

    def _clear(self, mask: np.ndarray, first: bool = False) -> None:
        n = self.num_envs
        if first:
            self._ret = np.zeros(n)
            self._cost = np.zeros(n)
            self._len = np.zeros(n, dtype=np.int64)
            self._task_ret = np.zeros(n)
            self._has_task = np.zeros(n, dtype=np.bool_)
            self._max_prefix_mean = np.full(n, -np.inf)
            self._violated = np.zeros(n, dtype=np.bool_)
            self._has_violated = np.zeros(n, dtype=np.bool_)
            self._start = np.full(n, time.perf_counter())
        self._ret[mask] = 0.0
        self._cost[mask] = 0.0
        self._len[mask] = 0
        self._task_ret[mask] = 0.0
        self._has_task[mask] = False
        self._max_prefix_mean[mask] = -np.inf
        self._violated[mask] = False
        self._has_violated[mask] = False
        self._start[mask] = time.perf_counter()

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs and their running sums."""
        mask = reset_mask_of(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        self._clear(mask)
        self._prev_dones[mask] = False
        return obs, infos

    def step(self, actions: Any):
        """Step all sub-envs; report statistics for those whose episode ends now."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        autoreset = self._prev_dones
        self._clear(autoreset)
        stepped = ~autoreset
        costs = vector_costs(infos, stepped, type(self).__name__)
        rewards_arr = np.asarray(rewards, dtype=np.float64)
        self._ret[stepped] += rewards_arr[stepped]
        self._cost[stepped] += costs[stepped]
        self._len[stepped] += 1
        means = np.divide(self._cost, self._len, out=np.full(self.num_envs, -np.inf), where=self._len > 0)
        self._max_prefix_mean[stepped] = np.maximum(self._max_prefix_mean[stepped], means[stepped])
        if "task_reward" in infos:
            have = np.asarray(infos.get("_task_reward", np.ones(self.num_envs, bool)), dtype=np.bool_) & stepped
            self._task_ret[have] += np.asarray(infos["task_reward"], dtype=np.float64)[have]
            self._has_task |= have
        if "constraint_violated" in infos:
            have = np.asarray(infos.get("_constraint_violated", np.ones(self.num_envs, bool)), dtype=np.bool_)
            have &= stepped
            self._violated[have] = np.asarray(infos["constraint_violated"], dtype=np.bool_)[have]
            self._has_violated |= have

        dones = np.logical_or(terminations, truncations)
        now = time.perf_counter()
        for i in np.flatnonzero(dones):
            ep = _episode_dict(
                self._ret[i], self._cost[i], int(self._len[i]), now - self._start[i],
                float(self._task_ret[i]) if self._has_task[i] else None, self._max_prefix_mean[i],
                self.budget, bool(self._violated[i]) if self._has_violated[i] else None,
            )
            infos = self._add_info(infos, {self.stats_key: ep}, int(i))
            self.episode_count += 1
            self.return_queue.append(ep["r"])
            self.cost_queue.append(ep["c"])
            self.length_queue.append(ep["l"])
        self._prev_dones = dones.copy()
        return obs, rewards, terminations, truncations, infos
