"""Lagrangian shaping: fixed multiplier, learned multiplier (dual ascent, PID), save/restore."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_cmdp_env.wrappers import FixedLagrangianWrapper, LagrangeMultiplier, LearnedLagrangianWrapper
from tests.fake_cmdp import Episode, FakeCMDP, run_episode


def test_fixed_multiplier():
    env = FixedLagrangianWrapper(FakeCMDP([Episode([1.0, 2.0], [0.0, 1.0])]), lam=0.5)
    rewards, infos, _, _ = run_episode(env)
    assert rewards == [-0.5, 0.0]
    assert infos[-1]["lagrange_multiplier"] == 0.5 and infos[-1]["task_reward"] == 1.0
    with pytest.raises(ValueError, match="lam"):
        FixedLagrangianWrapper(FakeCMDP(), lam=-0.1)


def test_dual_ascent_by_hand():
    m = LagrangeMultiplier(budget=10.0, lr=0.1)
    assert m.value == 0.0
    assert m.update([12.0]) == pytest.approx(0.2)
    assert m.update([8.0, 6.0]) == 0.0  # J = 7: 0.2 + 0.1 * (7 - 10) < 0 -> clipped at 0
    capped = LagrangeMultiplier(budget=10.0, lr=0.1, lam_max=0.5)
    assert capped.update(100.0) == 0.5
    assert LagrangeMultiplier(budget=1.0).lr == 0.05  # default rate


def test_pid_by_hand():
    # Kp = 1, Ki = 0.5, Kd = 2, lam_init = 1 -> I_0 = 2.
    m = LagrangeMultiplier(budget=10.0, pid=(1.0, 0.5, 2.0), lam_init=1.0)
    assert m.integral == 2.0 and m.value == 1.0
    assert m.update([12.0]) == 4.0  # D = 2, I = 4, d = 0 -> 2 + 2 + 0
    assert m.update([15.0]) == 15.5  # D = 5, I = 9, d = 3 -> 5 + 4.5 + 6
    assert m.update([5.0]) == 0.0  # D = -5, I = 4, d = 0 -> -5 + 2 < 0
    assert m.integral == 4.0 and m.num_updates == 3
    capped = LagrangeMultiplier(budget=10.0, pid=(0.0, 1.0, 0.0), lam_max=3.0)
    capped.update([100.0])
    assert capped.value == 3.0 and capped.integral == 3.0  # anti-windup: I <= lam_max / Ki


def test_pid_integral_only_is_dual_ascent():
    a = LagrangeMultiplier(budget=3.0, lr=0.3, lam_init=0.4, lam_max=5.0)
    b = LagrangeMultiplier(budget=3.0, pid=(0.0, 0.3, 0.0), lam_init=0.4, lam_max=5.0)
    for c in [5.0, 9.0, 1.0, 0.0, 0.0, 0.0, 30.0, 40.0, 2.0]:
        assert a.update(c) == pytest.approx(b.update(c), abs=1e-12)


def test_bad_multiplier_arguments():
    with pytest.raises(ValueError, match="either lr"):
        LagrangeMultiplier(1.0, lr=0.1, pid=(1, 1, 1))
    with pytest.raises(ValueError, match="lr"):
        LagrangeMultiplier(1.0, lr=0.0)
    with pytest.raises(ValueError, match="pid"):
        LagrangeMultiplier(1.0, pid=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"pid\[1\]"):
        LagrangeMultiplier(1.0, pid=(1.0, -1.0, 0.0))
    with pytest.raises(ValueError, match="lam_init"):
        LagrangeMultiplier(1.0, lam_init=5.0, lam_max=1.0)
    with pytest.raises(ValueError, match="at least one"):
        LagrangeMultiplier(1.0).update([])
    with pytest.raises(ValueError, match="budget is required"):
        LearnedLagrangianWrapper(FakeCMDP())


def test_wrapper_updates_between_episodes():
    # Episode costs 6, 6, 2 with d = 4 and lr = 0.5: lambda 0 -> 1 -> 2 -> 1.
    script = [Episode([2.0, 4.0], [0.0, 1.0]), Episode([3.0, 3.0], [0.0, 1.0]), Episode([1.0, 1.0], [0.0, 1.0])]
    env = LearnedLagrangianWrapper(FakeCMDP(script), budget=4.0, lr=0.5)
    r1, i1, _, _ = run_episode(env)
    assert r1 == [0.0, 1.0] and env.lam == 1.0
    assert i1[-1]["episode_cost"] == 6.0 and i1[-1]["constraint_violated"] is True
    r2, i2, _, _ = run_episode(env)
    assert r2 == [-3.0, -2.0] and i2[0]["lagrange_multiplier"] == 1.0 and env.lam == 2.0
    r3, _, _, _ = run_episode(env)
    assert r3 == [-2.0, -1.0] and env.lam == 1.0


def test_lambda_is_fixed_within_an_episode_and_external_updates():
    env = LearnedLagrangianWrapper(FakeCMDP([Episode([1.0, 1.0, 1.0])]), budget=1.0, lr=1.0,
                                   auto_update=False)
    env.reset(seed=0)
    env.step(1)
    assert env.update([5.0]) == 4.0  # an external trainer feeds costs
    _, r, *_ = env.step(1)
    assert r == 0.0 - 0.0 * 1.0  # the running episode keeps its lambda
    env.step(1)
    assert env.multiplier.num_updates == 1  # no automatic update at the end
    env.reset()
    _, r, *_ = env.step(1)
    assert r == -4.0


def test_update_every_and_shared_multiplier():
    shared = LagrangeMultiplier(budget=1.0, lr=1.0, update_every=2)
    a = LearnedLagrangianWrapper(FakeCMDP([Episode([3.0])]), multiplier=shared)
    b = LearnedLagrangianWrapper(FakeCMDP([Episode([5.0])]), multiplier=shared)
    run_episode(a)
    assert shared.value == 0.0 and shared.pending == [3.0]
    run_episode(b)
    assert shared.value == 3.0 and shared.pending == []  # mean(3, 5) - 1 = 3
    assert a.lam == b.lam == 3.0
    with pytest.raises(ValueError, match="differs"):
        LearnedLagrangianWrapper(FakeCMDP(), budget=2.0, multiplier=shared)
    with pytest.raises(TypeError, match=r"\['lr'\] set the multiplier's parameters"):  # never dropped silently
        LearnedLagrangianWrapper(FakeCMDP(), multiplier=shared, lr=0.5)


@pytest.mark.parametrize("rule", [{"lr": 0.3}, {"pid": (0.2, 0.1, 0.5)}])
def test_save_and_restore_continues_exactly(rule):
    def make():
        env = FakeCMDP(vocab_size=5, max_steps=6)
        return LearnedLagrangianWrapper(env, budget=3.0, update_every=2, lam_max=4.0, **rule)

    actions = [[3, 4, 2, 0], [4, 4, 4, 4, 4, 4], [1, 0], [2, 3, 4, 1, 0], [4, 1, 0], [0], [3, 3, 3, 0]]

    def play(env, episodes, seed):
        out = []
        env.reset(seed=seed)
        for k, acts in enumerate(episodes):
            if k:
                env.reset()
            for a in acts:
                *_, r, _, _, info = env.step(a)
                out.append((r, info["lagrange_multiplier"]))
        return out

    a = make()
    first = play(a, actions[:3], seed=1)
    saved = json.loads(json.dumps(a.state_dict()))  # plain values: JSON round-trip
    assert saved["pending"] and saved["num_updates"] == 1  # saved with an episode waiting in the batch
    rest_a = play(a, actions[3:], seed=2)
    b = make()
    b.load_state_dict(saved)
    assert play(b, actions[3:], seed=2) == rest_a
    assert b.state_dict() == a.state_dict()
    assert play(make(), actions[3:], seed=2) != rest_a  # without the restore it would differ
    assert first


@settings(max_examples=60, deadline=None)
@given(
    costs=st.lists(st.lists(st.floats(-50.0, 50.0), min_size=1, max_size=4), min_size=1, max_size=25),
    budget=st.floats(-5.0, 20.0),
    gains=st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 3.0), st.floats(0.0, 3.0)),
    use_pid=st.booleans(),
    lam_init=st.floats(0.0, 2.0),
)
def test_lambda_never_negative_nor_above_max(costs, budget, gains, use_pid, lam_init):
    m = (LagrangeMultiplier(budget, pid=gains, lam_init=lam_init, lam_max=10.0) if use_pid
         else LagrangeMultiplier(budget, lr=max(gains[0], 1e-3), lam_init=lam_init, lam_max=10.0))
    for batch in costs:
        value = m.update(batch)
        assert 0.0 <= value <= 10.0


@settings(max_examples=60, deadline=None)
@given(
    excess=st.lists(st.floats(1e-3, 20.0), min_size=1, max_size=25),
    budget=st.floats(0.0, 20.0),
    rate=st.floats(1e-3, 2.0),
    use_pid=st.booleans(),
    lam_max=st.floats(0.5, 1e3),
)
def test_lambda_rises_while_episodes_overspend(excess, budget, rate, use_pid, lam_max):
    m = (LagrangeMultiplier(budget, pid=(0.0, rate, 0.0), lam_max=lam_max) if use_pid
         else LagrangeMultiplier(budget, lr=rate, lam_max=lam_max))
    env_costs = [budget + e for e in excess]
    previous = m.value
    for c in env_costs:
        value = m.update([c])
        assert value > previous or value == lam_max
        assert value >= previous
        previous = value


def test_lambda_rises_through_the_wrapper_while_overspending():
    env = LearnedLagrangianWrapper(FakeCMDP([Episode([2.0, 2.0])]), budget=1.0, pid=(0.5, 0.2, 0.1))
    values = []
    for _ in range(6):
        run_episode(env)
        values.append(env.lam)
    assert values == sorted(values) and values[0] > 0
