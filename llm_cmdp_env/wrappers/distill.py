r"""Pure distillation baseline: the reward is the negative cost, the task reward is ignored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm_cmdp_env.wrappers.constraint import Constraint, State, named_wrappers

__all__ = ["DistillReward", "DistillRewardWrapper", "VectorDistillRewardWrapper"]


@dataclass
class DistillReward(Constraint):
    r"""Pure distillation: :math:`\tilde r_t = -c_t`.

    Maximising the return minimises the episode divergence :math:`\sum_t c_t` from the teacher (with
    ``teacher_nll`` this is sequence-level likelihood under the teacher; with ``log_ratio`` it is on-policy
    reverse-KL distillation). The task reward stays in ``info["task_reward"]`` for evaluation.
    """

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        return -cost, {}



DistillRewardWrapper, VectorDistillRewardWrapper = named_wrappers(DistillReward, "DistillRewardWrapper")
