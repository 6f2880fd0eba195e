"""The on-policy trainer: any registered algorithm (:mod:`llm_cmdp_agents.algos`) over any single env built by this
package, through the fast path.

Each update: draw prompts with the env's own seeded problem stream, sample completions with the policy's
batched KV-cached sampler (log-probs attached), replay them through the env's full wrapper stack with
:func:`llm_cmdp_env.replay.fast_path.replay` (one teacher forward; every wrapper — budget reward, Sauté, the
learned multiplier's auto-update, statistics — sees exactly what a stepping user's would), then optimise
the wrapper stack's per-token reward. The reward optimised is therefore exactly the env's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from llm_cmdp_agents.algos.config import TrainConfig
from llm_cmdp_agents.algos.registry import get_algorithm
from llm_cmdp_agents.engine.conditioning import condition_tracker
from llm_cmdp_agents.engine.data_parallel import training_forward
from llm_cmdp_agents.engine.distributed import World
from llm_cmdp_agents.engine.env_stack import stack_budget, wrapper_chain
from llm_cmdp_agents.engine.minibatch import UpdateContext
from llm_cmdp_agents.engine.policy import LLMPolicy
from llm_cmdp_agents.engine.rollout import Rollout, reference_rollout, rollout
from llm_cmdp_agents.run.checkpoint import LATEST, load_checkpoint, save_checkpoint
from llm_cmdp_agents.run.log import RunLogger
from llm_cmdp_agents.run.plots import write_run_plots
from llm_cmdp_env.common.interrupts import GracefulInterrupt
from llm_cmdp_env.common.threads import AdaptiveThreads
from llm_cmdp_env.replay.fast_path import sample_problems

__all__ = ["TrainConfig", "Trainer"]


class Trainer:
    """A registered algorithm (``config.algo``) training an LLM policy in a MathDistill env (any wrapper stack),
    via the fast path.

    Parameters
    ----------
    env : gymnasium.Env
        A single env built by this package (``gym.make("MathDistill-v0", constraint=..., budget=...)`` or
        wrappers applied by hand) — the fast path needs a ``MathDistillEnv`` underneath. It is reset with
        ``config.seed`` here, which seeds its problem stream.
    policy : LLMPolicy
        The policy (student) to train; an algorithm with a critic (PPO) needs ``value_head=True``. With a rule in the
        stack that adds its state to the observation (Sauté's z), a conditioned policy (``conditioning=True``) sees
        it; a plain one ignores it.
    config : TrainConfig
        The algorithm's config (``TrainConfig(algo=...)``; default PPO's).
    run_dir : path, optional
        Where logs (``progress.csv``, ``curves.png``, ``tb/``) and checkpoints (``checkpoints/``) go; nothing is
        written without it.
    progress : bool
        Show a tqdm bar with the task reward, the cost against the budget, lambda and the penalised reward.
    tensorboard : bool
        Also log to TensorBoard when installed.
    wandb : bool or dict
        Also log to Weights & Biases (needs ``wandb``; a dict holds ``wandb.init`` options such as ``project``).
    run_config : dict, optional
        The run's settings, recorded with W&B.
    adaptive_threads : bool
        Before each update, set torch's CPU threads to the cores other processes left free during the previous
        one (:class:`llm_cmdp_env.common.threads.AdaptiveThreads`; ``llm-cmdp train --threads adaptive``; not
        reproducible).
    world : World, optional
        This process's rank in a data-parallel job (``init_world()`` under ``torchrun``; default a world of one).
        Each rank samples and scores its share of every update's prompts, DDP averages the gradients (or FSDP
        shards the student: ``config.parallel``), and the
        statistics that drive a decision are reduced over all ranks (docs/distributed.md). Only rank 0 prints,
        logs and writes checkpoints.
    """

    def __init__(
        self,
        env: gym.Env,
        policy: LLMPolicy,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = True,
        tensorboard: bool = True,
        wandb: bool | dict[str, Any] = False,
        run_config: dict[str, Any] | None = None,
        adaptive_threads: bool = False,
        world: World | None = None,
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
        self.algorithm = get_algorithm(cfg.algo)
        if self.algorithm.value_head and policy.value_head is None:
            raise ValueError(f"{cfg.algo} needs a policy with a value head: LLMPolicy(..., value_head=True)")
        condition_tracker(policy, env)  # a conditioned policy needs a rule adding its state: fail now
        self.world = world or World()
        self._multipliers = _shared_multipliers(env, self.world, cfg.episodes_per_update)
        self.world.share(cfg.prompts_per_update)  # checks that the prompts split evenly over the ranks
        self.forward = training_forward(policy, self.world, cfg.parallel)  # before the optimiser (FSDP shards)
        self.on_policy = True
        #: the episode-cost budget of the stack's statistics, logged in ``progress.csv`` next to the cost
        self.budget = stack_budget(env)
        self.optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator(device=policy.device).manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        setup = self.base.setup
        self.context = UpdateContext(cfg, policy, self.optimizer, self.rng, self.world, self.forward,
                                     teacher=setup.teacher, pad_id=setup.pad_id)
        self.update_idx = 0
        self.history: list[dict[str, Any]] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.tensorboard = tensorboard
        self.wandb = wandb
        self.run_config = run_config
        self.interrupted = False
        self.threads = AdaptiveThreads() if adaptive_threads else None
        env.reset(seed=cfg.seed)

    @property
    def train_seconds(self) -> float:
        """Wall time of the updates done (summed from the log, so a resumed run counts each update once)."""
        return float(sum(row.get("seconds", 0.0) for row in self.history))

    # ------------------------------------------------------------------ one update
    def collect(self) -> Rollout:
        """Sample ``episodes_per_update`` completions and replay them through the wrapper stack."""
        cfg = self.config
        assert cfg.group_size is not None
        world = self.world
        prompts = world.share(cfg.prompts_per_update)  # every rank draws the global batch, keeps its share
        problems = sample_problems(self.env, cfg.prompts_per_update)[prompts]
        problems = [p for p in problems for _ in range(cfg.group_size)]
        groups = np.repeat(np.arange(prompts.start, prompts.stop), cfg.group_size)
        offset = prompts.start * cfg.group_size
        self.policy.eval()
        # an algorithm may train some updates on reference solutions (GKD: one draw per update, the same on every rank)
        reference = self.algorithm.reference
        self.on_policy = reference is None or not reference(cfg, self.rng)
        if self.on_policy:
            batch = rollout(self.policy, self.env, problems, groups=groups, temperature=cfg.temperature,
                            top_p=cfg.top_p, generator=self.generator, rows=(offset, cfg.episodes_per_update))
        else:
            batch = reference_rollout(self.policy, self.env, problems, groups=groups, temperature=cfg.temperature)
        if world.active:
            batch.offset = offset
            batch.global_lengths = np.array(world.concat([len(c) for c in batch.completions]))
            costs = world.concat(batch.episode_costs.tolist())  # in global order, as one process would see them
            for multiplier in self._multipliers:
                for c in costs:
                    multiplier.observe(c)
        return batch

    def step(self) -> dict[str, Any]:
        """Collect one batch, update the policy, log; returns the update's statistics."""
        if self.threads is not None:
            self.threads.adjust()
        t0 = time.perf_counter()
        batch = self.collect()
        stats = self.algorithm.update(self.context, batch)
        self.update_idx += 1
        row = {"update": self.update_idx, "episodes": self.config.episodes_per_update, **batch.stats(self.world),
               "budget": self.budget, **stats, "seconds": round(time.perf_counter() - t0, 3)}
        if self.algorithm.reference is not None:
            row["on_policy"] = float(self.on_policy)  # 0: the batch (and its statistics) are reference solutions
        self.history.append(row)
        return row

    # ------------------------------------------------------------------ the loop
    def train(self, updates: int | None = None) -> list[dict[str, Any]]:
        """Run until ``updates`` (default ``config.updates``) updates are done in total.

        Checkpoints every ``checkpoint_every`` updates and at the end (with a ``run_dir``), and draws the run's
        curves (``curves.png``) at the end. Ctrl-C (SIGINT) or SIGTERM finishes the current update, saves a
        checkpoint and the curves, and returns (``self.interrupted`` is then True); a second one stops at once.
        """
        target = self.config.updates if updates is None else int(updates)
        writes = self.run_dir is not None and self.world.is_main
        logger = None
        if writes:
            config = self.run_config if self.run_config is not None else {"train": self.config.to_dict()}
            logger = RunLogger(self.run_dir, self.history, self.tensorboard, wandb=self.wandb, config=config)
        bar = tqdm(total=target, initial=min(self.update_idx, target), desc=f"{self.config.algo}",
                   disable=not (self.progress and self.world.is_main), dynamic_ncols=True)
        stop = GracefulInterrupt("Ctrl-C: finishing this update, then saving a checkpoint (Ctrl-C again to stop "
                                 "at once)", out=tqdm.write)
        try:
            with stop:
                while self.update_idx < target:
                    row = self.step()
                    if logger is not None:
                        logger.log(row)
                    bar.update(1)
                    bar.set_postfix(progress_fields(row), refresh=False)
                    k = self.config.checkpoint_every
                    if self.run_dir is not None and k and self.update_idx % k == 0:
                        self.save(periodic=True)
                    # every rank stops after the same update (a Ctrl-C may reach the ranks at different times)
                    if self.world.sum(float(stop.requested))[0] > 0:
                        self.interrupted = True
                        break
                if self.run_dir is not None:
                    path = self.save()
                if writes:
                    write_run_plots(self.run_dir, strict=False)
                    if self.interrupted:
                        tqdm.write(f"interrupted: checkpoint saved to {path}")
                self.world.barrier()  # the checkpoint is on disk before any rank goes on (e.g. to resume from it)
        finally:
            bar.close()
            if logger is not None:
                logger.close()
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path | None = None, periodic: bool = False) -> Path:
        """Save a checkpoint (default ``<run_dir>/checkpoints/latest.pt``; ``periodic`` also keeps a numbered
        copy ``update_000010.pt``). In a data-parallel run every rank calls it (an FSDP student's state is
        gathered from all of them) and rank 0 writes."""
        if path is None:
            if self.run_dir is None:
                raise ValueError("no run_dir: pass a checkpoint path")
            ckpt_dir = self.run_dir / "checkpoints"
            copies = (ckpt_dir / f"update_{self.update_idx:06d}.pt",) if periodic else ()
            return save_checkpoint(self, ckpt_dir / LATEST, copies)
        return save_checkpoint(self, path)

    def load(self, path: str | Path) -> None:
        """Resume from a checkpoint written by :meth:`save` (same config, env stack and policy architecture)."""
        load_checkpoint(self, path)


