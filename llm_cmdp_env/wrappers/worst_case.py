r"""Worst-case per-prefix constraint: the running mean cost of every prefix stays under a bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from llm_cmdp_env.common.validation import check_bool, check_positive_int, check_real
from llm_cmdp_env.wrappers.constraint import Constraint, State, named_wrappers, not_, where

__all__ = ["VectorWorstCaseWrapper", "WorstCase", "WorstCaseWrapper"]


@dataclass
class WorstCase(Constraint):
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
    ``constraint_violated`` (the absorbing flag), which :class:`~llm_cmdp_env.wrappers.CostEpisodeStatistics`
    turns into ``constraint_satisfied``.

    Parameters
    ----------
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

    budget: float
    penalty: float = -1.0
    unsafe_reward: float = 0.0
    min_prefix: int = 1
    terminate_on_violation: bool = False

    state_fields: ClassVar[dict[str, float | bool | int]] = {"cost_sum": 0.0, "length": 0, "violated": False}
    terminated_key: ClassVar[str] = "worst_case_terminated"

    def __post_init__(self) -> None:
        self.budget = check_real(self.budget, "budget")
        self.penalty = check_real(self.penalty, "penalty")
        self.unsafe_reward = check_real(self.unsafe_reward, "unsafe_reward")
        self.min_prefix = check_positive_int(self.min_prefix, "min_prefix")
        self.terminate_on_violation = check_bool(self.terminate_on_violation, "terminate_on_violation")

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        total = state.cost_sum = state.cost_sum + cost
        length = state.length = state.length + 1
        mean = total / length
        newly = not_(state.violated) & (length >= self.min_prefix) & (mean > self.budget)
        violated = state.violated = state.violated | newly
        u = self.unsafe_reward
        new_reward = where(newly, u + self.penalty, where(violated, u, reward))
        extra = {"prefix_mean_cost": mean, "constraint_violated": violated}
        return new_reward, extra, newly if self.terminate_on_violation else False



WorstCaseWrapper, VectorWorstCaseWrapper = named_wrappers(WorstCase, "WorstCaseWrapper")
