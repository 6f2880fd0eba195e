"""Episode statistics with cost: hand-computed sequences."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from llm_cmdp_env.wrappers import CostEpisodeStatistics, VectorCostEpisodeStatistics, WorstCaseWrapper
from tests.fake_cmdp import Episode, FakeCMDP, make_fake, run_episode


def test_statistics_at_episode_end_only():
    env = CostEpisodeStatistics(FakeCMDP([Episode([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])]), budget=6.0)
    rewards, infos, term, trunc = run_episode(env, seed=0)
    assert term and not trunc
    assert "episode" not in infos[0] and "episode" not in infos[1]
    ep = infos[-1]["episode"]
    assert ep["r"] == 1.5 and ep["c"] == 6.0 and ep["l"] == 3 and ep["task_r"] == 1.5
    assert ep["c_max_prefix_mean"] == 2.0  # max(1, 3/2, 6/3)
    assert ep["constraint_satisfied"] is True  # 6 <= 6: the boundary satisfies C <= d
    assert isinstance(ep["t"], float) and ep["t"] >= 0
    assert list(env.return_queue) == [1.5] and list(env.cost_queue) == [6.0] and list(env.length_queue) == [3]
    assert env.episode_count == 1


def test_budget_decides_constraint_satisfied_and_absent_without_budget():
    script = [Episode([1.0, 2.0, 3.0])]
    over = CostEpisodeStatistics(FakeCMDP(script), budget=5.9)
    assert run_episode(over)[1][-1]["episode"]["constraint_satisfied"] is False
    none = CostEpisodeStatistics(FakeCMDP(script))
    assert "constraint_satisfied" not in run_episode(none)[1][-1]["episode"]


def test_constraint_flag_from_wrapper_underneath():
    # Worst case: the prefix mean 2.0 > 1.5 at t=1 violates, though the whole-episode mean 1.0 does not.
    env = CostEpisodeStatistics(WorstCaseWrapper(FakeCMDP([Episode([2.0, 0.5, 0.5])]), budget=1.5))
    ep = run_episode(env)[1][-1]["episode"]
    assert ep["constraint_satisfied"] is False and ep["c_max_prefix_mean"] == 2.0


def test_reset_clears_sums_and_truncation_counts():
    env = CostEpisodeStatistics(FakeCMDP([Episode([1.0, 1.0], end="truncated"), Episode([0.5])]))
    _, infos, term, trunc = run_episode(env)
    assert trunc and not term and infos[-1]["episode"]["c"] == 2.0
    _, infos, term, _ = run_episode(env)
    assert term and infos[-1]["episode"] == {**infos[-1]["episode"], "c": 0.5, "l": 1, "r": 1.0}


class _InnerRecorder(gym.Wrapper):
    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        if term or trunc:
            info["episode"] = {"r": -99.0, "extra": 7}
        return obs, r, term, trunc, info


def test_extends_an_inner_recorders_dict():
    env = CostEpisodeStatistics(_InnerRecorder(FakeCMDP([Episode([1.0])])))
    ep = run_episode(env)[1][-1]["episode"]
    assert ep["extra"] == 7 and ep["r"] == 1.0 and ep["c"] == 1.0


def test_missing_cost_is_a_clear_error():
    env = CostEpisodeStatistics(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match=r"info\['cost'\]"):
        env.step(0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        CostEpisodeStatistics(FakeCMDP(), budget=float("nan"))
    with pytest.raises(ValueError, match="buffer_length"):
        CostEpisodeStatistics(FakeCMDP(), buffer_length=0)


def test_vector_statistics_hand_computed():
    script = [Episode([1.0, 2.0]), Episode([0.5, 0.5, 0.5], [0, 0, 0], end="truncated")]
    venv = VectorCostEpisodeStatistics(
        gym.vector.SyncVectorEnv([make_fake(script), make_fake(script[::-1])]), budget=2.0
    )
    venv.reset(seed=0)
    a = np.array([1, 1])
    _, _, _, _, infos = venv.step(a)
    assert "episode" not in infos
    _, _, term, _, infos = venv.step(a)  # env 0 ends (cost 3 > 2)
    assert term.tolist() == [True, False] and infos["_episode"].tolist() == [True, False]
    assert infos["episode"]["c"][0] == 3.0 and infos["episode"]["constraint_satisfied"][0] == np.False_
    _, _, _, trunc, infos = venv.step(a)  # env 0 autoresets, env 1 truncates (cost 1.5)
    assert trunc.tolist() == [False, True] and infos["_episode"].tolist() == [False, True]
    assert infos["episode"]["c"][1] == 1.5 and infos["episode"]["l"][1] == 3
    assert bool(infos["episode"]["constraint_satisfied"][1]) is True
    assert list(venv.cost_queue) == [3.0, 1.5]
