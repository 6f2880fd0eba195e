"""Roll a random policy and the shipped student through MathDistill-v0 with the paper's budget reward."""

import gymnasium as gym

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_env.cli.demo import SamplingPolicy

env = gym.make("MathDistill-v0", divergence="teacher_nll", constraint="budget", budget=40.0, max_new_tokens=128)
policy = SamplingPolicy("zoo:student", temperature=0.7)  # any policy: it only has to return token ids
for seed in range(3):
    obs, info = env.reset(seed=seed)
    policy.start(env.unwrapped.prompt_ids)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act())
        done = terminated or truncated
    ep = info["episode"]
    print(f"{info['completion']!r}\n  correct={info['correct']} return={ep['r']:.1f} cost={ep['c']:.1f} "
          f"within budget={ep['constraint_satisfied']}")
