"""Building a run's env stack and policy from its plain settings: the composition root of a training run, an
evaluation, a comparison run and a benchmark."""

from __future__ import annotations

import gymnasium as gym

from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.run.config import EnvConfig, PolicyConfig, RunConfig

__all__ = ["conditions_on_budget", "make_env", "make_eval_env", "make_policy"]


def make_env(cfg: EnvConfig, split: str | None = None, constraint: bool = True, dataset: str | None = None,
             base: gym.Env | None = None, learn_multiplier: bool = True) -> gym.Env:
    """The env of ``cfg`` on ``split`` (None: the dataset's default), optionally on another ``dataset``;
    ``constraint=False`` keeps only the episode statistics (with the budget). ``base``: wrap this
    ``MathDistillEnv`` (models already loaded) in a fresh stack instead of building one.
    ``learn_multiplier=False``: a rule that learns from episodes (the learned Lagrange multiplier) is not fed by the
    stack (evaluations, which must not train it, and data-parallel training, where the trainer feeds it every
    rank's episodes)."""
    from llm_cmdp_env.envs.math_distill import MathDistillEnv
    from llm_cmdp_env.wrappers import apply_constraint, constraint_spec

    if base is None:
        base = MathDistillEnv(teacher=cfg.teacher, dataset=dataset or cfg.dataset, split=split,
                              divergence=cfg.divergence, max_new_tokens=cfg.max_new_tokens,
                              max_prompt_tokens=cfg.max_prompt_tokens, device=cfg.device, **cfg.env_kwargs)
    elif not isinstance(base, MathDistillEnv):
        raise TypeError(f"base must be a bare MathDistillEnv (env.unwrapped), got {type(base).__name__}: a wrapped "
                        "stack would be wrapped twice")
    else:  # a reused base must be the split it stands for, or an evaluation would silently score other problems
        have = getattr(base.setup.task, "split", None)
        if split is not None and have is not None and have != split:
            raise ValueError(f"base env holds the {have!r} split, {split!r} was asked for")
    # built directly (not via gym.make) so no PassiveEnvChecker/OrderEnforcing layers sit in the stack
    spec = constraint_spec(cfg.constraint)
    if constraint:
        kwargs = dict(cfg.constraint_kwargs)
        if spec.learns and not learn_multiplier:
            kwargs["auto_update"] = False
        return apply_constraint(base, cfg.constraint, budget=cfg.budget, **kwargs)
    return apply_constraint(base, "none", budget=spec.statistics_budget(cfg.budget))


def make_eval_env(cfg: RunConfig, base: gym.Env | None = None) -> gym.Env:
    """The env of the run's evaluations: its constraint stack on the evaluation split, with a learned multiplier
    that the evaluated episodes do not train. Pass the ``base`` of a previous evaluation env to reuse its loaded
    models: the stack is always fresh, so any rule state starts from its initial value and no evaluation depends
    on an earlier one (or on how its batches were spread over ranks)."""
    return make_env(cfg.env, cfg.eval.split, dataset=cfg.eval.dataset, base=base, learn_multiplier=False)


def conditions_on_budget(cfg: PolicyConfig, constraint: str) -> bool:
    """Whether the policy reads the budget state: as set in ``cfg``, else when the constraint's rule adds its state
    to the observation (as Sauté does)."""
    from llm_cmdp_env.wrappers import constraint_spec

    if cfg.budget_conditioning is not None:
        return cfg.budget_conditioning
    return constraint_spec(constraint).observation_key is not None


def make_policy(cfg: PolicyConfig, algo: str, constraint: str, seed: int | None = None) -> LLMPolicy:
    """The policy of ``cfg`` for algorithm ``algo`` (a value head when the algorithm has a critic; conditioned as
    :func:`conditions_on_budget` says). ``seed``: the weights a policy starts from that are drawn at random (LoRA
    adapters) are drawn from it, on their own stream, so one run's fresh policy is the same in every process (and
    for its "before" evaluation on resume); None draws from torch's global generator."""
    import torch

    from llm_cmdp_agents.algos.registry import get_algorithm

    cond = conditions_on_budget(cfg, constraint)

    def build() -> LLMPolicy:
        return LLMPolicy(cfg.model, value_head=get_algorithm(algo).value_head, conditioning=cond, device=cfg.device,
                         lora=cfg.lora, gradient_checkpointing=cfg.gradient_checkpointing, decode=cfg.decode)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
