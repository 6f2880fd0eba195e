"""Training logs: a CSV file (always), TensorBoard scalars (when the ``tensorboard`` package is installed) and,
on request, Weights & Biases (``wandb``)."""

from __future__ import annotations

import csv
import importlib
import io
import math
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llm_cmdp_env.common.atomic_io import write_text_atomic

__all__ = ["COLUMNS", "WANDB_ID_FILE", "WANDB_PROJECT", "RunLogger", "require_wandb"]

#: CSV columns, in order; a statistic an update does not produce is left empty. ``reward`` is the penalised /
#: shaped return the learner optimises, ``task_reward`` the task return alone, ``cost`` the episode cost,
#: ``budget`` the run's constraint budget d, ``lambda`` the Lagrange multiplier (Lagrangian constraints only).
COLUMNS = (
    "update", "episodes", "reward", "task_reward", "cost", "budget", "accuracy", "length", "constraint_satisfaction",
    "lambda", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm", "seconds",
)

#: File in the run folder holding the W&B run id, so a resumed run continues the same W&B run.
WANDB_ID_FILE = "wandb_run_id"
#: W&B project used when ``wandb=True`` (a dict may name another).
WANDB_PROJECT = "llm-cmdp"


def require_wandb() -> Any:
    """Import and return the ``wandb`` module, or raise an ImportError saying how to install it.

    Call it before any expensive work (model loading, the before-training evaluation) when W&B logging was
    asked for, so a missing package fails at once.
    """
    try:
        return importlib.import_module("wandb")
    except ImportError as e:
        raise ImportError("Weights & Biases logging was requested but the wandb package is not installed: "
                          "pip install wandb (or drop --wandb)") from e


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a row (bools as 0/1), ``update`` excluded."""
    return {k: float(v) for k, v in row.items() if k != "update" and isinstance(v, (int, float))}


class RunLogger:
    """Append one row per update to ``<run_dir>/progress.csv``, TensorBoard (``<run_dir>/tb``) and optionally W&B.

    Parameters
    ----------
    run_dir : path
        The run folder.
    history : sequence of dict
        Rows already logged (on resume): the CSV is rewritten from them (atomically: temporary file + rename,
        so a kill cannot leave a truncated log), so rows logged after the checkpoint being resumed from
        disappear and the log continues exactly where the model does. Later rows are appended one by one.
    tensorboard : bool
        Also write TensorBoard event files (skipped with a warning if ``tensorboard`` is absent).
    wandb : bool or dict
        Also log to Weights & Biases (off by default). ``True`` uses project :data:`WANDB_PROJECT`; a dict is
        passed to ``wandb.init`` on top of the defaults (``project``, ``entity``, ``name``, ``group``, ``tags``,
        ``mode``, ...). The W&B run id is kept in ``<run_dir>/wandb_run_id`` and the run is opened with
        ``resume="allow"``, so a resumed training run continues the same W&B run. Steps are update numbers;
        W&B keeps the steps it already has, so after resuming from an older checkpoint the replayed updates
        stay as first logged there (the CSV, rewritten from the checkpoint, is the exact record).
    config : dict, optional
        The run's configuration (``{"env": ..., "policy": ..., "train": ...}``), stored as the W&B run config.

    Raises
    ------
    ImportError
        ``wandb`` was requested but the package is not installed (the run folder is left untouched).
    """

    def __init__(self, run_dir: str | Path, history: Sequence[Mapping[str, Any]] = (), tensorboard: bool = True,
                 *, wandb: bool | Mapping[str, Any] = False, config: Mapping[str, Any] | None = None) -> None:
        wandb_module = require_wandb() if wandb else None  # fail before touching the run folder
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "progress.csv"
        self._write_history(history)
        self.tb = None
        self.wandb_run: Any = None
        self._closed = False
        if wandb_module is not None:
            self.wandb_run = self._init_wandb(wandb_module, {} if wandb is True else dict(wandb), config, history)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:
                warnings.warn("tensorboard is not installed: logging to progress.csv only", stacklevel=2)

    # ------------------------------------------------------------------ CSV
    def _write_history(self, history: Sequence[Mapping[str, Any]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow(row)
        write_text_atomic(self.csv_path, buf.getvalue())

    # ------------------------------------------------------------------ W&B
    def wandb_run_id(self) -> str:
        """The W&B run id of this run folder (created and stored in ``wandb_run_id`` on first use)."""
        path = self.run_dir / WANDB_ID_FILE
        if path.is_file():
            run_id = path.read_text().strip()
            if run_id:
                return run_id
        run_id = uuid.uuid4().hex[:16]
        write_text_atomic(path, run_id + "\n")
        return run_id

    def _init_wandb(self, wandb: Any, options: dict[str, Any], config: Mapping[str, Any] | None,
                    history: Sequence[Mapping[str, Any]]) -> Any:
        if "id" in options:  # an explicit id becomes the folder's id
            write_text_atomic(self.run_dir / WANDB_ID_FILE, f"{options['id']}\n")
        kwargs: dict[str, Any] = {"project": WANDB_PROJECT, "dir": str(self.run_dir), "resume": "allow",
                                  "id": self.wandb_run_id(), "config": dict(config) if config is not None else None}
        kwargs.update(options)
        run = wandb.init(**kwargs)
        # history rows W&B does not have yet (W&B enabled on a resumed run): log them now
        start = getattr(run, "step", 0)
        start = start if isinstance(start, int) else 0
        for row in history:
            if int(row["update"]) >= start:
                self._log_wandb(run, row)
        return run

    @staticmethod
    def _log_wandb(run: Any, row: Mapping[str, Any]) -> None:
        metrics = {f"train/{k}": v for k, v in _scalars(row).items() if math.isfinite(v)}
        run.log(metrics, step=int(row["update"]))

    # ------------------------------------------------------------------ logging
    def log(self, row: Mapping[str, Any]) -> None:
        """Write one update's statistics (``row["update"]`` is the step)."""
        with self.csv_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore").writerow(row)
        step = int(row["update"])
        if self.tb is not None:
            for k, v in _scalars(row).items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.flush()
        if self.wandb_run is not None:
            self._log_wandb(self.wandb_run, row)

    def close(self) -> None:
        """Close the TensorBoard writer and finish the W&B run (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        if self.tb is not None:
            self.tb.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
