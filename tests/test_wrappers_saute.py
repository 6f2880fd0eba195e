"""Sauté RL: normalisation (g < 1 and g = 1), budget sampling, observation space, hand-computed steps."""

from __future__ import annotations

import warnings
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from llm_cmdp_env.wrappers import SauteWrapper, VectorSauteWrapper, saute_normalised_budget
from tests.fake_cmdp import Episode, FakeCMDP, make_fake, run_episode


def test_normalised_budget():
    assert saute_normalised_budget(4.0, 1.0, None) == 4.0  # g = 1: d~ = d (no division by T)
    assert saute_normalised_budget(4.0, 1.0, 50) == 4.0
    # g = 0.5, T = 3: d (1 - g^T) / ((1 - g) T) = 4 * 0.875 / 1.5 = 7/3
    assert saute_normalised_budget(4.0, 0.5, 3) == pytest.approx(7 / 3, rel=1e-15)
    # g -> 1 recovers d
    assert saute_normalised_budget(4.0, 1 - 1e-9, 10) == pytest.approx(4.0, rel=1e-6)
    with pytest.raises(ValueError, match="max_episode_steps"):
        saute_normalised_budget(4.0, 0.9, None)


def test_hand_computed_undiscounted():
    env = SauteWrapper(FakeCMDP([Episode([1.0, 2.0, 3.0], [0.5, 0.0, 1.0])]), budget=4.0, unsafe_reward=-1.0)
    obs, info = env.reset(seed=0)
    assert obs["saute_budget"].tolist() == [1.0] and obs["saute_budget"].dtype == np.float32
    assert info["saute_z"] == 1.0
    zs, rewards = [], []
    for _ in range(3):
        obs, r, term, trunc, info = env.step(1)
        zs.append(info["saute_z"])
        rewards.append(r)
        assert obs["saute_budget"][0] == np.float32(info["saute_z"])
    assert zs == [0.75, 0.25, -0.5]  # z_{t+1} = z_t - c_t / d
    assert rewards == [0.5, 0.0, -1.0]  # reward cut on the step whose z_{t+1} <= 0
    assert info["task_reward"] == 1.0 and info["cost"] == 3.0 and info["constraint_violated"] is True


def test_hand_computed_discounted():
    # d = 4, g = 1/2, T = 3 (the env's declared max_episode_steps): d~ = 7/3, c/d~ = 3c/7.
    env = SauteWrapper(FakeCMDP([Episode([1.0, 2.0, 3.0])]), budget=4.0, discount=0.5, unsafe_reward=-2.0)
    assert env.max_episode_steps == 3
    assert env.normalised_budget == pytest.approx(7 / 3, rel=1e-15)
    rewards, infos, _, _ = run_episode(env, seed=0)
    z = Fraction(1)
    expected = []
    for c in (1, 2, 3):
        z = (z - Fraction(3 * c, 7)) / Fraction(1, 2)
        expected.append(float(z))
    assert expected == pytest.approx([8 / 7, 4 / 7, -10 / 7])
    assert [i["saute_z"] for i in infos] == pytest.approx(expected, rel=1e-12)
    assert rewards == [0.0, 0.0, -2.0]


def test_exact_boundary_is_unsafe_like_the_reference():
    # z_{t+1} = 1 - 4/4 = 0: Sauté cuts the reward at z <= 0 (BudgetRewardWrapper keeps C = d).
    rewards, infos, _, _ = run_episode(SauteWrapper(FakeCMDP([Episode([4.0])]), budget=4.0))
    assert infos[0]["saute_z"] == 0.0 and rewards == [0.0]


def test_negative_costs_restore_the_budget():
    env = SauteWrapper(FakeCMDP([Episode([6.0, -4.0], [0.0, 1.0])]), budget=4.0, unsafe_reward=-1.0)
    rewards, infos, _, _ = run_episode(env)
    assert [i["saute_z"] for i in infos] == [-0.5, 0.5] and rewards == [-1.0, 1.0]


