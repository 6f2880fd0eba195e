"""A rollout demo: the shipped student writes solutions in ``MathDistill-v0``; per episode we print the
problem, the student's answer, the reward and the summed cost. The policy attaches its own log-probs to
each action, so every divergence works without the env running the student a second time."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from llm_cmdp_env.episode.actions import TokenAction
from llm_cmdp_env.models.loading import load_model
from llm_cmdp_env.scoring.logprobs import IncrementalScorer


class SamplingPolicy:
    """Token-by-token sampling from a causal LM with its own KV cache (temperature 0 = greedy)."""

    def __init__(self, model: Any = "zoo:student", device: str = "cpu", temperature: float = 1.0,
                 seed: int = 0) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.model = load_model(model, device)
        self.scorer = IncrementalScorer(self.model)
        self.temperature = temperature
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def start(self, prompt_ids: list[int]) -> None:
        self.scorer.reset(prompt_ids)

    def act(self) -> TokenAction:
        logp = self.scorer.logprobs()
        if self.temperature == 0:
            token = int(logp.argmax())
        else:
            probs = torch.softmax(logp.cpu() / self.temperature, -1)
            token = int(torch.multinomial(probs, 1, generator=self.generator))
        self.scorer.push(token)
        return TokenAction(token, logprobs=logp)


def run_demo(episodes: int = 3, seed: int = 0, divergence: str = "teacher_nll", temperature: float = 1.0,
             max_new_tokens: int = 96, device: str = "cpu", out=print) -> list[dict[str, Any]]:
    """Roll the shipped student out for ``episodes`` episodes and print a summary of each."""
    env = gym.make("MathDistill-v0", divergence=divergence, max_new_tokens=max_new_tokens, device=device)
    policy = SamplingPolicy("zoo:student", device, temperature, seed)
    results = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        policy.start(list(obs["input_ids"][: info["prompt_length"]]))
        total_cost, done = 0.0, False
        while not done:
            obs, reward, term, trunc, step_info = env.step(policy.act())
            total_cost += step_info["cost"]
            done = term or trunc
        res = {"question": info["question"], "reference": info["reference"],
               "answer": step_info["extracted_answer"], "reward": reward, "cost": total_cost,
               "length": step_info["length"], "truncated": bool(trunc)}
        results.append(res)
        out(f"--- episode {ep + 1}/{episodes} ---")
        out(f"problem:  {res['question']}")
        out(f"student:  {step_info['completion'].strip()!r}")
        out(f"answer:   {res['answer']} (reference {res['reference']})  reward={reward:.1f}  "
            f"summed {divergence} cost={total_cost:.2f} over {res['length']} tokens")
    acc = float(np.mean([r["reward"] for r in results]))
    out(f"=== {episodes} episodes: accuracy {acc:.2f}, mean summed cost {np.mean([r['cost'] for r in results]):.2f}")
    env.close()
    return results
