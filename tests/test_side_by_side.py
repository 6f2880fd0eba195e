"""The side-by-side replay (episodes side by side on arrays) gives one-by-one stepping's numbers bit for bit, for every
constraint, with early termination, sampled Sauté budgets and a learned multiplier's waves, and leaves the
wrappers in the same state."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from llm_cmdp_env.envs.math_distill import MathDistillEnv
from llm_cmdp_env.replay import side_by_side
from llm_cmdp_env.replay.fast_path import replay, sample_problems
from llm_cmdp_env.replay.side_by_side import side_by_side_layers
from llm_cmdp_env.wrappers import apply_constraint
from llm_cmdp_env.wrappers.constraint import ConstraintWrapper
from tests.test_fast_path import CostPenalty, _completions

CASES = {
    "none": ("none", None, {}),
    "budget": ("budget", 30.0, {}),
    "budget-terminate": ("budget", 20.0, {"terminate_on_violation": True, "overrun_penalty": 0.5}),
    "saute-sampled": ("saute", 30.0, {"min_rel_budget": 0.5, "max_rel_budget": 1.5, "unsafe_reward": -0.1}),
    "lagrangian": ("lagrangian", 30.0, {"lam": 0.3}),
    "learned-every-1": ("learned-lagrangian", 30.0, {"lr": 0.05}),
    "learned-every-9": ("learned-lagrangian", 30.0, {"lr": 0.05, "update_every": 9}),
    "worst-case-terminate": ("worst-case", 4.0, {"terminate_on_violation": True}),
    "distill": ("distill", None, {}),
}


def _stack(kwargs, case, seed=0):
    name, budget, extra = CASES[case]
    env = apply_constraint(MathDistillEnv(**kwargs), name, budget=budget, **extra)
    env.reset(seed=seed)
    return env


def _no_wall_clock(info):
    out = dict(info)
    if "episode" in out:
        out["episode"] = {k: v for k, v in out["episode"].items() if k != "t"}
    return out


def _same_episodes(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.tokens == y.tokens and x.terminated == y.terminated and x.truncated == y.truncated
        np.testing.assert_array_equal(x.rewards, y.rewards)
        np.testing.assert_array_equal(x.costs, y.costs)
        np.testing.assert_array_equal(x.teacher_logprobs, y.teacher_logprobs)
        fx, fy = _no_wall_clock(x.final_info), _no_wall_clock(y.final_info)
        assert fx == fy
        assert {k: type(v) for k, v in fx.items()} == {k: type(v) for k, v in fy.items()}


def _layers_state(env):
    out = []
    w = env
    while isinstance(w, gym.Wrapper):
        if isinstance(w, ConstraintWrapper):
            st = {k: v for k, v in vars(w.state).items() if k != "t0"}
            rule = w.constraint
            extra = {}
            if hasattr(rule, "queues") and rule.queues is not None:
                q = rule.queues
                extra = {"returns": list(q.return_queue), "costs": list(q.cost_queue),
                         "lengths": list(q.length_queue), "count": q.episode_count}
            if getattr(rule, "multiplier", None) is not None:
                extra["lam"], extra["pending"] = rule.multiplier.value, list(rule.multiplier.pending)
            if w.rng is not None:
                extra["next_draw"] = w.rng.bit_generator.state["state"]
            out.append((type(w).__name__, st, extra))
        w = w.env
    return out


@pytest.fixture
def waves(monkeypatch):
    """The sizes of the waves run side by side."""
    from llm_cmdp_env.replay import fast_path

    sizes = []

    def spy(env, layers, problems, scored):
        sizes.append(len(problems))
        return side_by_side.replay_wave(env, layers, problems, scored)

    monkeypatch.setattr(fast_path, "replay_wave", spy)
    return sizes


# waves with 19 episodes a call (the last always one by one): 18 side by side; a learned multiplier updating after
# every episode runs all one by one; one updating every 9 episodes, in waves of 9 then of what is left of its batch
WAVES = {"learned-every-1": [], "learned-every-9": [9, 9, 8, 9]}


@pytest.mark.parametrize("case", list(CASES))
def test_side_by_side_equals_one_by_one(tiny_env_kwargs, case, waves):
    fast, slow = _stack(tiny_env_kwargs, case), _stack(tiny_env_kwargs, case)
    assert side_by_side_layers(fast) is not None
    for call in range(2):  # the second call continues the multiplier, queues and generators of the first
        problems = sample_problems(fast, 19)
        assert [p.question for p in problems] == [p.question for p in sample_problems(slow, 19)]
        completions = _completions(fast, 19, np.random.default_rng(10 + call))
        _same_episodes(replay(fast, problems, completions), replay(slow, problems, completions, side_by_side=False))
        assert _layers_state(fast) == _layers_state(slow)
    assert waves == WAVES.get(case, [18, 18])
    # both envs go on identically by hand
    for env in (fast, slow):
        env.reset(options={"problem": problems[0]})
    for tok in completions[0][:3]:
        ra, rb = fast.step(tok), slow.step(tok)
        assert ra[1] == rb[1] and _no_wall_clock(ra[4]) == _no_wall_clock(rb[4])


def test_side_by_side_cuts_episodes_a_rule_ends_and_sizes_waves(tiny_env_kwargs, waves):
    env = _stack(tiny_env_kwargs, "budget-terminate")
    problems = sample_problems(env, 12)
    completions = _completions(env, 12, np.random.default_rng(3))
    episodes = replay(env, problems, completions)
    assert waves == [11]
    assert any(ep.final_info.get("budget_terminated") for ep in episodes[:-1])  # cut by the rule, side by side
    assert any(len(ep.tokens) < len(c) for ep, c in zip(episodes[:-1], completions[:-1]))
    learned = _stack(tiny_env_kwargs, "learned-every-9")
    rule = learned.env.constraint  # the rule under the statistics
    assert rule.episodes_until_start_changes() == 9 and side_by_side.wave_size(side_by_side_layers(learned), 30) == 9
    rule.multiplier.observe(1.0)
    assert rule.episodes_until_start_changes() == 8  # one of the batch of 9 is already queued
    assert side_by_side.wave_size(side_by_side_layers(learned), 5) == 5


def test_stacks_the_side_by_side_cannot_reproduce_step_one_by_one(tiny_env_kwargs):
    assert side_by_side_layers(CostPenalty(MathDistillEnv(**tiny_env_kwargs))) is None  # a foreign wrapper

    class Custom(ConstraintWrapper):
        def step(self, action):
            return super().step(action)

    from llm_cmdp_env.wrappers.budget import BudgetReward

    assert side_by_side_layers(Custom(MathDistillEnv(**tiny_env_kwargs), BudgetReward(10.0))) is None

    class OwnStep(MathDistillEnv):
        def step(self, action):
            return super().step(action)

    assert side_by_side_layers(ConstraintWrapper(OwnStep(**tiny_env_kwargs), BudgetReward(10.0))) is None
    made = apply_constraint(gym.make("MathDistill-v0", **tiny_env_kwargs), "budget", budget=30.0)
    assert side_by_side_layers(made) is not None  # Gymnasium's passive checkers are fine
    made.reset(seed=1)
    problems = sample_problems(made, 10)
    completions = _completions(made, 10, np.random.default_rng(1))
    slow = apply_constraint(gym.make("MathDistill-v0", **tiny_env_kwargs), "budget", budget=30.0)
    slow.reset(seed=1)
    _same_episodes(replay(made, problems, completions), replay(slow, problems, completions, side_by_side=False))


@pytest.mark.parametrize("which", [0, 1])  # _completions: episode 0 ends on EOS (terminated), 1 is truncated
def test_a_rule_ending_an_episode_on_its_last_token_leaves_the_env_s_end(tiny_env_kwargs, which):
    """The budget runs out exactly at the last token: the env's own end stands (no rule flag), as one by one."""
    plain = _stack(tiny_env_kwargs, "none")
    problems = sample_problems(plain, 3)
    completions = _completions(plain, 3, np.random.default_rng(5))
    cost = np.cumsum(replay(plain, problems, completions, side_by_side=False)[which].costs)
    budget = float((cost[-2] + cost[-1]) / 2)
    fast, slow = (apply_constraint(MathDistillEnv(**tiny_env_kwargs), "budget", budget=budget,
                                   terminate_on_violation=True) for _ in range(2))
    problems, completions = problems + problems * 3, completions + completions * 3  # 12: 11 side by side
    a, b = replay(fast, problems, completions), replay(slow, problems, completions, side_by_side=False)
    _same_episodes(a, b)
    assert len(a[which].tokens) == len(completions[which]) and "budget_terminated" not in a[which].final_info
    assert (a[which].terminated, a[which].truncated) == ((True, False) if which == 0 else (False, True))


