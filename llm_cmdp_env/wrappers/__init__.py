"""Constraint-handling wrappers over the (reward, cost) stream, single-env and vector.

Every wrapper reads the per-step cost from ``info["cost"]`` and works on any Gymnasium env that reports
it; each keeps the raw ``task_reward`` and ``cost`` in ``info``. See docs/wrappers.md for the equations.

==============================  ========================================  =====================================
concept                         single env                                vector env (NEXT_STEP autoreset)
==============================  ========================================  =====================================
episode statistics with cost    :class:`CostEpisodeStatistics`            :class:`VectorCostEpisodeStatistics`
Sauté RL (augmented state)      :class:`SauteWrapper`                     :class:`VectorSauteWrapper`
the paper's budget reward       :class:`BudgetRewardWrapper`              :class:`VectorBudgetRewardWrapper`
fixed Lagrangian                :class:`FixedLagrangianWrapper`           :class:`VectorFixedLagrangianWrapper`
learned Lagrangian              :class:`LearnedLagrangianWrapper`         :class:`VectorLearnedLagrangianWrapper`
worst-case per-prefix           :class:`WorstCaseWrapper`                 :class:`VectorWorstCaseWrapper`
pure distillation (-cost)       :class:`DistillRewardWrapper`             :class:`VectorDistillRewardWrapper`
Safety-Gymnasium 6-tuple view   :class:`SafetyGymnasiumStepWrapper`       :class:`VectorSafetyGymnasiumStepWrapper`
6-tuple back to info["cost"]    :class:`CostInfoWrapper`                  :class:`VectorCostInfoWrapper`
by name                         :func:`apply_constraint`                  :func:`apply_vector_constraint`
==============================  ========================================  =====================================
"""

from llm_cmdp_env.wrappers.budget import BudgetRewardWrapper, VectorBudgetRewardWrapper, budget_reward
from llm_cmdp_env.wrappers.distill import DistillRewardWrapper, VectorDistillRewardWrapper
from llm_cmdp_env.wrappers.factory import CONSTRAINTS, apply_constraint, apply_vector_constraint
from llm_cmdp_env.wrappers.lagrangian import (
    FixedLagrangianWrapper,
    LagrangeMultiplier,
    LearnedLagrangianWrapper,
    VectorFixedLagrangianWrapper,
    VectorLearnedLagrangianWrapper,
)
from llm_cmdp_env.wrappers.safety_gym import (
    CostInfoWrapper,
    SafetyGymnasiumStepWrapper,
    VectorCostInfoWrapper,
    VectorSafetyGymnasiumStepWrapper,
)
from llm_cmdp_env.wrappers.saute import (
    SauteWrapper,
    VectorSauteWrapper,
    saute_normalised_budget,
    saute_observation_space,
)
from llm_cmdp_env.wrappers.stats import CostEpisodeStatistics, VectorCostEpisodeStatistics
from llm_cmdp_env.wrappers.worst_case import VectorWorstCaseWrapper, WorstCaseWrapper

__all__ = [
    "CONSTRAINTS",
    "BudgetRewardWrapper",
    "CostEpisodeStatistics",
    "CostInfoWrapper",
    "DistillRewardWrapper",
    "FixedLagrangianWrapper",
    "LagrangeMultiplier",
    "LearnedLagrangianWrapper",
    "SafetyGymnasiumStepWrapper",
    "SauteWrapper",
    "VectorBudgetRewardWrapper",
    "VectorCostEpisodeStatistics",
    "VectorCostInfoWrapper",
    "VectorDistillRewardWrapper",
    "VectorFixedLagrangianWrapper",
    "VectorLearnedLagrangianWrapper",
    "VectorSafetyGymnasiumStepWrapper",
    "VectorSauteWrapper",
    "VectorWorstCaseWrapper",
    "WorstCaseWrapper",
    "apply_constraint",
    "apply_vector_constraint",
    "budget_reward",
    "saute_normalised_budget",
    "saute_observation_space",
]
