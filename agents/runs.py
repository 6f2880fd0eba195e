"""Run folders: build the env and the policy from a plain config, train with before/after evaluation, and
write everything a run leaves behind.

A run folder holds::

    config.json          env / policy / train settings (what ``llm-cmdp eval RUN`` and ``--resume`` read)
    progress.csv         one row per update (reward, cost, accuracy, constraint satisfaction, lambda, losses)
    tb/                  TensorBoard event files (when tensorboard is installed)
    checkpoints/         latest.pt (+ update_XXXXXX.pt every checkpoint_every updates)
    final/               the trained policy (loads as a Hugging Face model; usable as the env's student=)
    results.json         evaluation before and after training, training time
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from llm_cmdp_agents.checkpoint import latest_checkpoint
from llm_cmdp_agents.evaluate import evaluate_policy
from llm_cmdp_agents.policy import LLMPolicy
from llm_cmdp_agents.trainer import TrainConfig, Trainer

__all__ = ["EnvConfig", "PolicyConfig", "is_run_dir", "load_run_policy", "make_env", "train_run"]

CONFIG_FILE = "config.json"
FINAL_DIR = "final"
RESULTS_FILE = "results.json"


@dataclass
class EnvConfig:
    """How to build the env: ``gym.make("MathDistill-v0", **env_kwargs, constraint=..., budget=...)``.

    ``budget`` is also the constraint-satisfaction threshold of the evaluation (summed episode cost; for
    ``worst-case``, the per-token bound of every prefix).
    """

    teacher: str = "zoo:teacher"
    dataset: str = "arithmetic"
    divergence: str = "teacher_nll"
    max_new_tokens: int = 96
    max_prompt_tokens: int = 256
    device: str = "cpu"
    constraint: str = "none"
    budget: float | None = None
    constraint_kwargs: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class PolicyConfig:
    """How to build the policy (see :class:`~llm_cmdp_agents.policy.LLMPolicy`)."""

    model: str = "zoo:student"
    device: str = "auto"
    lora: dict[str, Any] | None = None
    gradient_checkpointing: bool = False
    budget_conditioning: bool | None = None  # None: on iff the constraint is "saute"


def make_env(cfg: EnvConfig, split: str = "train", constraint: bool = True) -> gym.Env:
    """The env of ``cfg`` on ``split``; ``constraint=False`` keeps only the episode statistics (with the budget)."""
    kwargs: dict[str, Any] = dict(teacher=cfg.teacher, dataset=cfg.dataset, split=split, divergence=cfg.divergence,
                                  max_new_tokens=cfg.max_new_tokens, max_prompt_tokens=cfg.max_prompt_tokens,
                                  device=cfg.device, **cfg.env_kwargs)
    if constraint:
        return _make(kwargs, cfg.constraint, cfg.budget, cfg.constraint_kwargs)
    budget = None if cfg.constraint == "worst-case" else cfg.budget
    return _make(kwargs, "none", budget, {})


def _make(kwargs: dict[str, Any], constraint: str, budget: float | None, ckw: dict[str, Any]) -> gym.Env:
    from llm_cmdp_env.envs.math_distill import MathDistillEnv
    from llm_cmdp_env.wrappers import apply_constraint

    # built directly (not via gym.make) so no PassiveEnvChecker/OrderEnforcing layers sit in the stack
    return apply_constraint(MathDistillEnv(**kwargs), constraint, budget=budget, **dict(ckw))


def make_policy(cfg: PolicyConfig, algo: str, constraint: str) -> LLMPolicy:
    """The policy of ``cfg`` (value head for PPO; budget conditioning for Sauté unless set explicitly)."""
    cond = (constraint == "saute") if cfg.budget_conditioning is None else cfg.budget_conditioning
    return LLMPolicy(cfg.model, value_head=(algo == "ppo"), budget_conditioning=cond, device=cfg.device,
                     lora=cfg.lora, gradient_checkpointing=cfg.gradient_checkpointing)


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a run folder written by :func:`train_run`."""
    p = Path(path)
    return (p / CONFIG_FILE).is_file() and "train" in json.loads((p / CONFIG_FILE).read_text())


def read_run_config(run_dir: str | Path) -> tuple[EnvConfig, PolicyConfig, TrainConfig, dict[str, Any]]:
    """The configs stored in a run folder."""
    raw = json.loads((Path(run_dir) / CONFIG_FILE).read_text())
    return EnvConfig(**raw["env"]), PolicyConfig(**raw["policy"]), TrainConfig.from_dict(raw["train"]), raw


