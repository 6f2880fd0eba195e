"""Constraint-handling wrappers over the (reward, cost) stream, single-env and vector.

Every wrapper reads the per-step cost from ``info["cost"]`` and works on any Gymnasium env that reports
it; each keeps the raw ``task_reward`` and ``cost`` in ``info``. See docs/wrappers.md for the equations and
docs/architecture.md for how a rule is written once and run by two adapters.

Each concept is a rule (a :class:`Constraint`) run by a single-env and a vector-env adapter:

- episode statistics: ``EpisodeStatistics`` -- :class:`CostEpisodeStatistics`, :class:`VectorCostEpisodeStatistics`
- Sauté RL (augmented state): ``Saute`` -- :class:`SauteWrapper`, :class:`VectorSauteWrapper`
- the paper's budget reward: ``BudgetReward`` -- :class:`BudgetRewardWrapper`, :class:`VectorBudgetRewardWrapper`
- fixed Lagrangian: ``FixedLagrangian`` -- :class:`FixedLagrangianWrapper`, :class:`VectorFixedLagrangianWrapper`
- learned Lagrangian: ``LearnedLagrangian`` -- :class:`LearnedLagrangianWrapper`,
  :class:`VectorLearnedLagrangianWrapper`
- worst-case per-prefix: ``WorstCase`` -- :class:`WorstCaseWrapper`, :class:`VectorWorstCaseWrapper`
- pure distillation (-cost): ``DistillReward`` -- :class:`DistillRewardWrapper`, :class:`VectorDistillRewardWrapper`
- any rule of yours: :class:`ConstraintWrapper`, :class:`VectorConstraintWrapper` (and :func:`register_constraint`)
- Safety-Gymnasium 6-tuple view and back: :class:`SafetyGymnasiumStepWrapper`, :class:`CostInfoWrapper` (and their
  ``Vector`` twins)
- by name: :func:`apply_constraint`, :func:`apply_vector_constraint`
"""

from llm_cmdp_env.wrappers.budget import BudgetReward, BudgetRewardWrapper, VectorBudgetRewardWrapper, budget_reward
from llm_cmdp_env.wrappers.constraint import Constraint, ConstraintWrapper, State, VectorConstraintWrapper
from llm_cmdp_env.wrappers.distill import DistillReward, DistillRewardWrapper, VectorDistillRewardWrapper
from llm_cmdp_env.wrappers.factory import (
    CONSTRAINTS,
    REGISTRY,
    apply_constraint,
    apply_vector_constraint,
    register_constraint,
)
from llm_cmdp_env.wrappers.lagrangian import (
    FixedLagrangian,
    FixedLagrangianWrapper,
    LagrangeMultiplier,
    LearnedLagrangian,
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
    Saute,
    SauteWrapper,
    VectorSauteWrapper,
    saute_normalised_budget,
    saute_observation_space,
)
from llm_cmdp_env.wrappers.stats import CostEpisodeStatistics, EpisodeStatistics, VectorCostEpisodeStatistics
from llm_cmdp_env.wrappers.worst_case import VectorWorstCaseWrapper, WorstCase, WorstCaseWrapper

__all__ = [
    "CONSTRAINTS",
    "REGISTRY",
    "BudgetReward",
    "BudgetRewardWrapper",
    "Constraint",
    "ConstraintWrapper",
    "CostEpisodeStatistics",
    "CostInfoWrapper",
    "DistillReward",
    "DistillRewardWrapper",
    "EpisodeStatistics",
    "FixedLagrangian",
    "FixedLagrangianWrapper",
    "LagrangeMultiplier",
    "LearnedLagrangian",
    "LearnedLagrangianWrapper",
    "SafetyGymnasiumStepWrapper",
    "Saute",
    "SauteWrapper",
    "State",
    "VectorBudgetRewardWrapper",
    "VectorConstraintWrapper",
    "VectorCostEpisodeStatistics",
    "VectorCostInfoWrapper",
    "VectorDistillRewardWrapper",
    "VectorFixedLagrangianWrapper",
    "VectorLearnedLagrangianWrapper",
    "VectorSafetyGymnasiumStepWrapper",
    "VectorSauteWrapper",
    "VectorWorstCaseWrapper",
    "WorstCase",
    "WorstCaseWrapper",
    "apply_constraint",
    "apply_vector_constraint",
    "budget_reward",
    "register_constraint",
    "saute_normalised_budget",
    "saute_observation_space",
]
