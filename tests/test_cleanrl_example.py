"""examples/cleanrl_ppo_lagrangian.py: a second outside algorithm (CleanRL-style PPO-Lagrangian) trains through the
Safety-Gymnasium 6-tuple, reads exactly the env's costs, moves its multiplier by dual ascent and its weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_env.wrappers import SafetyGymnasiumStepWrapper

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example():
    path = ROOT / "examples" / "cleanrl_ppo_lagrangian.py"
    spec = importlib.util.spec_from_file_location("cleanrl_ppo_lagrangian", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


class RecordCost(gym.Wrapper):
    """Records the env's own ``info["cost"]`` of every step (under the 6-tuple view, which the example reads)."""

    def __init__(self, env):
        super().__init__(env)
        self.costs: list[float] = []

    def step(self, action):
        out = self.env.step(action)
        self.costs.append(float(out[-1]["cost"]))
        return out


def _env(kw):
    rec = RecordCost(gym.make("MathDistill-v0", **kw))
    return SafetyGymnasiumStepWrapper(rec), rec


@pytest.mark.usefixtures("one_thread")
def test_costs_are_the_envs_lambda_rises_over_budget_and_weights_change(example, tiny_env_kwargs, tiny_dir):
    env, rec = _env(tiny_env_kwargs)
    args = example.Args(total_steps=48, num_steps=24, update_epochs=1, minibatch_size=12, lr=1e-3, budget=0.0,
                        lambda_lr=0.1)
    torch.manual_seed(args.seed)
    before = {k: v.clone() for k, v in example.LMAgent(str(tiny_dir / "student")).state_dict().items()}
    agent, lam, res = example.train(env, str(tiny_dir / "student"), args, log=False)

    # (a) contract 1: every cost the learner accumulated is the env's info["cost"], step for step
    assert len(res.step_costs) == args.total_steps == len(rec.costs)
    assert res.step_costs == rec.costs
    assert len(res.episode_costs) >= 2
    ends = np.cumsum(res.episode_lengths)
    assert np.allclose(res.episode_costs, [sum(rec.costs[e - n:e]) for e, n in zip(ends, res.episode_lengths)])
    assert all(c > 0 for c in res.episode_costs)  # teacher NLL: every token costs something

    # (b) episode costs exceed a budget of 0: lambda rises by dual ascent, by exactly lambda_lr * (cost - budget)
    lams = [row["lambda"] for row in res.history]
    assert lams[0] > 0 and lams[1] > lams[0] and lam == lams[-1]
    first = res.history[0]
    assert lams[0] == pytest.approx(args.lambda_lr * (first["ep_cost"] - args.budget))

    # (c) the policy's weights moved
    after = agent.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("lm."))


@pytest.mark.usefixtures("one_thread")
def test_lambda_stays_zero_with_a_huge_budget_and_a_5_tuple_env_is_refused(example, tiny_env_kwargs, tiny_dir):
    env, _ = _env(tiny_env_kwargs)
    args = example.Args(total_steps=48, num_steps=24, update_epochs=1, minibatch_size=24, budget=1e9)
    _, lam, res = example.train(env, str(tiny_dir / "student"), args, log=False)
    assert lam == 0.0 and all(row["lambda"] == 0.0 for row in res.history)
    assert all(row["episodes"] > 0 for row in res.history)
    with pytest.raises(TypeError, match="6-tuple"):
        example.train(gym.make("MathDistill-v0", **tiny_env_kwargs), str(tiny_dir / "student"),
                      example.Args(total_steps=4, num_steps=4), log=False)