def load_run_policy(run_dir: str | Path, device: str = "auto") -> LLMPolicy:
    """The trained policy of a run: ``final/`` if the run finished, else the latest checkpoint."""
    run_dir = Path(run_dir)
    if (run_dir / FINAL_DIR / "agent_config.json").is_file():
        return LLMPolicy.from_pretrained(run_dir / FINAL_DIR, device=device)
    env_cfg, pol_cfg, train_cfg, _ = read_run_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir} has neither {FINAL_DIR}/ nor checkpoints/latest.pt")
    import torch

    pol_cfg.device = device
    policy = make_policy(pol_cfg, train_cfg.algo, env_cfg.constraint)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    policy.load_trainable_state_dict({k: v.to(policy.device) for k, v in state["policy"].items()})
    return policy


def train_run(
    run_dir: str | Path,
    env_cfg: EnvConfig,
    policy_cfg: PolicyConfig,
    train_cfg: TrainConfig,
    *,
    eval_n: int = 100,
    eval_batch_size: int = 64,
    resume: bool = False,
    progress: bool = True,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a policy and write a run folder; evaluate on the test split before and after.

    With ``resume=True`` the run continues from ``checkpoints/latest.pt`` (the stored config is used and
    must describe the same run; ``train_cfg.updates`` may be raised to train longer).

    Returns
    -------
    dict
        ``before`` and ``after`` evaluations (see :func:`~llm_cmdp_agents.evaluate.evaluate_policy`),
        ``train_seconds``, ``updates``, ``interrupted``, ``run_dir``.
    """
    run_dir = Path(run_dir)
    results_path = run_dir / RESULTS_FILE
    prior: dict[str, Any] = {}
    if resume:
        if not is_run_dir(run_dir):
            raise FileNotFoundError(f"--resume: {run_dir} is not a run folder (no {CONFIG_FILE})")
        stored_env, stored_pol, stored_train, _ = read_run_config(run_dir)
        stored_train.updates = train_cfg.updates
        env_cfg, policy_cfg, train_cfg = stored_env, stored_pol, stored_train
        if results_path.is_file():
            prior = json.loads(results_path.read_text())
    elif (run_dir / "checkpoints").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True (--resume) or another folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(
        {"env": vars(env_cfg), "policy": vars(policy_cfg), "train": train_cfg.to_dict()}, indent=2, default=str))

    env = make_env(env_cfg, "train")
    test_env = make_env(env_cfg, "test")
    policy = make_policy(policy_cfg, train_cfg.algo, env_cfg.constraint)
    trainer = Trainer(env, policy, train_cfg, run_dir=run_dir, progress=progress)
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")

    def evaluate() -> dict[str, Any]:
        return evaluate_policy(policy, test_env, eval_n, batch_size=eval_batch_size, budget=env_cfg.budget)

    if ckpt is not None:
        before = prior.get("before")
    else:
        before = evaluate() if eval_n else None
        if before is not None:
            out(f"before: accuracy {before['accuracy']:.3f}  constraint satisfaction "
                f"{_fmt(before['constraint_satisfaction'])}  mean cost {before['mean_cost']:.2f}  "
                f"mean length {before['mean_length']:.1f}  (n={eval_n} test problems)")
    if ckpt is not None:
        trainer.load(ckpt)
        out(f"resumed from {ckpt} at update {trainer.update_idx}")
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0 + float(prior.get("train_seconds", 0.0))
    if trainer.interrupted:
        out(f"interrupted at update {trainer.update_idx}: resume with --resume (checkpoint in {run_dir}/checkpoints)")
        results = {"before": before, "after": None, "train_seconds": seconds, "updates": trainer.update_idx,
                   "interrupted": True, "run_dir": str(run_dir)}
        results_path.write_text(json.dumps(results, indent=2))
        return results
    policy.save_pretrained(run_dir / FINAL_DIR, tokenizer=env.unwrapped.tokenizer)
    after = evaluate() if eval_n else None
    if after is not None:
        out(f"after:  accuracy {after['accuracy']:.3f}  constraint satisfaction "
            f"{_fmt(after['constraint_satisfaction'])}  mean cost {after['mean_cost']:.2f}  "
            f"mean length {after['mean_length']:.1f}  ({trainer.update_idx} updates, {seconds:.0f} s)")
    results = {"before": before, "after": after, "train_seconds": seconds, "updates": trainer.update_idx,
               "interrupted": trainer.interrupted, "run_dir": str(run_dir),
               "last_update": trainer.history[-1] if trainer.history else None}
    results_path.write_text(json.dumps(results, indent=2))
    return results


def _fmt(x: float | None) -> str:
    return "n/a (no budget)" if x is None else f"{x:.3f}"
