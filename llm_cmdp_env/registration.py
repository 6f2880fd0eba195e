"""Entry points behind ``gym.make("MathDistill-v0")`` and ``gym.make_vec("MathDistill-v0")``: the env and its
constraint stack in one call (so this module sits above both ``envs/`` and ``wrappers/``).

Besides the env's own keyword arguments they accept ``constraint=`` (a name from
``llm_cmdp_env.wrappers.CONSTRAINTS``), ``budget=`` and ``constraint_kwargs=`` to build the wrapper stack
in one call.
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.envs.vector import MathDistillVectorEnv
from llm_cmdp_env.wrappers import apply_constraint, apply_vector_constraint


def _refuse_time_limit(caller: Any) -> None:
    """Raise if ``caller`` (the frame that called the entry point) is ``gymnasium.make`` with a ``max_episode_steps``
    that would add a ``TimeLimit``. ``make`` consumes that argument, so the entry point can only see it there."""
    if caller.f_code.co_name != "make" or not caller.f_globals.get("__name__", "").startswith("gymnasium."):
        return
    steps = caller.f_locals.get("max_episode_steps")
    if steps is not None and steps != -1:
        raise ValueError(f"max_episode_steps={steps} is not supported by MathDistill-v0: Gymnasium's TimeLimit would "
                         "end episodes outside the env, without the answer check or episode statistics; pass "
                         f"max_new_tokens={steps} instead (an episode cut there is judged; docs/env.md)")


def make_math_distill(
    constraint: str | None = None,
    budget: float | None = None,
    constraint_kwargs: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Build ``MathDistillEnv(**env_kwargs)`` wrapped by the named constraint stack (none by default).

    ``gym.make(..., max_episode_steps=N)`` is refused: Gymnasium's ``TimeLimit`` would cut episodes from outside
    the env and its constraint stack, with no answer check (reward 0, no ``correct``) and no episode statistics,
    unlike an episode cut by ``max_new_tokens``, which is judged. ``max_new_tokens=N`` is the episode limit."""
    _refuse_time_limit(sys._getframe(1))
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