def test_correct_answers_side_by_side(tiny_env_kwargs, waves):
    """Reference solutions among random completions: the task rewards (and the statistics' task return) match."""
    from llm_cmdp_env.replay.fast_path import solution_ids

    kwargs = {**tiny_env_kwargs, "max_new_tokens": 96}
    fast, slow = (apply_constraint(MathDistillEnv(**kwargs), "budget", budget=200.0) for _ in range(2))
    fast.reset(seed=4)
    problems = sample_problems(fast, 12)
    rng = np.random.default_rng(4)
    completions = [solution_ids(fast, p) if i % 2 == 0 else [int(x) for x in rng.integers(1, 300, size=96)]
                   for i, p in enumerate(problems)]
    a, b = replay(fast, problems, completions), replay(slow, problems, completions, side_by_side=False)
    _same_episodes(a, b)
    assert waves == [11] and sum(ep.final_info["task_reward"] for ep in a[:-1]) >= 3
    assert all(ep.final_info["episode"]["task_r"] == ep.final_info["task_reward"] for ep in a)


def test_a_nan_cost_is_refused_by_the_wrappers_as_one_by_one(tiny_env_kwargs):
    """A non-finite cost (scores injected by hand: the scoring itself refuses bad log-probs) makes the replay
    step one by one, where the constraint wrapper names it."""
    from llm_cmdp_env.replay.fast_path import replay_scored, score_completions

    env = _stack(tiny_env_kwargs, "budget")
    problems = sample_problems(env, 10)
    scored = score_completions(env, problems, _completions(env, 10, np.random.default_rng(6)))
    scored[3].cost[1] = np.nan
    with pytest.raises(ValueError, match="nan"):
        replay_scored(env, problems, scored)
