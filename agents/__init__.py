"""LLM policy agents that train a student in MathDistill environments.

Installed under the import name ``llm_cmdp_agents`` (the folder is ``agents/``; the distinct name keeps it
from shadowing the OpenAI Agents SDK's top-level ``agents`` package). Main entry points:

- :class:`llm_cmdp_agents.engine.policy.LLMPolicy` — any Hugging Face causal LM as a token policy;
- :class:`llm_cmdp_agents.run.trainer.Trainer` / :class:`~llm_cmdp_agents.run.config.TrainConfig` — PPO and GRPO
  over any env stack through the fast path;
- :func:`llm_cmdp_agents.engine.rollout.rollout` — sample with the policy, score through the env's wrapper stack;
- :func:`llm_cmdp_agents.run.evaluate.evaluate_policy` — accuracy and constraint satisfaction on test problems;
- :class:`llm_cmdp_agents.interop.sb3_policy.HFCausalLMPolicy` — the stable-baselines3 bridge;
- :func:`llm_cmdp_agents.experiments.compare.run_compare` — the constraint-method sweep behind ``llm-cmdp compare``.

The names below are imported lazily (importing the package stays light: ``llm_cmdp_agents.run.config`` needs no
torch). See docs/agent.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"LLMPolicy": "policy", "TrainConfig": "config", "Trainer": "trainer", "evaluate_policy": "evaluate",
         "rollout": "rollout"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"llm_cmdp_agents.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'llm_cmdp_agents' has no attribute {name!r}")
