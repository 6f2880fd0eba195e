"""Building stacks by name, the distillation baseline, and the Safety-Gymnasium 6-tuple interop."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from llm_cmdp_env.wrappers import (
    CONSTRAINTS,
    BudgetRewardWrapper,
    CostEpisodeStatistics,
    CostInfoWrapper,
    DistillRewardWrapper,
    FixedLagrangianWrapper,
    LearnedLagrangianWrapper,
    SafetyGymnasiumStepWrapper,
    SauteWrapper,
    VectorCostEpisodeStatistics,
    VectorCostInfoWrapper,
    VectorSafetyGymnasiumStepWrapper,
    VectorSauteWrapper,
    WorstCaseWrapper,
    apply_constraint,
    apply_vector_constraint,
)
from tests.fake_cmdp import Episode, FakeCMDP, make_fake, run_episode

EXPECTED = {
    "none": None,
    "budget": BudgetRewardWrapper,
    "saute": SauteWrapper,
    "lagrangian": FixedLagrangianWrapper,
    "learned-lagrangian": LearnedLagrangianWrapper,
    "worst-case": WorstCaseWrapper,
    "distill": DistillRewardWrapper,
}

KWARGS: dict[str, dict[str, Any]] = {"lagrangian": {"lam": 0.5}}


def test_names_are_listed_in_one_place():
    assert set(CONSTRAINTS) == set(EXPECTED)
    assert all(isinstance(v, str) and v for v in CONSTRAINTS.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_apply_constraint_builds_the_stack(name):
    env = apply_constraint(FakeCMDP([Episode([1.0, 1.0])]), name, budget=1.5, **KWARGS.get(name, {}))
    assert isinstance(env, CostEpisodeStatistics)
    inner = env.env
    if EXPECTED[name] is None:
        assert isinstance(inner, FakeCMDP)
    else:
        assert type(inner) is EXPECTED[name] and isinstance(inner.env, FakeCMDP)
    _, infos, _, _ = run_episode(env)
    ep = infos[-1]["episode"]
    assert ep["c"] == 2.0
    # the worst-case budget is per token (mean 1.0 <= 1.5 holds); the others bound the sum (2 > 1.5)
    assert ep["constraint_satisfied"] is (name == "worst-case")


def test_none_is_none_and_kwargs_reach_the_wrapper():
    env = apply_constraint(FakeCMDP([Episode([2.0])]), None)
    assert isinstance(env.env, FakeCMDP) and "constraint_satisfied" not in run_episode(env)[1][-1]["episode"]
    env = apply_constraint(FakeCMDP([Episode([2.0])]), "budget", budget=1.0, unsafe_reward=-3.0)
    assert run_episode(env)[0] == [-3.0]
    assert isinstance(apply_constraint(FakeCMDP(), "distill", statistics=False), DistillRewardWrapper)


def test_factory_errors():
    with pytest.raises(ValueError) as err:
        apply_constraint(FakeCMDP(), "sauté", budget=1.0)
    for name in CONSTRAINTS:
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="needs budget"):
        apply_constraint(FakeCMDP(), "saute")
    with pytest.raises(ValueError, match="needs lam"):
        apply_constraint(FakeCMDP(), "lagrangian")
    with pytest.raises(TypeError, match="no extra arguments"):
        apply_constraint(FakeCMDP(), "none", lam=1.0)
    with pytest.raises(TypeError):
        apply_constraint(FakeCMDP(), "budget", budget=1.0, not_an_argument=1)
    with pytest.raises(ValueError, match="unknown constraint"):
        apply_vector_constraint(gym.vector.SyncVectorEnv([make_fake()]), "nope")


def test_apply_vector_constraint():
    venv = apply_vector_constraint(gym.vector.SyncVectorEnv([make_fake()] * 2), "saute", budget=2.0)
    assert isinstance(venv, VectorCostEpisodeStatistics) and isinstance(venv.env, VectorSauteWrapper)
    assert "saute_budget" in venv.single_observation_space.spaces


def test_vector_wrappers_refuse_other_autoreset_modes():
    venv = gym.vector.SyncVectorEnv([make_fake()], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="NEXT_STEP"):
        apply_vector_constraint(venv, "budget", budget=1.0)


def test_distill_reward_is_minus_cost():
    rewards, infos, _, _ = run_episode(DistillRewardWrapper(FakeCMDP([Episode([0.5, 1.5], [0.0, 1.0])])))
    assert rewards == [-0.5, -1.5] and infos[-1]["task_reward"] == 1.0


# ------------------------------------------------------------------------------- Safety-Gymnasium


class SixTupleEnv(gym.Env):
    """A Safety-Gymnasium-style env: step returns (obs, reward, cost, terminated, truncated, info)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 1.0, 0.75 * self.t, self.t == 3, False, {"cost": -1.0}


def test_six_tuple_view_and_back():
    env = SafetyGymnasiumStepWrapper(FakeCMDP([Episode([0.5, 1.5])]))
    env.reset(seed=0)
    out = env.step(1)
    assert len(out) == 6 and out[2] == 0.5 and out[5]["cost"] == 0.5
    back = CostInfoWrapper(SafetyGymnasiumStepWrapper(FakeCMDP([Episode([0.5, 1.5])])))
    assert run_episode(back)[1][1]["cost"] == 1.5


def test_constraint_wrappers_run_on_a_safety_gymnasium_env():
    env = apply_constraint(CostInfoWrapper(SixTupleEnv()), "budget", budget=1.0, unsafe_reward=-1.0)
    rewards, infos, _, _ = run_episode(env, actions=[0, 0, 0])
    # costs 0.75, 1.5, 2.25 (the 6-tuple's cost wins over the info's): over budget from step 2
    assert [i["cost"] for i in infos] == [0.75, 1.5, 2.25] and rewards == [1.0, -1.0, -1.0]
    assert infos[-1]["episode"]["c"] == 4.5
    five = CostInfoWrapper(FakeCMDP())
    five.reset(seed=0)
    with pytest.raises(ValueError, match="6 values"):
        five.step(0)


def test_vector_six_tuple_view_and_back():
    script = [Episode([0.5, 1.5])]
    venv = VectorSafetyGymnasiumStepWrapper(gym.vector.SyncVectorEnv([make_fake(script)] * 2))
    venv.reset(seed=0)
    a = np.array([1, 1])
    assert venv.step(a)[2].tolist() == [0.5, 0.5]
    assert venv.step(a)[2].tolist() == [1.5, 1.5]
    assert venv.step(a)[2].tolist() == [0.0, 0.0]  # autoreset step: no cost
    back = VectorCostInfoWrapper(VectorSafetyGymnasiumStepWrapper(gym.vector.SyncVectorEnv([make_fake(script)])))
    back.reset(seed=0)
    out = back.step(np.array([1]))
    assert len(out) == 5 and out[4]["cost"].tolist() == [0.5] and out[4]["_cost"].tolist() == [True]
