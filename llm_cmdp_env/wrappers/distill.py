r"""Pure distillation baseline: the reward is the negative cost, the task reward is ignored."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from llm_cmdp_env.wrappers._common import (
    check_next_step_autoreset,
    copy_options,
    keep_raw,
    reset_mask_of,
    step_cost,
    vector_costs,
    vector_task_rewards,
)

__all__ = ["DistillRewardWrapper", "VectorDistillRewardWrapper"]


class DistillRewardWrapper(gym.Wrapper):
    r"""Pure distillation: :math:`\tilde r_t = -c_t`.

    Maximising the return minimises the episode divergence :math:`\sum_t c_t` from the teacher (with
    ``teacher_nll`` this is sequence-level likelihood under the teacher; with ``log_ratio`` it is on-policy
    reverse-KL distillation). The task reward stays in ``info["task_reward"]`` for evaluation.
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and return :math:`-c`."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = step_cost(info, type(self).__name__)
        keep_raw(info, float(reward))
        return obs, -cost, terminated, truncated, info


class VectorDistillRewardWrapper(VectorWrapper):
    r"""Vector version of :class:`DistillRewardWrapper`: :math:`\tilde r = -c` per sub-env (0 on the
    autoreset step)."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        check_next_step_autoreset(env, type(self).__name__)
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset the (masked) sub-envs."""
        mask = reset_mask_of(options, self.num_envs)
        obs, infos = self.env.reset(seed=seed, options=copy_options(options))
        self._prev_dones[mask] = False
        return obs, infos

    def step(self, actions: Any):
        """Step all sub-envs and return :math:`-c`."""
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        stepped = ~self._prev_dones
        costs = vector_costs(infos, stepped, type(self).__name__)
        rewards = np.asarray(rewards, dtype=np.float64)
        vector_task_rewards(infos, rewards, stepped)
        new_rewards = np.where(stepped, -costs, rewards)
        self._prev_dones = np.logical_or(terminations, truncations)
        return obs, new_rewards, terminations, truncations, infos