def _shared_multipliers(env: gym.Env, world: World, episodes_per_update: int) -> list[Any]:
    """The learned multipliers of the stack that the trainer itself must feed: in a data-parallel run each rank
    replays only its share of the episodes, so the trainer gives every rank's multiplier the costs of all of
    them, in global order, after each rollout (the stack must not feed it too: ``auto_update=False``)."""
    if not world.active:
        return []
    from llm_cmdp_env.wrappers import ConstraintWrapper, LearnedLagrangian

    out = []
    for layer in wrapper_chain(env):
        rule = getattr(layer, "constraint", None) if isinstance(layer, ConstraintWrapper) else None
        if isinstance(rule, LearnedLagrangian):
            if rule.auto_update:
                raise ValueError("in a data-parallel run build the learned-Lagrangian stack with auto_update=False: "
                                 "the trainer feeds the multiplier the episodes of every rank")
            if rule.multiplier.update_every % episodes_per_update:
                raise ValueError(f"in a data-parallel run the multiplier's update_every "
                                 f"({rule.multiplier.update_every}) must be a multiple of the episodes per update "
                                 f"({episodes_per_update}), so every episode of a batch sees the same lambda")
            out.append(rule.multiplier)
        if rule is not None and rule.draws_at_start():
            raise ValueError(f"{type(rule).__name__} draws random numbers when episodes start (e.g. Sauté's sampled "
                             "initial budget); that is not supported in data-parallel runs yet (each rank would draw "
                             "its own stream)")
    return out


def progress_fields(row: dict[str, Any]) -> dict[str, str]:
    """What the progress bar shows of an update: accuracy (task reward), the batch's mean cost against the budget,
    constraint satisfaction and lambda when there are any, and the penalised reward the learner optimises,
    labelled as such (it can fall far below the task reward while lambda grows)."""
    out = {"acc": f"{row['accuracy']:.2f}"}
    budget = row.get("budget")
    out["cost"] = f"{row['cost']:.2f}" + (f"/{budget:g}" if budget is not None else "")
    if row.get("constraint_satisfaction") is not None:
        out["sat"] = f"{row['constraint_satisfaction']:.2f}"
    if row.get("lambda") is not None:
        out["lam"] = f"{row['lambda']:.3f}"
    out["penalised_r"] = f"{row['reward']:.3f}"
    return out

