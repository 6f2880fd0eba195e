"""The paper's budget reward: hand-computed sequences and properties."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_cmdp_env.wrappers import BudgetRewardWrapper, VectorBudgetRewardWrapper
from tests.fake_cmdp import Episode, FakeCMDP, make_fake, run_episode

FAST = settings(max_examples=60, deadline=None)


def shaped(costs, rewards, budget, **kwargs):
    env = BudgetRewardWrapper(FakeCMDP([Episode(costs, rewards)]), budget=budget, **kwargs)
    return run_episode(env)


def test_constant_penalty_form():
    # C_t = 1, 2.5, 3.5, 4 with d = 3: over budget from the third step on.
    rewards, infos, _, _ = shaped([1.0, 1.5, 1.0, 0.5], [0.2, 0.0, 0.0, 1.0], 3.0, unsafe_reward=-0.5)
    assert rewards == [0.2, 0.0, -0.5, -0.5]
    assert [i["episode_cost"] for i in infos] == [1.0, 2.5, 3.5, 4.0]
    assert [i["budget_remaining"] for i in infos] == [2.0, 0.5, -0.5, -1.0]
    assert [i["budget_overrun"] for i in infos] == [0.0, 0.0, 0.5, 1.0]
    assert [i["constraint_violated"] for i in infos] == [False, False, True, True]
    assert infos[-1]["task_reward"] == 1.0 and infos[-1]["cost"] == 0.5  # raw values kept


def test_overrun_penalty_form_telescopes():
    # O_t = 0, 0, 0.5, 1 -> penalties -k (O_t - O_{t-1}) = 0, 0, -1, -1 with k = 2; sum = -k O_T = -2.
    rewards, _, _, _ = shaped([1.0, 1.5, 1.0, 0.5], [0.0, 0.0, 0.0, 1.0], 3.0, overrun_penalty=2.0)
    assert rewards == [0.0, 0.0, -1.0, -1.0]
    both, _, _, _ = shaped([1.0, 1.5, 1.0, 0.5], [0.0, 0.0, 0.0, 1.0], 3.0, overrun_penalty=2.0,
                           unsafe_reward=-0.25)
    assert both == [0.0, 0.0, -1.25, -1.25]


def test_exact_budget_is_within_budget():
    rewards, infos, _, _ = shaped([1.0, 2.0], [0.0, 1.0], 3.0, unsafe_reward=-1.0)
    assert rewards == [0.0, 1.0] and infos[-1]["constraint_violated"] is False


def test_negative_costs_can_bring_the_episode_back_under_budget():
    rewards, _, _, _ = shaped([2.0, 2.0, -2.0], [0.0, 0.0, 1.0], 3.0, unsafe_reward=-1.0, overrun_penalty=1.0)
    # C = 2, 4, 2: over at the 2nd step only; the overrun penalty is refunded when it shrinks.
    assert rewards == [0.0, -2.0, 2.0]


def test_terminate_on_violation():
    env = BudgetRewardWrapper(FakeCMDP([Episode([1.0, 3.0, 1.0])]), budget=3.0, unsafe_reward=-1.0,
                              terminate_on_violation=True)
    rewards, infos, term, trunc = run_episode(env)
    assert rewards == [0.0, -1.0] and term and not trunc and infos[-1]["budget_terminated"] is True
    # The env's own end is not relabelled.
    env = BudgetRewardWrapper(FakeCMDP([Episode([1.0, 3.0], end="truncated")]), budget=3.0,
                              terminate_on_violation=True)
    _, infos, term, trunc = run_episode(env)
    assert trunc and not term and "budget_terminated" not in infos[-1]


def test_reset_clears_the_running_cost():
    env = BudgetRewardWrapper(FakeCMDP([Episode([2.0, 2.0])]), budget=3.0)
    assert run_episode(env)[1][-1]["episode_cost"] == 4.0
    assert run_episode(env)[1][0]["episode_cost"] == 2.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        BudgetRewardWrapper(FakeCMDP(), budget=float("inf"))
    with pytest.raises(ValueError, match="overrun_penalty"):
        BudgetRewardWrapper(FakeCMDP(), budget=1.0, overrun_penalty=-1.0)
    with pytest.raises(TypeError, match="terminate_on_violation"):
        BudgetRewardWrapper(FakeCMDP(), budget=1.0, terminate_on_violation="yes")
    with pytest.raises(TypeError, match="budget"):
        BudgetRewardWrapper(FakeCMDP(), budget="3")


costs_st = st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=1, max_size=8)


@FAST
@given(
    costs=costs_st,
    data=st.data(),
    unsafe=st.floats(-10.0, 10.0),
    k=st.floats(0.0, 10.0),
)
def test_within_budget_keeps_the_task_reward(costs, data, unsafe, k):
    rewards = data.draw(st.lists(st.floats(-1.0, 1.0), min_size=len(costs), max_size=len(costs)))
    budget = sum(costs) + data.draw(st.floats(0.0, 3.0))
    out, _, _, _ = shaped(costs, rewards, budget, unsafe_reward=unsafe, overrun_penalty=k)
    assert out == [float(r) for r in rewards]


T_MAX = 6


def trajectory(draw, over: bool, budget: float):
    n = draw(st.integers(1, T_MAX))
    rewards = draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    costs = draw(st.lists(st.floats(0.0, 2.0), min_size=n, max_size=n))
    if over and sum(costs) <= budget:
        costs[-1] += budget - sum(costs) + draw(st.floats(1e-3, 2.0))
    if not over and sum(costs) > budget:
        costs = [c * budget / sum(costs) * 0.999 for c in costs]
    return costs, rewards


@FAST
@given(data=st.data(), budget=st.floats(0.5, 6.0), k=st.floats(0.0, 5.0))
def test_large_enough_penalty_makes_any_violation_no_better(data, budget, k):
    # Rewards in [0, 1] over at most T steps: a satisfying episode returns >= 0, a violating one at
    # most (T - 1) * 1 + u (at least its last step is over budget, costs being >= 0). So u = -(T - 1)
    # is large enough.
    sat = trajectory(data.draw, over=False, budget=budget)
    vio = trajectory(data.draw, over=True, budget=budget)
    kwargs = {"unsafe_reward": -(T_MAX - 1.0), "overrun_penalty": k}
    ret_sat = sum(shaped(*sat, budget, **kwargs)[0])
    ret_vio = sum(shaped(*vio, budget, **kwargs)[0])
    assert ret_vio <= ret_sat


@FAST
@given(data=st.data(), budget=st.floats(0.5, 6.0), correct=st.booleans(), correct2=st.booleans())
def test_terminal_task_reward_needs_no_negative_penalty(data, budget, correct, correct2):
    # MathDistill's reward shape (0 until a final 0/1): the default u = 0 already makes violating
    # episodes no better than satisfying ones.
    sat_costs, _ = trajectory(data.draw, over=False, budget=budget)
    vio_costs, _ = trajectory(data.draw, over=True, budget=budget)
    sat_r = [0.0] * (len(sat_costs) - 1) + [float(correct)]
    vio_r = [0.0] * (len(vio_costs) - 1) + [float(correct2)]
    assert sum(shaped(vio_costs, vio_r, budget)[0]) <= sum(shaped(sat_costs, sat_r, budget)[0])


def test_vector_forced_reset_looks_like_an_autoreset():
    script = [Episode([1.0, 3.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0])]
    venv = VectorBudgetRewardWrapper(gym.vector.SyncVectorEnv([make_fake(script)] * 2), budget=3.0,
                                     terminate_on_violation=True)
    venv.reset(seed=0)
    a = np.array([1, 1])
    venv.step(a)
    obs, r, term, trunc, info = venv.step(a)
    assert term.tolist() == [True, True] and info["budget_terminated"].tolist() == [True, True]
    obs, r, term, trunc, info = venv.step(a)  # the autoreset step: fresh prompts, no cost counted
    assert r.tolist() == [0.0, 0.0] and not term.any() and not trunc.any()
    assert obs["attention_mask"].sum(axis=1).tolist() == [2, 2]  # only the prompt
    assert "prompt" in info and info["_prompt"].all() and not info.get("_cost", np.zeros(2)).any()
    _, r, _, _, info = venv.step(a)
    assert info["episode_cost"].tolist() == [1.0, 1.0]  # the new episodes started from zero
