"""Constraint-handling wrappers over the (reward, cost) stream, single-env and vector.

Every wrapper reads the per-step cost from ``info["cost"]`` and works on any Gymnasium env that reports
it; each keeps the raw ``task_reward`` and ``cost`` in ``info``. See docs/wrappers.md for the equations and
docs/architecture.md for how a rule is written once and run by two adapters.

Each concept is a rule (a :class:`Constraint`) run by :class:`ConstraintWrapper` (one env) or
:class:`VectorConstraintWrapper` (a vector env): the episode statistics (:class:`EpisodeStatistics`), Sauté RL
(:class:`Saute`), the paper's budget reward (:class:`BudgetReward`), a fixed or learned Lagrange multiplier
(:class:`FixedLagrangian`, :class:`LearnedLagrangian` with :class:`LagrangeMultiplier`), the worst-case per-prefix
bound (:class:`WorstCase`) and pure distillation (:class:`DistillReward`). By name: :func:`apply_constraint`,
:func:`apply_vector_constraint` and the one registry :data:`REGISTRY` (:func:`register_constraint` adds a rule,
:func:`constraint_spec` says what a name's budget means and what it adds to the observation). The named classes of
the built-in rules (``BudgetRewardWrapper``, ``VectorSauteWrapper``, ``CostEpisodeStatistics``, ...) are these
adapters with their rule (:func:`~llm_cmdp_env.wrappers.constraint.named_wrappers`), importable from here.
Safety-Gymnasium's 6-tuple view and back: :class:`SafetyGymnasiumStepWrapper`, :class:`CostInfoWrapper` (and their
``Vector`` twins).
"""

from llm_cmdp_env.wrappers.budget import BudgetReward, BudgetRewardWrapper, VectorBudgetRewardWrapper, budget_reward
from llm_cmdp_env.wrappers.constraint import Constraint, ConstraintWrapper, State, VectorConstraintWrapper
from llm_cmdp_env.wrappers.distill import DistillReward, DistillRewardWrapper, VectorDistillRewardWrapper
from llm_cmdp_env.wrappers.factory import (
    CONSTRAINTS,
    REGISTRY,
    apply_constraint,
    apply_vector_constraint,
    constraint_spec,
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
from llm_cmdp_env.wrappers.saute import Saute, SauteWrapper, VectorSauteWrapper, saute_normalised_budget
from llm_cmdp_env.wrappers.stats import CostEpisodeStatistics, EpisodeStatistics, VectorCostEpisodeStatistics
from llm_cmdp_env.wrappers.worst_case import VectorWorstCaseWrapper, WorstCase, WorstCaseWrapper

__all__ = [
    "CONSTRAINTS", "REGISTRY", "BudgetReward", "BudgetRewardWrapper", "Constraint", "ConstraintWrapper",
    "CostEpisodeStatistics", "CostInfoWrapper", "DistillReward", "DistillRewardWrapper", "EpisodeStatistics",
    "FixedLagrangian", "FixedLagrangianWrapper", "LagrangeMultiplier", "LearnedLagrangian", "LearnedLagrangianWrapper",
    "SafetyGymnasiumStepWrapper", "Saute", "SauteWrapper", "State", "VectorBudgetRewardWrapper",
    "VectorConstraintWrapper", "VectorCostEpisodeStatistics", "VectorCostInfoWrapper", "VectorDistillRewardWrapper",
    "VectorFixedLagrangianWrapper", "VectorLearnedLagrangianWrapper", "VectorSafetyGymnasiumStepWrapper",
    "VectorSauteWrapper", "VectorWorstCaseWrapper", "WorstCase", "WorstCaseWrapper", "apply_constraint",
    "apply_vector_constraint", "budget_reward", "constraint_spec", "register_constraint", "saute_normalised_budget",
]
