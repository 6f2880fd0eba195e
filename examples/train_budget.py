"""Train the shipped student with PPO under the paper's budget reward, then compare it with the untrained one.

    python examples/train_budget.py [--updates 30] [--budget 2]

Uses the agent's Python API (the CLI equivalent is ``llm-cmdp train --constraint budget --budget 2``).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_agents import LLMPolicy, TrainConfig, Trainer, evaluate_policy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--updates", type=int, default=30)
    p.add_argument("--budget", type=float, default=2.0)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--out", default="runs/example-budget")
    args = p.parse_args()
    torch.set_num_threads(2)

    env = gym.make("MathDistill-v0", constraint="budget", budget=args.budget, max_new_tokens=args.max_new_tokens)
    test_env = gym.make("MathDistill-v0", split="test", constraint="none", budget=args.budget,
                        max_new_tokens=args.max_new_tokens)
    policy = LLMPolicy("zoo:student")  # CUDA + bf16 autocast when a GPU is visible, CPU otherwise
    print("before:", evaluate_policy(policy, test_env, n=args.n_test))
    cfg = TrainConfig(algo="ppo", updates=args.updates, prompts_per_update=16, lr=2e-5)
    trainer = Trainer(env, policy, cfg, run_dir=args.out)
    trainer.train()  # Ctrl-C: finishes the current update and saves a checkpoint
    print("after: ", evaluate_policy(policy, test_env, n=args.n_test))
    policy.save_pretrained(f"{args.out}/final", tokenizer=env.unwrapped.tokenizer)


if __name__ == "__main__":
    main()
