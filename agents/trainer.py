"""The on-policy trainer: PPO or GRPO over any single env built by this package, through the fast path.

Each update: draw prompts with the env's own seeded problem stream, sample completions with the policy's
batched KV-cached sampler (log-probs attached), replay them through the env's full wrapper stack with
:func:`llm_cmdp_env.fast_path.replay` (one teacher forward; every wrapper — budget reward, Sauté, the
learned multiplier's auto-update, statistics — sees exactly what a stepping user's would), then optimise
the wrapper stack's per-token reward. The reward optimised is therefore exactly the env's.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from llm_cmdp_agents.checkpoint import LATEST, load_checkpoint, save_checkpoint
from llm_cmdp_agents.env_tools import find_wrapper
from llm_cmdp_agents.grpo import grpo_update
from llm_cmdp_agents.policy import LLMPolicy
from llm_cmdp_agents.ppo import ppo_update
from llm_cmdp_agents.rollout import Rollout
from llm_cmdp_agents.run_log import RunLogger
from llm_cmdp_agents.sampling import sample
from llm_cmdp_agents.saute import SauteTracker, budgets_from_episodes
from llm_cmdp_env.fast_path import prompt_ids, replay, sample_problems
from llm_cmdp_env.wrappers import SauteWrapper

__all__ = ["ALGOS", "TrainConfig", "Trainer"]

ALGOS = ("ppo", "grpo")


@dataclass
class TrainConfig:
    """Trainer settings (all plain values, saved in checkpoints and run folders).

    Parameters
    ----------
    algo : str
        ``"ppo"`` (token-level GAE advantages, value head) or ``"grpo"`` (group-normalised returns, no critic).
    updates : int
        Number of updates :meth:`Trainer.train` runs in total.
    prompts_per_update : int
        Distinct prompts per update.
    group_size : int, optional
        Completions per prompt (default 1 for PPO, 4 for GRPO, which needs >= 2).
    epochs, minibatch_size : int
        Passes over each batch and episodes per gradient step.
    lr, weight_decay : float
        AdamW settings.
    clip : float
        PPO/GRPO ratio clip epsilon.
    vf_coef, ent_coef : float
        Value-loss weight (PPO) and entropy bonus.
    gamma, gae_lambda : float
        Discount and GAE lambda (PPO).
    normalize_advantages : bool
        Whiten PPO advantages over the batch's tokens.
    max_grad_norm : float
        Gradient clipping norm.
    temperature, top_p : float
        The policy's sampling temperature (also used in the training forward) and nucleus filter.
    seed : int
        Seeds the env's problem stream, sampling and minibatch shuffling.
    checkpoint_every : int
        Save a checkpoint every this many updates (0: only at the end and on Ctrl-C).
    """

    algo: str = "ppo"
    updates: int = 20
    prompts_per_update: int = 8
    group_size: int | None = None
    epochs: int = 2
    minibatch_size: int = 8
    lr: float = 2e-5
    weight_decay: float = 0.0
    clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    gamma: float = 1.0
    gae_lambda: float = 0.95
    normalize_advantages: bool = True
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.group_size is None:
            self.group_size = 1 if self.algo == "ppo" else 4
        if self.algo == "grpo" and self.group_size < 2:
            raise ValueError(
                f"GRPO needs group_size >= 2 (advantages are normalised within a group), got {self.group_size}"
            )
        for name in ("updates", "prompts_per_update", "group_size", "epochs", "minibatch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")

    @property
    def episodes_per_update(self) -> int:
        """``prompts_per_update * group_size``."""
        assert self.group_size is not None
        return self.prompts_per_update * self.group_size

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {sorted(unknown)}; accepted: {sorted(names)}")
        return cls(**d)


class Trainer:
    """PPO/GRPO on an LLM policy in a MathDistill env (any wrapper stack), via the fast path.

    Parameters
    ----------
    env : gymnasium.Env
        A single env built by this package (``gym.make("MathDistill-v0", constraint=..., budget=...)`` or
        wrappers applied by hand) — the fast path needs a ``MathDistillEnv`` underneath. It is reset with
        ``config.seed`` here, which seeds its problem stream.
    policy : LLMPolicy
        The policy (student) to train. PPO needs ``value_head=True``. With a ``SauteWrapper`` in the stack a
        budget-conditioned policy (``budget_conditioning=True``) sees z; a plain one ignores it.
    config : TrainConfig
        Settings.
    run_dir : path, optional
        Where logs (``progress.csv``, ``tb/``) and checkpoints (``checkpoints/``) go; nothing is written
        without it.
    progress : bool
        Show a tqdm bar with live reward/cost/accuracy.
    tensorboard : bool
        Also log to TensorBoard when installed.
    """

    def __init__(
        self,
        env: gym.Env,
        policy: LLMPolicy,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = True,
        tensorboard: bool = True,
    ) -> None:
        from llm_cmdp_env.envs.math_distill import MathDistillEnv

        if isinstance(env, gym.vector.VectorEnv) or not isinstance(env.unwrapped, MathDistillEnv):
            raise TypeError(
                "Trainer needs a single env with a MathDistillEnv underneath (gym.make('MathDistill-v0', ...)); "
                f"got {type(env).__name__}. The trainer batches through the fast path itself, no vector env needed."
            )
        self.env = env
        self.base = env.unwrapped
        self.policy = policy
        self.config = config or TrainConfig()
        cfg = self.config
        if policy.vocab_size != self.base.vocab_size:
            raise ValueError(f"policy vocabulary ({policy.vocab_size}) differs from the env's ({self.base.vocab_size})")
        if cfg.algo == "ppo" and policy.value_head is None:
            raise ValueError("PPO needs a policy with a value head: LLMPolicy(..., value_head=True)")
        self.saute = find_wrapper(env, SauteWrapper) is not None
        if policy.budget_conditioned and not self.saute:
            raise ValueError("the policy is budget-conditioned but the env stack has no SauteWrapper")
        self.optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator(device=policy.device).manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.update_idx = 0
        self.history: list[dict[str, Any]] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.tensorboard = tensorboard
        self.interrupted = False
        self._stop = False
        env.reset(seed=cfg.seed)

    # ------------------------------------------------------------------ one update
    def collect(self) -> Rollout:
        """Sample ``episodes_per_update`` completions and replay them through the wrapper stack."""
        cfg = self.config
        assert cfg.group_size is not None
        base = self.base
        problems = sample_problems(self.env, cfg.prompts_per_update)
        problems = [p for p in problems for _ in range(cfg.group_size)]
        groups = np.repeat(np.arange(cfg.prompts_per_update), cfg.group_size)
        prompts = [prompt_ids(self.env, p) for p in problems]
        div = base.divergence
        use_budget = self.saute and self.policy.budget_conditioned
        tracker = SauteTracker(self.env) if use_budget else None
        z0 = tracker.initial(len(prompts)) if tracker is not None else None
        budget_kwargs: dict[str, Any] = {}
        if tracker is not None:
            assert z0 is not None
            budget_kwargs = {"budget0": tracker.start(prompts, z0), "budget_step": tracker.step}
        self.policy.eval()
        samples = sample(self.policy, prompts, base.max_new_tokens, base.eos_ids, base.pad_id,
                         temperature=cfg.temperature, top_p=cfg.top_p, generator=self.generator,
                         full_logprobs=div.needs_full_student, **budget_kwargs)
        # the env picks what its divergence needs from what the sampler attached (DistillSetup.student_logprobs)
        episodes = replay(self.env, problems, samples.completions, student_logprobs=samples.full_logprobs,
                          student_token_logprobs=samples.token_logprobs, keep_infos=use_budget)
        completions = [ep.tokens for ep in episodes]
        old = [lp[: len(c)] for lp, c in zip(samples.token_logprobs, completions)]
        budgets = budgets_from_episodes(z0, episodes) if use_budget and z0 is not None else None
        return Rollout(prompts, completions, old, [ep.rewards for ep in episodes], [ep.costs for ep in episodes],
                       episodes, groups, budgets)

    def step(self) -> dict[str, Any]:
        """Collect one batch, update the policy, log; returns the update's statistics."""
        t0 = time.perf_counter()
        rollout = self.collect()
        update = ppo_update if self.config.algo == "ppo" else grpo_update
        stats = update(self.policy, self.optimizer, rollout, self.config, self.rng)
        self.update_idx += 1
        row = {"update": self.update_idx, "episodes": len(rollout), **rollout.stats(), **stats,
               "seconds": round(time.perf_counter() - t0, 3)}
        self.history.append(row)
        return row

    # ------------------------------------------------------------------ the loop
    def train(self, updates: int | None = None) -> list[dict[str, Any]]:
        """Run until ``updates`` (default ``config.updates``) updates are done in total.

        Checkpoints every ``checkpoint_every`` updates and at the end (with a ``run_dir``). Ctrl-C (SIGINT)
        finishes the current update, saves a checkpoint and returns (``self.interrupted`` is then True); a
        second Ctrl-C stops at once.
        """
        target = self.config.updates if updates is None else int(updates)
        logger = RunLogger(self.run_dir, self.history, self.tensorboard) if self.run_dir is not None else None
        old_handler = self._install_sigint()
        bar = tqdm(total=target, initial=min(self.update_idx, target), disable=not self.progress,
                   desc=f"{self.config.algo}", dynamic_ncols=True)
        try:
            while self.update_idx < target:
                row = self.step()
                if logger is not None:
                    logger.log(row)
                bar.update(1)
                post = {"reward": f"{row['reward']:.3f}", "cost": f"{row['cost']:.2f}", "acc": f"{row['accuracy']:.2f}"}
                if "constraint_satisfaction" in row:
                    post["sat"] = f"{row['constraint_satisfaction']:.2f}"
                if "lambda" in row:
                    post["lam"] = f"{row['lambda']:.3f}"
                bar.set_postfix(post)
                k = self.config.checkpoint_every
                if self.run_dir is not None and k and self.update_idx % k == 0:
                    self.save(periodic=True)
                if self._stop:
                    self.interrupted = True
                    if self.run_dir is not None:
                        path = self.save()
                        tqdm.write(f"interrupted: checkpoint saved to {path}")
                    break
            else:
                if self.run_dir is not None:
                    self.save()
        finally:
            bar.close()
            if logger is not None:
                logger.close()
            self._restore_sigint(old_handler)
        return self.history

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None
        self._stop = False

        def handler(signum: int, frame: Any) -> None:
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True
            tqdm.write("Ctrl-C: finishing this update, then saving a checkpoint (Ctrl-C again to stop at once)")

        return signal.signal(signal.SIGINT, handler)

    @staticmethod
    def _restore_sigint(old: Any) -> None:
        if old is not None:
            signal.signal(signal.SIGINT, old)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path | None = None, periodic: bool = False) -> Path:
        """Save a checkpoint (default ``<run_dir>/checkpoints/latest.pt``; ``periodic`` also keeps a numbered
        copy ``update_000010.pt``)."""
        if path is None:
            if self.run_dir is None:
                raise ValueError("no run_dir: pass a checkpoint path")
            ckpt_dir = self.run_dir / "checkpoints"
            if periodic:
                save_checkpoint(self, ckpt_dir / f"update_{self.update_idx:06d}.pt")
            path = ckpt_dir / LATEST
        return save_checkpoint(self, path)

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint written by :meth:`save` (same config, env stack and policy architecture)."""
        load_checkpoint(self, path)