def test_budget_sampling_is_seeded_and_independent_of_the_env():
    def make():
        return SauteWrapper(FakeCMDP([Episode([1.0])]), budget=2.0, min_rel_budget=0.5, max_rel_budget=1.5)

    a, b = make(), make()
    za = [a.reset(seed=3)[1]["saute_z"]] + [a.reset()[1]["saute_z"] for _ in range(20)]
    zb = [b.reset(seed=3)[1]["saute_z"]] + [b.reset()[1]["saute_z"] for _ in range(20)]
    assert za == zb  # same seed, same stream (reset() without seed continues it)
    assert all(0.5 <= z <= 1.5 for z in za) and len(set(za)) == len(za)
    assert make().reset(seed=4)[1]["saute_z"] != za[0]
    # The wrapper's draws do not consume the env's randomness: same prompts as the bare env.
    bare = FakeCMDP([Episode([1.0])])
    prompts = [bare.reset(seed=3)[1]["prompt"]] + [bare.reset()[1]["prompt"] for _ in range(5)]
    c = make()
    assert [c.reset(seed=3)[1]["prompt"]] + [c.reset()[1]["prompt"] for _ in range(5)] == prompts


def test_sampled_budget_scales_the_cut():
    # z0 d is the episode's budget: with costs 1 per step, the reward survives while t < z0 * d.
    env = SauteWrapper(FakeCMDP([Episode([1.0] * 4, [1.0] * 4)]), budget=2.0, min_rel_budget=0.5,
                       max_rel_budget=1.99, unsafe_reward=-1.0)
    for seed in range(10):
        rewards, infos, _, _ = run_episode(env, seed=seed)
        z0 = infos[0]["saute_z"] + 0.5
        kept = [1.0 if z0 - (t + 1) / 2.0 > 0 else -1.0 for t in range(4)]
        assert rewards == kept


def test_box_observation_is_concatenated():
    env = SauteWrapper(FakeCMDP([Episode([1.0, 1.0])], obs_type="box"), budget=4.0)
    assert env.observation_space.shape == (5,) and env.observation_space.dtype == np.float64
    assert np.isinf(env.observation_space.low[-1]) and env.observation_space.high[:-1].tolist() == [4.0] * 4
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float64 and obs[-1] == 1.0 and obs[:2].min() >= 1
    obs, *_ = env.step(3)
    assert obs[-1] == 0.75 and obs[2] == 3.0
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("obs_type", ["dict", "box"])
@pytest.mark.parametrize("discount", [1.0, 0.9])
@pytest.mark.parametrize("rel", [(1.0, 1.0), (0.5, 1.5)])
def test_both_env_checkers_pass(obs_type, discount, rel):
    def make():
        return SauteWrapper(FakeCMDP(obs_type=obs_type), budget=2.0, discount=discount,
                            min_rel_budget=rel[0], max_rel_budget=rel[1])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(make(), skip_render_check=True)
        sb3_check_env(make(), warn=True)
    # Only gymnasium's advisories remain: checking a wrapper, and the (exact) infinite bounds of z.
    for w in caught:
        msg = str(w.message)
        assert "unwrapped" in msg or "infinity" in msg, msg


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        SauteWrapper(FakeCMDP(), budget=0.0)
    with pytest.raises(ValueError, match="discount"):
        SauteWrapper(FakeCMDP(), budget=1.0, discount=1.5)
    with pytest.raises(ValueError, match="min_rel_budget"):
        SauteWrapper(FakeCMDP(), budget=1.0, min_rel_budget=2.0, max_rel_budget=1.0)
    with pytest.raises(ValueError, match="saute_budget"):
        SauteWrapper(SauteWrapper(FakeCMDP(), budget=1.0), budget=1.0)
    env = FakeCMDP()
    env.max_episode_steps = None  # no declared horizon and no spec: T must be given
    with pytest.raises(ValueError, match="max_episode_steps"):
        SauteWrapper(env, budget=1.0, discount=0.9)
    with pytest.raises(TypeError, match="Dict observation spaces and 1-D Box"):
        SauteWrapper(gym.make("FrozenLake-v1"), budget=1.0)


def test_vector_partial_reset_redraws_only_masked():
    venv = VectorSauteWrapper(gym.vector.SyncVectorEnv([make_fake([Episode([1.0])])] * 3), budget=2.0,
                              min_rel_budget=0.5, max_rel_budget=1.5)
    obs, info = venv.reset(seed=0)
    z = info["saute_z"].copy()
    mask = np.array([False, True, False])
    obs, info = venv.reset(options={"reset_mask": mask})
    assert info["_saute_z"].tolist() == mask.tolist()
    assert venv.z[0] == z[0] and venv.z[2] == z[2] and venv.z[1] != z[1]
    assert obs["saute_budget"].shape == (3, 1) and obs["saute_budget"][1, 0] == np.float32(venv.z[1])
    assert isinstance(venv.single_observation_space, spaces.Dict)
    assert venv.observation_space.contains(obs)
