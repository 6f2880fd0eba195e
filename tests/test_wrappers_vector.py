"""Vector wrappers agree step by step with SyncVectorEnv of the single-env wrappers, across autoresets."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from llm_cmdp_env.wrappers import LagrangeMultiplier, apply_constraint, apply_vector_constraint
from tests.fake_cmdp import FakeCMDP, assert_obs_equal, assert_vector_infos_equal

CONFIGS: list[tuple[str | None, float | None, dict[str, Any]]] = [
    (None, None, {}),
    ("none", 3.0, {}),
    ("budget", 3.0, {"unsafe_reward": -1.0, "overrun_penalty": 0.5}),
    ("budget", 2.5, {"unsafe_reward": -1.0, "terminate_on_violation": True}),
    ("saute", 3.0, {"unsafe_reward": -1.0}),
    ("saute", 3.0, {"discount": 0.9, "min_rel_budget": 0.5, "max_rel_budget": 1.5}),
    ("lagrangian", None, {"lam": 0.3}),
    ("learned-lagrangian", 2.0, {"lr": 0.2}),
    ("learned-lagrangian", 2.0, {"pid": (0.1, 0.2, 0.3), "update_every": 2}),
    ("worst-case", 0.8, {}),
    ("worst-case", 0.8, {"terminate_on_violation": True, "min_prefix": 2, "penalty": -2.0}),
    ("distill", None, {}),
]


def _id(cfg):
    name, budget, kwargs = cfg
    return f"{name}-{budget}-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def _pair(name, budget, kwargs, n, obs_type):
    def fake():
        return FakeCMDP(vocab_size=5, max_steps=5, obs_type=obs_type)

    kwargs_a = dict(kwargs)
    kwargs_b = dict(kwargs)
    shared = None
    if name == "learned-lagrangian":
        # The vector wrapper holds one multiplier; the single-env copies share another, built alike.
        rule = {k: kwargs[k] for k in ("lr", "pid", "update_every") if k in kwargs}
        kwargs_a = {"multiplier": LagrangeMultiplier(budget, **rule)}
        shared = LagrangeMultiplier(budget, **rule)
        kwargs_b = {"multiplier": shared}
    vec = apply_vector_constraint(gym.vector.SyncVectorEnv([fake for _ in range(n)]), name, budget, **kwargs_a)
    singles = gym.vector.SyncVectorEnv(
        [lambda: apply_constraint(fake(), name, budget, **kwargs_b) for _ in range(n)]
    )
    return vec, singles, kwargs_a.get("multiplier"), shared


@pytest.mark.parametrize("cfg", CONFIGS, ids=_id)
def test_vector_agrees_with_single(cfg):
    name, budget, kwargs = cfg
    n, steps = 3, 90
    obs_type = "box" if name == "saute" and "discount" in kwargs else "dict"
    vec, singles, mult_a, mult_b = _pair(name, budget, kwargs, n, obs_type)
    assert vec.single_observation_space == singles.single_observation_space

    obs_a, info_a = vec.reset(seed=11)
    obs_b, info_b = singles.reset(seed=11)
    assert_obs_equal(obs_a, obs_b)
    assert_vector_infos_equal(info_a, info_b)
    rng = np.random.default_rng(0)
    ends = autoresets = violations = forced = 0
    prev_done = np.zeros(n, dtype=bool)
    for _ in range(steps):
        actions = np.where(rng.random(n) < 0.2, 0, rng.integers(1, 5, n))
        obs_a, r_a, term_a, trunc_a, info_a = vec.step(actions)
        obs_b, r_b, term_b, trunc_b, info_b = singles.step(actions)
        assert_obs_equal(obs_a, obs_b)
        np.testing.assert_array_equal(r_a, r_b)
        np.testing.assert_array_equal(term_a, term_b)
        np.testing.assert_array_equal(trunc_a, trunc_b)
        assert_vector_infos_equal(info_a, info_b)
        autoresets += int(prev_done.sum())
        if "constraint_violated" in info_a:
            violations += int((info_a["constraint_violated"] & info_a["_constraint_violated"]).sum())
        forced += sum(int(info_a.get(k, np.zeros(n)).sum()) for k in ("budget_terminated", "worst_case_terminated"))
        prev_done = term_a | trunc_a
        ends += int(prev_done.sum())
    assert ends >= 10 and autoresets >= 10  # the run did cross many autoresets
    if name in ("budget", "saute", "learned-lagrangian", "worst-case"):
        assert violations >= 5  # ... and many constraint violations
    if kwargs.get("terminate_on_violation"):
        assert forced >= 3  # ... and wrapper-ended sub-episodes
    if mult_a is not None:
        assert mult_a.num_updates > 2 and mult_a.state_dict() == mult_b.state_dict()


def test_vector_wrappers_pass_reset_mask_through():
    # A partial reset (reset_mask) resets only the masked sub-envs' wrapper state, at every layer.
    vec, singles, _, _ = _pair("budget", 2.0, {"terminate_on_violation": True}, 2, "dict")
    for env in (vec, singles):
        env.reset(seed=0)
        env.step(np.array([4, 4]))
    mask = np.array([True, False])
    _, info = vec.reset(options={"reset_mask": mask})
    inner = vec.env  # VectorBudgetRewardWrapper under the statistics
    assert inner.episode_cost.tolist() == [0.0, 2.0]
    assert info["_prompt"].tolist() == [True, False]
