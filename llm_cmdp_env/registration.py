"""Entry points behind ``gym.make("MathDistill-v0")`` and ``gym.make_vec("MathDistill-v0")``: the env and its
constraint stack in one call (so this module sits above both ``envs/`` and ``wrappers/``).

Besides the env's own keyword arguments they accept ``constraint=`` (a name from
``llm_cmdp_env.wrappers.CONSTRAINTS``), ``budget=`` and ``constraint_kwargs=`` to build the wrapper stack
in one call.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.envs.vector import MathDistillVectorEnv
from llm_cmdp_env.wrappers import apply_constraint, apply_vector_constraint


def make_math_distill(
    constraint: str | None = None,
    budget: float | None = None,
    constraint_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Build ``MathDistillEnv(**env_kwargs)`` wrapped by the named constraint stack (none by default)."""
    env: gym.Env = MathDistillEnv(**env_kwargs)
    if constraint is None and budget is None and not constraint_kwargs:
        return env
    return apply_constraint(env, constraint, budget=budget, **(constraint_kwargs or {}))


def make_math_distill_vector(
    num_envs: int = 1,
    constraint: str | None = None,
    budget: float | None = None,
    constraint_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """Build the native ``MathDistillVectorEnv`` wrapped by the named vector constraint stack."""
    venv: gym.vector.VectorEnv = MathDistillVectorEnv(num_envs=num_envs, **env_kwargs)
    if constraint is None and budget is None and not constraint_kwargs:
        return venv
    return apply_vector_constraint(venv, constraint, budget=budget, **(constraint_kwargs or {}))
