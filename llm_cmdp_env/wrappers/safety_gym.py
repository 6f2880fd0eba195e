"""Interop with Safety-Gymnasium's 6-tuple ``step`` API, both ways.

Safety-Gymnasium learners (and OmniSafe) expect ``step -> (obs, reward, cost, terminated, truncated,
info)``; this project's convention is Gymnasium's 5-tuple with the cost in ``info["cost"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorWrapper

from llm_cmdp_env.wrappers.constraint import Constraint, State, VectorConstraintWrapper, step_cost

__all__ = [
    "CostInfoWrapper",
    "SafetyGymnasiumStepWrapper",
    "VectorCostInfoWrapper",
    "VectorSafetyGymnasiumStepWrapper",
]


class SafetyGymnasiumStepWrapper(gym.Wrapper):
    """View an env with ``info["cost"]`` through Safety-Gymnasium's 6-tuple ``step``.

    ``step(action) -> (obs, reward, cost, terminated, truncated, info)`` with ``cost = info["cost"]``
    (a float; ``info`` is left as it is, ``"cost"`` included). ``reset`` is unchanged. Undo with
    :class:`CostInfoWrapper`.
    """

    def step(self, action: Any) -> tuple[Any, float, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        """Step the env and return the 6-tuple."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        return obs, reward, cost, terminated, truncated, info


class CostInfoWrapper(gym.Wrapper):
    """Turn a Safety-Gymnasium 6-tuple env back into a Gymnasium 5-tuple env with ``info["cost"]``.

    ``step(action) -> (obs, reward, terminated, truncated, info)`` with ``info["cost"] = cost`` (the
    6-tuple's cost wins over any ``"cost"`` already in ``info``). Any constraint wrapper of this package
    can then go on top of a Safety-Gymnasium task.
    """

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the 6-tuple env and return the 5-tuple."""
        result = self.env.step(action)
        if len(result) != 6:
            raise ValueError(
                f"CostInfoWrapper wraps envs whose step returns 6 values (obs, reward, cost, terminated, "
                f"truncated, info), got {len(result)}"
            )
        obs, reward, cost, terminated, truncated, info = result
        info = dict(info)
        info["cost"] = np.float64(cost)
        return obs, reward, terminated, truncated, info


@dataclass
class _PassThrough(Constraint):
    """Leaves the stream as it is (the 6-tuple view only reads the costs the adapter collects)."""

    shapes_reward: ClassVar[bool] = False

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        return reward, {}


class VectorSafetyGymnasiumStepWrapper(VectorConstraintWrapper):
    """Vector 6-tuple view: ``step -> (obs, rewards, costs, terminations, truncations, infos)``.

    ``costs`` is ``infos["cost"]`` where its mask is set and 0 on the NEXT_STEP autoreset step.
    """

    rule = _PassThrough

    def step(self, actions: Any):  # type: ignore[override]
        """Step all sub-envs and return the 6-tuple."""
        obs, rewards, terminations, truncations, infos = super().step(actions)
        return obs, rewards, self.last_costs.copy(), terminations, truncations, infos


class VectorCostInfoWrapper(VectorWrapper):
    """Turn a vector 6-tuple env into a 5-tuple one with ``infos["cost"]`` (mask set for every sub-env)."""

    def step(self, actions: Any):
        """Step the 6-tuple vector env and return the 5-tuple."""
        result = self.env.step(actions)
        if len(result) != 6:
            raise ValueError(f"VectorCostInfoWrapper wraps 6-tuple vector envs, got a {len(result)}-tuple")
        obs, rewards, costs, terminations, truncations, infos = result
        infos = dict(infos)
        infos["cost"] = np.asarray(costs, dtype=np.float64)
        infos["_cost"] = np.ones(self.num_envs, dtype=np.bool_)
        return obs, rewards, terminations, truncations, infos
