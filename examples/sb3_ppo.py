"""stable-baselines3's own PPO on MathDistill-v0, with the shipped student as the policy network.

    pip install -e ".[sb3]"            # stable-baselines3 (not part of the base install)
    python examples/sb3_ppo.py [--steps 2048]

SB3 steps the env token by token (no KV cache in the policy), so this is slower than the agent's Trainer;
it shows that the env plugs into standard RL tooling unchanged (every number comes from the env: reward,
``info["cost"]``, ``info["episode"]`` with the episode cost). The default run (2048 steps, ~30 episodes) takes
about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

try:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
except ImportError:
    raise SystemExit('this example needs stable-baselines3: pip install -e ".[sb3]"') from None

import llm_cmdp_env  # noqa: F401  (registers MathDistill-v0)
from llm_cmdp_agents.interop.sb3_policy import HFCausalLMPolicy
from llm_cmdp_env.wrappers import apply_constraint


class EpisodeCosts(BaseCallback):
    """Collect the finished episodes' statistics (return, cost, constraint satisfied) from the env's info."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[dict] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info and "c" in info["episode"]:
                self.episodes.append(info["episode"])
        return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=2048, help="env steps (tokens) to train on (default: 2048)")
    p.add_argument("--budget", type=float, default=12.0, help="episode cost budget (default: 12)")
    args = p.parse_args()
    torch.set_num_threads(2)
    # SB3's Monitor INSIDE, the constraint stack (with its episode statistics) outside: a Monitor added by SB3
    # on the outside would replace info["episode"] and drop the episode cost (docs/wrappers.md)
    env = apply_constraint(Monitor(gym.make("MathDistill-v0", max_new_tokens=128, max_prompt_tokens=160)), "budget",
                           budget=args.budget)
    model = PPO(HFCausalLMPolicy, env, n_steps=256, batch_size=64, n_epochs=2, learning_rate=1e-5,
                policy_kwargs={"model": "zoo:student"}, device="cpu", verbose=1)
    cb = EpisodeCosts()
    model.learn(args.steps, callback=cb)
    eps = cb.episodes
    if eps:
        half = max(1, len(eps) // 2)
        for name, part in (("first half", eps[:half]), ("second half", eps[half:] or eps[:half])):
            print(f"{name}: {len(part)} episodes, return {np.mean([e['r'] for e in part]):.3f}, "
                  f"cost {np.mean([e['c'] for e in part]):.2f}, "
                  f"satisfied {np.mean([e.get('constraint_satisfied', False) for e in part]):.2f}")


if __name__ == "__main__":
    main()
