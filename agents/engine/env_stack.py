"""Helpers that look inside a wrapper stack: find a wrapper, save/restore every random generator and every
learned multiplier (what an exact resume needs besides the model and optimiser)."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np

from llm_cmdp_env.wrappers import Constraint, ConstraintWrapper, EpisodeStatistics

__all__ = ["env_state", "find_rule", "find_wrapper", "load_env_state", "stack_budget", "wrapper_chain"]

W = TypeVar("W", bound=gym.Env)
R = TypeVar("R", bound=Constraint)


def wrapper_chain(env: gym.Env) -> list[gym.Env]:
    """``[env, env.env, ..., env.unwrapped]``: every layer of a single-env wrapper stack, outermost first."""
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def find_wrapper(env: gym.Env, cls: type[W]) -> W | None:
    """The outermost layer of ``env`` that is an instance of ``cls``, or None."""
    for layer in wrapper_chain(env):
        if isinstance(layer, cls):
            return layer
    return None


def find_rule(env: gym.Env, cls: type[R]) -> R | None:
    """The rule of the outermost constraint wrapper of ``env`` whose rule is an instance of ``cls``, or None."""
    for layer in wrapper_chain(env):
        if isinstance(layer, ConstraintWrapper) and isinstance(layer.constraint, cls):
            return layer.constraint
    return None


def stack_budget(env: gym.Env) -> float | None:
    """The episode-cost budget the stack's episode statistics check ``constraint_satisfied`` against (None without
    statistics, without a budget, or for a rule whose budget bounds something else, e.g. worst-case's)."""
    stats = find_rule(env, EpisodeStatistics)
    return None if stats is None else stats.budget


def _generators(env: gym.Env) -> dict[str, np.random.Generator]:
    """Every numpy generator the stack draws from (the base env's ``np_random``, each constraint wrapper's own
    ``rng``), keyed by layer index and name."""
    out = {}
    for i, layer in enumerate(wrapper_chain(env)):
        if isinstance(layer, ConstraintWrapper) and layer.rng is not None:
            out[f"{i}:{type(layer).__name__}.rng"] = layer.rng
        elif not isinstance(layer, gym.Wrapper):
            out[f"{i}:{type(layer).__name__}.np_random"] = layer.np_random
    return out


def env_state(env: gym.Env) -> dict[str, Any]:
    """Random-generator states and learned-multiplier states of a wrapper stack (plain picklable values)."""
    rngs = {k: copy.deepcopy(g.bit_generator.state) for k, g in _generators(env).items()}
    multipliers = {}
    for i, layer in enumerate(wrapper_chain(env)):
        if isinstance(layer, ConstraintWrapper) and hasattr(layer.constraint, "state_dict"):
            multipliers[f"{i}:{type(layer).__name__}"] = layer.constraint.state_dict()
    return {"rngs": rngs, "multipliers": multipliers}


def load_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Restore :func:`env_state` output into a stack built the same way (same layers, same order)."""
    chain = wrapper_chain(env)
    for key, st in state["rngs"].items():
        idx, rest = key.split(":", 1)
        layer = chain[int(idx)]
        name, attr = rest.split(".", 1)
        if type(layer).__name__ != name:
            raise ValueError(f"saved generator {key!r} does not match the env stack layer {type(layer).__name__}")
        g = np.random.default_rng()
        g.bit_generator.state = st
        setattr(layer, attr, g)
    for key, st in state["multipliers"].items():
        idx, name = key.split(":", 1)
        layer = chain[int(idx)]
        if type(layer).__name__ != name:
            raise ValueError(f"saved multiplier of {name} does not match the env stack layer {type(layer).__name__}")
        layer.constraint.load_state_dict(st)
