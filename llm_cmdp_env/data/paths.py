"""A jsonl file or folder given as ``dataset=path``: which split it stands for, and the held-out part of a single
file (one problem never serves two splits)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from llm_cmdp_env.data.folders import SPLIT_NAME_RE, SPLIT_NAMES

__all__ = ["HOLDOUT_EVERY", "DatasetFile", "check_split_name", "holdout_part", "resolve_dataset_path"]


def check_split_name(split: str) -> None:
    if not isinstance(split, str) or not SPLIT_NAME_RE.match(split):
        raise ValueError(f"split must be a split name such as 'train' or 'test' (a file stem), got {split!r}")


HOLDOUT_EVERY = 10
"""A single file not named for a split holds two disjoint splits: ``test`` = every 10th problem (0-based
indices 9, 19, 29, ...), ``train`` = all the others."""


class DatasetFile(NamedTuple):
    """What ``dataset=path, split=...`` means: the file, the split it stands for, and which part of the file
    (``"train"``/``"test"`` of :data:`HOLDOUT_EVERY` for a single file not named for a split, else None: all
    of it)."""

    path: Path
    split: str | None
    part: str | None = None


def holdout_part(index: int, part: str | None) -> bool:
    """Whether problem ``index`` (0-based, in file order) of a single file belongs to ``part``."""
    if part is None:
        return True
    held = index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
    return held if part == "test" else not held


def resolve_dataset_path(path: str | os.PathLike, split: str | None = None) -> DatasetFile:
    """The jsonl file that ``dataset=path, split=split`` means, the split it stands for, and the part of it.

    The rule never lets one problem serve two splits:

    - a folder holds ``<split>.jsonl``; ``split=None`` means ``"train"``.
    - a file named for a split (``train.jsonl``, ``validation.jsonl``, ``test.jsonl``) is that split only:
      ``split`` must be None or equal to its stem.
    - any other file (``mine.jsonl``) holds two disjoint splits: ``test`` is every 10th problem (0-based
      indices 9, 19, ...), ``train`` (and ``split=None``) the other nine in ten. So ``llm-cmdp train --dataset
      mine.jsonl`` trains on nine tenths and evaluates on the held-out tenth. Other splits are refused.

    Raises
    ------
    FileNotFoundError
        The path, or the folder's split file, does not exist (the message lists what the folder holds).
    ValueError
        ``split`` asks a file for a split it is not.
    """
    p = Path(path).expanduser()
    if split is not None:
        check_split_name(split)
    if p.is_dir():
        s = "train" if split is None else split
        f = p / f"{s}.jsonl"
        if not f.is_file():
            held = tuple(sorted(q.name[: -len(".jsonl")] for q in p.glob("*.jsonl")))
            why = " (split=None means 'train' for a folder)" if split is None else ""
            hint = f"; it holds the splits {held}: pass split= one of them" if held else "; it holds no .jsonl file"
            raise FileNotFoundError(f"dataset folder {p} has no {f.name}{why}{hint}")
        return DatasetFile(f, s)
    if not p.is_file():
        raise FileNotFoundError(f"dataset file not found: {p}")
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.stem
    if stem in SPLIT_NAMES:
        if split not in (None, stem):
            raise ValueError(
                f"dataset={str(p)!r} is the {stem!r} split, so split={split!r} would reuse it for another split: "
                f"pass the {split} file's path, or the folder holding {stem}.jsonl and {split}.jsonl"
            )
        return DatasetFile(p, stem)
    if split not in (None, "train", "test"):
        raise ValueError(
            f"dataset={str(p)!r} is one file whose name is not a split name: it holds the splits 'train' (nine "
            f"problems in ten) and 'test' (every {HOLDOUT_EVERY}th), not {split!r}. Pass a {split} file's path, or "
            f"a folder holding train.jsonl and {split}.jsonl"
        )
    part = "train" if split is None else split
    return DatasetFile(p, part, part)
