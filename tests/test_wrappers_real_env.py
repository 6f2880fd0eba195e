"""Integration of the wrappers with the real MathDistill-v0 (tiny random models from conftest)."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.monitor import Monitor

from llm_cmdp_env.wrappers import CONSTRAINTS, SauteWrapper, apply_constraint, budget_reward
from tests.test_wrappers_sb3 import assert_finite_losses_and_statistics, ppo_smoke

math_distill = pytest.importorskip("llm_cmdp_env.envs.math_distill")
MathDistillEnv = math_distill.MathDistillEnv

BUDGET = 30.0  # random tiny models cost ~6 nats/token: episodes of 12 tokens overspend midway
KWARGS = {"lagrangian": {"lam": 0.1}, "worst-case": {}}
BUDGETS = {"worst-case": 5.5}


def play(env, seed: int):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    out = []
    while True:
        obs, r, term, trunc, info = env.step(int(rng.integers(0, env.action_space.n)))
        out.append((float(r), info))
        if term or trunc:
            return out


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_make_with_each_constraint(tiny_env_kwargs, name):
    budget = BUDGETS.get(name, BUDGET)
    env = gym.make("MathDistill-v0", constraint=name, budget=budget, constraint_kwargs=KWARGS.get(name),
                   **tiny_env_kwargs)
    steps = play(env, seed=3)
    costs = [i["cost"] for _, i in steps]
    ep = steps[-1][1]["episode"]
    assert ep["l"] == len(steps) and ep["c"] == pytest.approx(sum(costs), rel=1e-12)
    assert ep["r"] == pytest.approx(sum(r for r, _ in steps), rel=1e-12)
    assert isinstance(ep["constraint_satisfied"], bool)
    task = [i["task_reward"] + i.get("format_reward", 0.0) for _, i in steps]
    shaped = [r for r, _ in steps]
    if name == "none":
        assert shaped == task
    elif name == "distill":
        assert shaped == [-c for c in costs]
    elif name == "lagrangian":
        assert shaped == pytest.approx([t - 0.1 * c for t, c in zip(task, costs)])
    elif name == "budget":
        cum = np.cumsum([0.0] + costs)
        assert shaped == pytest.approx([float(budget_reward(t, cum[k], cum[k + 1], budget, 0.0, 0.0))
                                        for k, t in enumerate(task)])
    elif name == "saute":
        assert env.observation_space["saute_budget"].shape == (1,)
        assert steps[-1][1]["saute_z"] == pytest.approx(1 - sum(costs) / budget)


def test_saute_on_the_real_env_passes_both_checkers(tiny_env_kwargs):
    def make():
        return SauteWrapper(MathDistillEnv(**tiny_env_kwargs), budget=BUDGET, discount=0.99,
                            min_rel_budget=0.5, max_rel_budget=1.5)

    env = make()
    assert env.max_episode_steps == tiny_env_kwargs["max_new_tokens"]  # T read from the env
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(make(), warn=True)


def test_single_env_terminated_by_a_wrapper_resets_cleanly(tiny_env_kwargs):
    env = gym.make("MathDistill-v0", constraint="budget", budget=10.0,
                   constraint_kwargs={"terminate_on_violation": True}, **tiny_env_kwargs)
    for seed in (0, 1):
        steps = play(env, seed=seed)
        assert steps[-1][1]["budget_terminated"] is True and len(steps) < tiny_env_kwargs["max_new_tokens"]
        assert steps[-1][1]["episode"]["constraint_satisfied"] is False


def test_vector_saute_reads_the_horizon_of_the_native_env(tiny_env_kwargs):
    venv = _native_vec(tiny_env_kwargs, 2, constraint="saute", budget=BUDGET,
                       constraint_kwargs={"discount": 0.9})
    assert venv.env.max_episode_steps == tiny_env_kwargs["max_new_tokens"]


def _native_vec(kwargs, n, **constraint):
    try:
        return gym.make_vec("MathDistill-v0", num_envs=n, vectorization_mode="vector_entry_point",
                            **constraint, **kwargs)
    except (ImportError, gym.error.Error) as err:  # pragma: no cover - until the native vector env exists
        pytest.skip(f"native vector env unavailable: {err}")


@pytest.mark.parametrize(
    "constraint",
    [
        {"constraint": "budget", "budget": BUDGET, "constraint_kwargs": {"terminate_on_violation": True}},
        {"constraint": "saute", "budget": BUDGET, "constraint_kwargs": {"min_rel_budget": 0.5,
                                                                          "max_rel_budget": 1.5}},
        {"constraint": "learned-lagrangian", "budget": BUDGET, "constraint_kwargs": {"lr": 0.01}},
    ],
    ids=lambda c: c["constraint"],
)
def test_native_vector_env_matches_single_envs(tiny_env_kwargs, constraint):
    n = 2
    native = _native_vec(tiny_env_kwargs, n, **constraint)
    name, budget, kw = constraint["constraint"], constraint["budget"], constraint["constraint_kwargs"]
    shared = {}
    if name == "learned-lagrangian":
        from llm_cmdp_env.wrappers import LagrangeMultiplier

        shared = {"multiplier": LagrangeMultiplier(budget, **kw)}
        kw = {}
    singles = gym.vector.SyncVectorEnv(
        [lambda: apply_constraint(MathDistillEnv(**tiny_env_kwargs), name, budget, **kw, **shared)
         for _ in range(n)]
    )
    obs_a, _ = native.reset(seed=5)
    obs_b, _ = singles.reset(seed=5)
    for key in obs_a:
        np.testing.assert_allclose(obs_a[key], obs_b[key], rtol=1e-6)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(16):  # one whole episode (12 tokens), its autoreset, and a few steps of the next
        actions = rng.integers(0, native.single_action_space.n, n)
        obs_a, r_a, term_a, trunc_a, info_a = native.step(actions)
        obs_b, r_b, term_b, trunc_b, info_b = singles.step(actions)
        for key in obs_a:  # token ids exactly; z up to the float32 batching noise of the costs
            np.testing.assert_allclose(obs_a[key], obs_b[key], rtol=1e-5, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(r_a, r_b, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(term_a, term_b)
        np.testing.assert_array_equal(trunc_a, trunc_b)
        if "episode" in info_a:
            ends += int(info_a["_episode"].sum())
            np.testing.assert_array_equal(info_a["_episode"], info_b["_episode"])
            m = info_a["_episode"]
            np.testing.assert_allclose(info_a["episode"]["c"][m], info_b["episode"]["c"][m], rtol=1e-4)
    assert ends >= 2


def test_ppo_smoke_on_the_real_env(tiny_env_kwargs):
    env = apply_constraint(Monitor(MathDistillEnv(**tiny_env_kwargs)), "budget", budget=BUDGET)
    model = ppo_smoke(env, steps=64, n_steps=32)
    assert_finite_losses_and_statistics(model, min_episodes=2)
    assert all(math.isfinite(ep["r"]) for ep in model.ep_info_buffer)
