"""LLM policy agents that train a student in MathDistill environments.

Installed under the import name ``llm_cmdp_agents`` (the folder is ``agents/``; the distinct name keeps it
from shadowing the OpenAI Agents SDK's top-level ``agents`` package). Main entry points:

- :class:`llm_cmdp_agents.policy.LLMPolicy` — any Hugging Face causal LM as a token policy;
- :class:`llm_cmdp_agents.trainer.Trainer` / :class:`~llm_cmdp_agents.trainer.TrainConfig` — PPO and GRPO
  over any env stack through the fast path;
- :func:`llm_cmdp_agents.evaluate.evaluate_policy` — accuracy and constraint satisfaction on test problems;
- :class:`llm_cmdp_agents.sb3_policy.HFCausalLMPolicy` — the stable-baselines3 bridge;
- :func:`llm_cmdp_agents.compare.run_compare` — the constraint-method sweep behind ``llm-cmdp compare``.

See docs/agent.md.
"""

from llm_cmdp_agents.evaluate import evaluate_policy
from llm_cmdp_agents.policy import LLMPolicy
from llm_cmdp_agents.trainer import TrainConfig, Trainer

__all__ = ["LLMPolicy", "TrainConfig", "Trainer", "evaluate_policy"]
