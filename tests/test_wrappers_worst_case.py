"""Worst-case per-prefix constraint: hand-computed sequences and the absorbing property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_cmdp_env.wrappers import CostEpisodeStatistics, WorstCaseWrapper
from tests.fake_cmdp import Episode, FakeCMDP, run_episode


def shaped(costs, rewards, budget, **kwargs):
    return run_episode(WorstCaseWrapper(FakeCMDP([Episode(costs, rewards)]), budget=budget, **kwargs))


def test_hand_computed_violation_is_absorbing():
    # prefix means 0.5, 1.25, 0.8667, 0.675 with d = 1: violated at t = 2 and for good.
    rewards, infos, _, _ = shaped([0.5, 2.0, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0], 1.0)
    assert [i["prefix_mean_cost"] for i in infos] == pytest.approx([0.5, 1.25, 2.6 / 3, 0.675])
    assert [i["constraint_violated"] for i in infos] == [False, True, True, True]
    assert rewards == [0.0, -1.0, 0.0, 0.0]  # penalty once, task reward forfeited
    assert infos[-1]["task_reward"] == 1.0 and infos[-1]["cost"] == 0.1


def test_penalty_and_unsafe_reward():
    rewards, _, _, _ = shaped([0.5, 2.0, 0.1], [0.3, 0.3, 0.3], 1.0, penalty=-5.0, unsafe_reward=-0.5)
    assert rewards == [0.3, -5.5, -0.5]


def test_min_prefix_skips_short_prefixes():
    # means 2, 1.05, 0.733, 0.575
    costs, rewards = [2.0, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0]
    assert shaped(costs, rewards, 1.0, min_prefix=3)[0] == rewards
    assert shaped(costs, rewards, 1.0, min_prefix=2)[0] == [0.0, -1.0, 0.0, 0.0]
    assert shaped(costs, rewards, 1.0)[0] == [-1.0, 0.0, 0.0, 0.0]


def test_within_bound_keeps_reward_and_statistics_report_it():
    env = CostEpisodeStatistics(WorstCaseWrapper(FakeCMDP([Episode([1.0, 0.5, 1.0])]), budget=1.0))
    rewards, infos, _, _ = run_episode(env)
    assert rewards == [0.0, 0.0, 1.0]
    assert infos[-1]["episode"]["constraint_satisfied"] is True


def test_terminate_on_violation():
    rewards, infos, term, _ = shaped([0.5, 2.0, 0.1], [0.0, 0.0, 1.0], 1.0, terminate_on_violation=True)
    assert term and rewards == [0.0, -1.0] and infos[-1]["worst_case_terminated"] is True


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_prefix"):
        WorstCaseWrapper(FakeCMDP(), budget=1.0, min_prefix=0)
    with pytest.raises(ValueError, match="penalty"):
        WorstCaseWrapper(FakeCMDP(), budget=1.0, penalty=float("nan"))


@settings(max_examples=80, deadline=None)
@given(
    costs=st.lists(st.floats(-2.0, 4.0), min_size=1, max_size=10),
    budget=st.floats(0.0, 2.0),
    min_prefix=st.integers(1, 4),
    penalty=st.floats(-3.0, 0.0),
    unsafe=st.floats(-1.0, 0.0),
)
def test_violation_is_absorbing_and_matches_the_definition(costs, budget, min_prefix, penalty, unsafe):
    rewards_in = [1.0] * len(costs)
    rewards, infos, _, _ = shaped(costs, rewards_in, budget, min_prefix=min_prefix, penalty=penalty,
                                  unsafe_reward=unsafe)
    flags = [i["constraint_violated"] for i in infos]
    # definition: violated at t iff some prefix s <= t (s >= min_prefix) has mean > d
    expected = [any(sum(costs[:s]) / s > budget for s in range(min_prefix, t + 1)) for t in range(1, len(costs) + 1)]
    assert flags == expected
    assert all(flags[t:] == [True] * (len(flags) - t) for t in range(len(flags)) if flags[t])  # absorbing
    if True in flags:
        tau = flags.index(True)
        assert rewards[:tau] == rewards_in[:tau]
        assert rewards[tau] == unsafe + penalty and rewards[tau + 1:] == [unsafe] * (len(costs) - tau - 1)
    else:
        assert rewards == rewards_in
