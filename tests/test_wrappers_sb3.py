"""stable-baselines3 PPO smoke runs over every constraint stack (a few hundred steps, small policy)."""

from __future__ import annotations

import math

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor

from llm_cmdp_env.wrappers import CONSTRAINTS, apply_constraint
from tests.conftest import torch_threads
from tests.fake_cmdp import FakeCMDP

BUDGETS = {"worst-case": 1.0}
KWARGS = {"lagrangian": {"lam": 0.2}, "budget": {"terminate_on_violation": True}}


def ppo_smoke(env, steps: int = 256, n_steps: int = 64) -> PPO:
    """PPO with a tiny MultiInputPolicy for ``steps`` env steps (one torch thread, restored after)."""
    with torch_threads(1):
        model = PPO(
            "MultiInputPolicy", env, n_steps=n_steps, batch_size=32, n_epochs=2, seed=0, device="cpu",
            policy_kwargs={"net_arch": [16]},
        )
        model.learn(total_timesteps=steps)
    return model


def assert_finite_losses_and_statistics(model: PPO, min_episodes: int) -> None:
    logged = model.logger.name_to_value
    for key in ("train/loss", "train/value_loss", "train/policy_gradient_loss", "train/entropy_loss"):
        assert math.isfinite(logged[key]), (key, logged[key])
    episodes = list(model.ep_info_buffer)
    assert len(episodes) >= min_episodes
    assert all({"r", "c", "l", "constraint_satisfied"} <= set(ep) for ep in episodes)
    assert all(math.isfinite(ep["c"]) for ep in episodes)


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_ppo_runs_over_each_wrapper(name):
    # Recipe for stable-baselines3: its Monitor INSIDE (so SB3 adds none outside, which would replace
    # info["episode"] by r/l/t only), our statistics outermost.
    env = apply_constraint(
        Monitor(FakeCMDP(vocab_size=5, max_steps=6)), name, budget=BUDGETS.get(name, 3.0), **KWARGS.get(name, {})
    )
    assert_finite_losses_and_statistics(ppo_smoke(env), min_episodes=10)
