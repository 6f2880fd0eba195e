"""Checkpoints that resume a training run exactly: trained weights, optimiser, learned multipliers, every
random generator (env problem stream, Sauté budget draws, sampling, minibatch shuffling), update counter
and log history."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.env_tools import env_state, load_env_state

if TYPE_CHECKING:
    from llm_cmdp_agents.trainer import Trainer

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint"]

LATEST = "latest.pt"
#: TrainConfig fields a resumed run may change (how long to train, how often to save); all others must match.
_MAY_CHANGE = {"updates", "checkpoint_every"}


def save_checkpoint(trainer: Trainer, path: str | Path) -> Path:
    """Write the trainer's full state to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "format": 1,
        "update": trainer.update_idx,
        "config": trainer.config.to_dict(),
        "policy": trainer.policy.trainable_state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "env": env_state(trainer.env),
        "sampling_generator": trainer.generator.get_state(),
        "shuffle_rng": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "numpy_global_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "history": list(trainer.history),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(trainer: Trainer, path: str | Path) -> None:
    """Restore what :func:`save_checkpoint` wrote into a trainer built with the same config, env and policy."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    if state.get("format") != 1:
        raise ValueError(f"{path} is not a llm_cmdp_agents checkpoint (format 1)")
    saved = {k: v for k, v in state["config"].items() if k not in _MAY_CHANGE}
    now = {k: v for k, v in trainer.config.to_dict().items() if k not in _MAY_CHANGE}
    diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if diff:
        raise ValueError(f"checkpoint {path} was written with other settings: "
                         + ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff))
    trainer.policy.load_trainable_state_dict({k: v.to(trainer.policy.device) for k, v in state["policy"].items()})
    trainer.optimizer.load_state_dict(state["optimizer"])
    load_env_state(trainer.env, state["env"])
    trainer.generator.set_state(state["sampling_generator"])
    trainer.rng.bit_generator.state = state["shuffle_rng"]
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_global_rng"])
    random.setstate(state["python_rng"])
    trainer.update_idx = int(state["update"])
    trainer.history = list(state["history"])


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """``<run_dir>/checkpoints/latest.pt`` if it exists."""
    p = Path(run_dir) / "checkpoints" / LATEST
    return p if p.is_file() else None
