"""The two fast ways in: a native batched vector env, and replaying whole completions (one teacher
forward per batch) through a wrapper stack."""

import gymnasium as gym
import numpy as np

import llm_cmdp_env  # noqa: F401
from llm_cmdp_env.replay.fast_path import prompt_ids, replay, sample_problems
from llm_cmdp_env.wrappers import apply_constraint

# 1. Vector env: 8 episodes, one batched teacher forward per step, Gymnasium 1.x autoreset.
venv = gym.make_vec("MathDistill-v0", num_envs=8, max_new_tokens=16)
obs, infos = venv.reset(seed=0)
rng = np.random.default_rng(0)
for _ in range(16):
    obs, rewards, terminated, truncated, infos = venv.step(rng.integers(3, 300, size=8))
print("per-token costs of the last step:", np.round(infos["cost"], 2))

# 2. Fast path: generate completions however you like, then score them through the full stack.
env = apply_constraint(gym.make("MathDistill-v0", max_new_tokens=48).unwrapped, "budget", budget=30.0)
env.reset(seed=0)
problems = sample_problems(env, 4)
eos = env.unwrapped.tokenizer.eos_token_id
completions = [[int(t) for t in rng.integers(3, 300, size=10)] + [eos] for _ in problems]
for p, ep in zip(problems, replay(env, problems, completions)):
    print(len(prompt_ids(env, p)), "prompt tokens;", f"return {ep.rewards.sum():.1f}, cost {ep.costs.sum():.1f}",
          ep.final_info["episode"])
