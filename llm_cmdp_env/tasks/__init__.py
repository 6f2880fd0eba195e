"""Tasks: where problems come from. :func:`load_task` maps the env's ``dataset=`` argument to a task."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from llm_cmdp_env.tasks.base import Problem

DATASETS = ("arithmetic", "gsm8k")
"""Names accepted by ``dataset=`` (besides a path to a jsonl file)."""


class Task(Protocol):
    """What the env needs from a task: seeded sampling and indexing."""

    def sample(self, rng: np.random.Generator) -> Problem: ...

    def __getitem__(self, i: int) -> Problem: ...

    def __len__(self) -> int: ...


def load_task(dataset: str | os.PathLike | Task = "arithmetic", split: str = "train") -> Task:
    """Build the task named by ``dataset``.

    Parameters
    ----------
    dataset : str, path or task object
        ``"arithmetic"`` (procedural, the embedded default), ``"gsm8k"``, a path to a jsonl file with
        ``question``/``answer`` fields, or any object with ``sample(rng)``, ``__getitem__`` and ``__len__``.
    split : str
        ``"train"`` or ``"test"`` (ignored for a jsonl path).
    """
    if not isinstance(dataset, (str, os.PathLike)):
        if all(hasattr(dataset, m) for m in ("sample", "__getitem__", "__len__")):
            return dataset
        raise TypeError(f"dataset must be a name, a path or a task object, got {type(dataset).__name__}")
    name = str(dataset)
    if name == "arithmetic":
        from llm_cmdp_env.tasks.arithmetic import ArithmeticTask

        return ArithmeticTask(split=split)
    if name == "gsm8k":
        from llm_cmdp_env.tasks.gsm8k import Gsm8kTask

        return Gsm8kTask(split=split)
    if name.endswith(".jsonl") or os.sep in name or Path(name).exists():
        from llm_cmdp_env.tasks.gsm8k import JsonlTask

        return JsonlTask(name)
    raise ValueError(f"unknown dataset {name!r}: expected one of {DATASETS} or a path to a .jsonl file")


__all__ = ["DATASETS", "Problem", "Task", "load_task"]
