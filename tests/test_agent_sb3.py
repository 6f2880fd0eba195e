"""The stable-baselines3 bridge: SB3's own PPO trains the LM policy in MathDistill and learns an easy reward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402

from llm_cmdp_agents.interop.sb3_policy import HFCausalLMPolicy  # noqa: E402
from tests.test_agent_helpers import LowTokenReward, tiny_env  # noqa: E402


def test_sb3_ppo_learns_the_easy_reward(tiny_dir, tiny_env_kwargs, one_thread):
    env = LowTokenReward(tiny_env(tiny_env_kwargs), cut=200)
    model = PPO(HFCausalLMPolicy, env, n_steps=96, batch_size=48, n_epochs=4, learning_rate=1e-2, seed=0,
                policy_kwargs={"model": str(tiny_dir / "student")}, device="cpu")
    obs, _ = env.reset(seed=123)

    def low_token_mass() -> float:
        o = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
        with torch.no_grad():
            p = model.policy.get_distribution(o).distribution.probs[0]
        return float(p[1:200].sum())

    before = low_token_mass()
    model.learn(480)
    after = low_token_mass()
    logged = model.logger.name_to_value
    assert np.isfinite(logged["train/loss"]) and np.isfinite(logged["train/value_loss"])
    assert 0.4 < before < 0.6
    assert after > before + 0.15, (before, after)
    action, _ = model.predict(obs, deterministic=True)
    assert 0 <= int(action) < env.action_space.n


def test_sb3_bridge_rejects_wrong_spaces(tiny_dir):
    from gymnasium import spaces

    with pytest.raises(TypeError, match="Discrete"):
        HFCausalLMPolicy(spaces.Dict({"input_ids": spaces.Box(0, 9, (4,), np.int64)}), spaces.Box(0, 1, (2,)),
                         lambda _: 1e-3, model=str(tiny_dir / "student"))


def test_sb3_bridge_reads_the_saute_budget(tiny_dir, tiny_env_kwargs, one_thread):
    env = tiny_env(tiny_env_kwargs, "saute", budget=40.0)
    model = PPO(HFCausalLMPolicy, env, n_steps=32, batch_size=16, n_epochs=1, learning_rate=1e-2, seed=0,
                policy_kwargs={"model": str(tiny_dir / "student"), "conditioning": True}, device="cpu")
    obs, _ = env.reset(seed=1)
    o = {k: torch.as_tensor(v)[None] for k, v in obs.items()}
    low = {**o, "saute_budget": o["saute_budget"] * 0 - 1.0}

    def probs(x):
        return model.policy.get_distribution(x).distribution.probs

    with torch.no_grad():
        assert torch.allclose(probs(o), probs(low))  # zero-initialised projection: z changes nothing yet
        model.policy.llm.condition_proj.weight.normal_(0, 1.0)  # (a constant vector would vanish in LayerNorm)
        assert not torch.allclose(probs(o), probs(low))  # now z changes the action distribution
    model.learn(64)
    assert np.isfinite(model.logger.name_to_value["train/loss"])
