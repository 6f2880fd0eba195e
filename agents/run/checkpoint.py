"""Checkpoints that resume a training run exactly, and that are never silently wrong.

A checkpoint holds the trained weights, optimiser, learned multipliers, every random generator (env problem
stream, Sauté budget draws, sampling, minibatch shuffling), update counter and log history. One file holds the
state and its SHA-256 (a header line before the ``torch.save`` bytes), written atomically (temp file, fsync,
rename), so a kill at any instant leaves the previous checkpoint or the new one, both whole and checkable. It is
verified before loading: a file cut short or with flipped bytes is named on stderr and the newest intact checkpoint
of the run is used instead (:func:`latest_checkpoint`), or a clear error is raised. Checkpoints written with the
digest in a ``<name>.sha256`` file beside them still load.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm_cmdp_agents.engine.data_parallel import load_training_state, training_state
from llm_cmdp_agents.engine.env_stack import env_state, load_env_state
from llm_cmdp_agents.run.config import TrainConfig
from llm_cmdp_env.common.atomic_io import write_bytes_atomic

if TYPE_CHECKING:
    from llm_cmdp_agents.run.trainer import Trainer

__all__ = ["CheckpointError", "latest_checkpoint", "load_checkpoint", "read_checkpoint", "save_checkpoint",
           "verify_checkpoint", "write_checkpoint"]

LATEST = "latest.pt"
FORMAT = 2
#: TrainConfig fields a resumed run may change (how long to train, how often to save); all others must match.
_MAY_CHANGE = {"updates", "checkpoint_every"}
_NUMBERED = re.compile(r"update_(\d+)\.pt$")


#: The first line of a checkpoint file; the second is ``sha256:<hex digest of the rest>``.
MAGIC = b"llm_cmdp_agents checkpoint\n"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, damaged, or written by other settings)."""


def _sidecar(path: Path) -> Path:
    """Where checkpoints written before the digest moved into the file keep it."""
    return path.with_name(path.name + ".sha256")


def save_checkpoint(trainer: Trainer, path: str | Path, copies: tuple[Path, ...] = ()) -> Path:
    """Write the trainer's full state to ``path`` (and to each of ``copies`` first) atomically, each with its
    checksum beside it. In a data-parallel run every rank may call it; rank 0 writes (an FSDP student's state is
    gathered from every rank first, so there every rank must call it)."""
    path = Path(path)
    if trainer.config.parallel != "fsdp" and not trainer.world.is_main:
        return path
    model, optim = training_state(trainer.policy, trainer.optimizer, trainer.config.parallel)
    if not trainer.world.is_main:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "format": FORMAT,
        "update": trainer.update_idx,
        "config": trainer.config.to_dict(),
        "policy": model,
        "optimizer": optim,
        "env": env_state(trainer.env),
        "sampling_generator": trainer.generator.get_state(),
        "shuffle_rng": trainer.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "numpy_global_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "history": list(trainer.history),
    }
    write_checkpoint(state, path, copies)
    return path


def write_checkpoint(state: dict[str, Any], path: str | Path, copies: tuple[Path, ...] = ()) -> None:
    """Write a checkpoint's state dict to ``path`` (and to each of ``copies`` first): its SHA-256 and the
    ``torch.save`` bytes in one file, renamed into place at once (whole and checkable, or absent)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    framed = MAGIC + f"sha256:{hashlib.sha256(data).hexdigest()}\n".encode() + data
    for target in (*copies, Path(path)):
        write_bytes_atomic(target, framed)
        _sidecar(target).unlink(missing_ok=True)  # a digest file left by an older checkpoint of this name


def verify_checkpoint(path: str | Path) -> bytes:
    """The checkpoint's state bytes after checking them against the recorded SHA-256; raises
    :class:`CheckpointError` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    raw = path.read_bytes()
    if raw.startswith(MAGIC):
        header, sep, data = raw[len(MAGIC):].partition(b"\n")
        want = header.decode(errors="replace").removeprefix("sha256:") if sep else ""
    else:  # the older layout: the digest in <name>.sha256 beside the file
        side = _sidecar(path)
        if not side.is_file():
            raise CheckpointError(f"{path}: no checksum (neither in the file nor in {side.name}; cut off while "
                                  "being written?)")
        text = side.read_text()
        want, data = (text.split()[0] if text.strip() else ""), raw
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise CheckpointError(f"{path}: SHA-256 {got[:12]}... does not match the recorded {want[:12]}... "
                              f"(damaged, or cut off while being written)")
    return data


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state dict of a verified checkpoint; raises :class:`CheckpointError` if it is damaged or of another
    format."""
    state = torch.load(io.BytesIO(verify_checkpoint(path)), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a llm_cmdp_agents checkpoint of format {FORMAT} (found {found!r})")
    return state


def load_checkpoint(trainer: Trainer, path: str | Path) -> None:
    """Restore what :func:`save_checkpoint` wrote into a trainer built with the same config, env and policy
    (verified first: a damaged file raises :class:`CheckpointError`)."""
    state = read_checkpoint(Path(path))
    # through TrainConfig: a field added since the checkpoint was written takes its default
    saved = {k: v for k, v in TrainConfig.from_dict(state["config"]).to_dict().items() if k not in _MAY_CHANGE}
    now = {k: v for k, v in trainer.config.to_dict().items() if k not in _MAY_CHANGE}
    diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if diff:
        raise CheckpointError(f"checkpoint {path} was written with other settings: "
                              + ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff))
    load_training_state(trainer.policy, trainer.optimizer, state["policy"], state["optimizer"], trainer.config.parallel)
    load_env_state(trainer.env, state["env"])
    trainer.generator.set_state(state["sampling_generator"])
    trainer.rng.bit_generator.state = state["shuffle_rng"]
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_global_rng"])
    random.setstate(state["python_rng"])
    trainer.update_idx = int(state["update"])
    trainer.history = list(state["history"])


def read_policy_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The trained tensors of a (verified) checkpoint, e.g. to evaluate an unfinished run."""
    return read_checkpoint(Path(path))["policy"]


def _candidates(ckpt_dir: Path) -> list[Path]:
    """``latest.pt``, then the numbered checkpoints, newest first."""
    numbered = sorted((p for p in ckpt_dir.glob("update_*.pt") if _NUMBERED.search(p.name)),
                      key=lambda p: int(_NUMBERED.search(p.name).group(1)), reverse=True)  # type: ignore[union-attr]
    latest = ckpt_dir / LATEST
    return ([latest] if latest.is_file() else []) + numbered


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest intact checkpoint of a run (``checkpoints/latest.pt``, else the highest ``update_*.pt``), or
    None when the run has none. Damaged ones are skipped with a note on stderr naming them; when every
    checkpoint is damaged, :class:`CheckpointError` lists them."""
    found = _candidates(Path(run_dir) / "checkpoints")
    problems = []
    for path in found:
        try:
            verify_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            print(f"warning: skipping checkpoint {e}", file=sys.stderr)
            continue
        if problems:
            print(f"warning: resuming from the newest intact checkpoint {path}", file=sys.stderr)
        return path
    if problems:
        raise CheckpointError("no intact checkpoint in " + str(Path(run_dir) / "checkpoints") + ":\n  "
                              + "\n  ".join(problems))
    return None
