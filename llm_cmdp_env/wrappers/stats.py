"""Episode statistics that include the cost (Gymnasium's own recorder drops it)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from llm_cmdp_env.common.validation import check_positive_int, check_real
from llm_cmdp_env.wrappers.constraint import Constraint, State, maximum, named_wrappers, where

__all__ = ["CostEpisodeStatistics", "EpisodeStatistics", "VectorCostEpisodeStatistics"]


class _Queues:
    """The most recent episodes' returns, costs and lengths, and the number of episodes finished."""

    def __init__(self, n: int) -> None:
        self.return_queue: deque[float] = deque(maxlen=n)
        self.cost_queue: deque[float] = deque(maxlen=n)
        self.length_queue: deque[int] = deque(maxlen=n)
        self.episode_count = 0


@dataclass
class EpisodeStatistics(Constraint):
    r"""Record episode return, cost and length in ``info["episode"]`` when an episode ends.

    At the step where ``terminated or truncated`` is true, ``info[stats_key]`` is a dict with

    - ``"r"``: the episode return :math:`\sum_t r_t` of the rewards *as this wrapper sees them* (so,
      placed outermost, the shaped reward the learner optimises);
    - ``"c"``: the episode cost :math:`C = \sum_t c_t` (from ``info["cost"]``);
    - ``"l"``: the episode length; ``"t"``: wall-clock seconds since the reset (on the fast path's side-by-side
      replay, since the start of the episodes run side by side);
    - ``"task_r"``: :math:`\sum_t` ``info["task_reward"]`` (the raw task return), when the env reports it;
    - ``"c_max_prefix_mean"``: :math:`\max_t \frac1t\sum_{s\le t} c_s`, the statistic of the worst-case
      per-prefix constraint;
    - ``"constraint_satisfied"``: with a ``budget`` :math:`d`, whether :math:`C \le d`; without one,
      ``not info["constraint_violated"]`` of the last step when a constraint wrapper underneath reports
      that flag (the worst-case wrapper does); otherwise the key is **absent**.

    An inner recorder's dict under the same key (e.g. stable-baselines3's ``Monitor``) is extended,
    these keys winning. The last ``buffer_length`` episodes are also kept in ``return_queue``,
    ``cost_queue`` and ``length_queue`` (``episode_count`` counts them all). In a vector env the entries are
    arrays with their ``_key`` masks, exactly what ``SyncVectorEnv`` of single wrappers reports; the autoreset
    step that follows an episode end counts toward no episode.

    Parameters
    ----------
    budget : float, optional
        The episode cost budget :math:`d` used for ``constraint_satisfied``.
    buffer_length : int
        Size of the queues of recent episodes (default 100).
    stats_key : str
        Info key of the statistics (default ``"episode"``, what stable-baselines3 reads).
    """

    budget: float | None = None
    buffer_length: int = 100
    stats_key: str = "episode"
    queues: _Queues = field(init=False, compare=False, repr=False, default=None)  # type: ignore[assignment]

    state_fields: ClassVar[dict[str, float | bool | int]] = {
        "ret": 0.0, "cost": 0.0, "length": 0, "task_ret": 0.0, "has_task": False, "max_prefix_mean": -np.inf,
        "violated": False, "has_violated": False, "t0": 0.0,
    }
    shapes_reward: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.budget is not None:
            self.budget = check_real(self.budget, "budget")
        self.queues = _Queues(check_positive_int(self.buffer_length, "buffer_length"))

    def __getattr__(self, name: str) -> Any:  # return_queue, cost_queue, length_queue, episode_count
        queues = self.__dict__.get("queues")
        if queues is not None and name in vars(queues):
            return getattr(queues, name)
        raise AttributeError(name)

    def start(self, state: State, rngs: Any) -> dict[str, np.ndarray]:
        state.t0[:] = time.perf_counter()
        return {}

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        state.ret = state.ret + reward
        c = state.cost = state.cost + cost
        n = state.length = state.length + 1
        state.max_prefix_mean = maximum(state.max_prefix_mean, c / n)
        task, has = info.get("task_reward")
        if task is not None:
            state.task_ret = state.task_ret + where(has, task, 0.0)
            state.has_task = state.has_task | has
        violated, has = info.get("constraint_violated")
        if violated is not None:
            state.violated = where(has, violated, state.violated)
            state.has_violated = state.has_violated | has
        return reward, {}

    def episodes_until_start_changes(self) -> int | None:
        return None  # finish records the episode; start reads nothing it changes

    def finish(self, state: State) -> dict[str, Any]:
        ep: dict[str, Any] = {
            "r": float(state.ret),
            "c": float(state.cost),
            "l": int(state.length),
            "t": float(round(time.perf_counter() - state.t0, 6)),
            "c_max_prefix_mean": float(state.max_prefix_mean),
        }
        if state.has_task:
            ep["task_r"] = float(state.task_ret)
        if self.budget is not None:
            ep["constraint_satisfied"] = bool(state.cost <= self.budget)
        elif state.has_violated:
            ep["constraint_satisfied"] = not bool(state.violated)
        q = self.queues
        q.episode_count += 1
        q.return_queue.append(ep["r"])
        q.cost_queue.append(ep["c"])
        q.length_queue.append(ep["l"])
        return {self.stats_key: ep}



CostEpisodeStatistics, VectorCostEpisodeStatistics = named_wrappers(EpisodeStatistics, "CostEpisodeStatistics")
