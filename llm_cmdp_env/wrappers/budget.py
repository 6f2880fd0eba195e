r"""The budget reward of arXiv 2509.22921: Sauté's budget accounting without augmenting the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from llm_cmdp_env.common.validation import check_bool, check_real
from llm_cmdp_env.wrappers.constraint import Constraint, State, maximum, named_wrappers, where

__all__ = ["BudgetReward", "BudgetRewardWrapper", "VectorBudgetRewardWrapper", "budget_reward"]


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
    kept = where(cost_after > budget, unsafe_reward, reward)
    if overrun_penalty == 0.0:
        return kept
    return kept - overrun_penalty * (maximum(0.0, cost_after - budget) - maximum(0.0, cost_before - budget))


@dataclass
class BudgetReward(Constraint):
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

    budget: float
    unsafe_reward: float = 0.0
    overrun_penalty: float = 0.0
    terminate_on_violation: bool = False

    state_fields: ClassVar[dict[str, float | bool | int]] = {"episode_cost": 0.0}
    terminated_key: ClassVar[str] = "budget_terminated"

    def __post_init__(self) -> None:
        self.budget = check_real(self.budget, "budget")
        self.unsafe_reward = check_real(self.unsafe_reward, "unsafe_reward")
        self.overrun_penalty = check_real(self.overrun_penalty, "overrun_penalty", nonnegative=True)
        self.terminate_on_violation = check_bool(self.terminate_on_violation, "terminate_on_violation")

    def step(self, state: State, reward: Any, cost: Any, info: Any) -> tuple:
        before = state.episode_cost
        after = state.episode_cost = before + cost
        d = self.budget
        violated = after > d
        new_reward = budget_reward(reward, before, after, d, self.unsafe_reward, self.overrun_penalty)
        extra = {"episode_cost": after, "budget_remaining": d - after, "budget_overrun": maximum(0.0, after - d),
                 "constraint_violated": violated}
        return new_reward, extra, violated if self.terminate_on_violation else False



BudgetRewardWrapper, VectorBudgetRewardWrapper = named_wrappers(BudgetReward, "BudgetRewardWrapper")
