"""Environments: the single ``MathDistillEnv`` and its entry points."""

from llm_cmdp_env.envs.math_distill import MathDistillEnv

__all__ = ["MathDistillEnv"]
