"""Training logs: a CSV file (always) and TensorBoard scalars (when the ``tensorboard`` package is installed)."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "RunLogger"]

#: CSV columns, in order; a statistic an update does not produce is left empty.
COLUMNS = (
    "update", "episodes", "reward", "cost", "accuracy", "length", "constraint_satisfaction", "lambda",
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm", "seconds",
)


class RunLogger:
    """Append one row per update to ``<run_dir>/progress.csv`` and to TensorBoard under ``<run_dir>/tb``.

    Parameters
    ----------
    run_dir : path
        The run folder.
    history : sequence of dict
        Rows already logged (on resume): the CSV is rewritten from them, so rows logged after the checkpoint
        being resumed from disappear and the log continues exactly where the model does.
    tensorboard : bool
        Also write TensorBoard event files (skipped with a warning if ``tensorboard`` is absent).
    """

    def __init__(self, run_dir: str | Path, history: Sequence[dict[str, Any]] = (), tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "progress.csv"
        with self.csv_path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            for row in history:
                w.writerow(row)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:
                warnings.warn("tensorboard is not installed: logging to progress.csv only", stacklevel=2)

    def log(self, row: dict[str, Any]) -> None:
        """Write one update's statistics."""
        with self.csv_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            step = int(row["update"])
            for k, v in row.items():
                if k != "update" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self.tb is not None:
            self.tb.close()
