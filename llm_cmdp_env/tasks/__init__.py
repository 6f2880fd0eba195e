"""Tasks: where problems come from. :func:`load_task` maps the env's ``dataset=`` argument to a task."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from llm_cmdp_env.data.paths import resolve_dataset_path
from llm_cmdp_env.data.registry import REGISTRY, find_dataset_file, get_spec, is_dataset_name
from llm_cmdp_env.tasks.base import Problem
from llm_cmdp_env.tasks.jsonl import JsonlTask

DATASETS = ("arithmetic", *REGISTRY)
"""Names accepted by ``dataset=`` (besides a path to a jsonl file or a folder of split files)."""


class Task(Protocol):
    """What the env needs from a task: seeded sampling and indexing."""

    def sample(self, rng: np.random.Generator) -> Problem: ...

    def __getitem__(self, i: int) -> Problem: ...

    def __len__(self) -> int: ...


def _has_separator(name: str) -> bool:
    return name.endswith(".jsonl") or any(sep in name for sep in (os.sep, os.altsep) if sep)


def _is_path(name: str) -> bool:
    """A ``dataset=`` string that is not a registered name is a path if it looks like one or exists."""
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return name.endswith(".jsonl") or any(sep in name for sep in seps) or Path(name).exists()


def load_task(dataset: str | os.PathLike | Task = "arithmetic", split: str | None = None) -> Task:
    """Build the task named by ``dataset``.

    Parameters
    ----------
    dataset : str, path or task object
        ``"arithmetic"`` (procedural, the embedded default); a dataset name of
        :data:`llm_cmdp_env.data.registry.REGISTRY` (``"gsm8k"``, ``"math500"``), read from the data folder (see
        :mod:`llm_cmdp_env.data`; never downloaded here); a path to a jsonl file or to a folder holding
        ``<split>.jsonl`` files, GSM8K format (``question``/``answer`` ending in ``#### N``) or MATH format
        (``problem``/``answer``); or any object with ``sample(rng)``, ``__getitem__`` and ``__len__``
        (returned as is, ``split`` ignored).
    split : str, optional
        None means the default: ``"train"`` for ``"arithmetic"``, gsm8k and a folder, the only split
        ``"test"`` for math500, nine problems in ten of a file path. A problem never serves two splits: a file
        named ``train``/``validation``/``test.jsonl`` is that split only, any other file holds ``"train"`` (nine
        in ten) and ``"test"`` (every 10th) (see :func:`llm_cmdp_env.data.paths.resolve_dataset_path`).

    Raises
    ------
    ValueError
        Unknown name, a split the dataset does not have, a split a file is not, or a malformed line.
    FileNotFoundError
        A named dataset's file is missing (the message lists the paths tried and the fix), or a path is.
    """
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a string or None, got {type(split).__name__}")
    if not isinstance(dataset, (str, os.PathLike)):
        if all(hasattr(dataset, m) for m in ("sample", "__getitem__", "__len__")):
            return dataset
        raise TypeError(f"dataset must be a name, a path or a task object, got {type(dataset).__name__}")
    if isinstance(dataset, str) and dataset == "arithmetic":
        from llm_cmdp_env.tasks.arithmetic import ArithmeticTask

        return ArithmeticTask(split="train" if split is None else split)
    if isinstance(dataset, str) and not _has_separator(dataset) and is_dataset_name(dataset):
        spec = get_spec(dataset)  # built in, or your own imported one (llm-cmdp data import NAME FILE)
        s = spec.check_split(split)
        return JsonlTask(find_dataset_file(dataset, s), source=dataset, parse=spec.parse, split=s)
    if isinstance(dataset, os.PathLike) or _is_path(dataset):
        f = resolve_dataset_path(dataset, split)
        return JsonlTask(f.path, split=f.split, part=f.part)
    raise ValueError(
        f"unknown dataset {dataset!r}: expected one of {DATASETS}, a path to a .jsonl file or a folder of "
        f"<split>.jsonl files, or a task object"
    )


__all__ = ["DATASETS", "Problem", "Task", "load_task"]
