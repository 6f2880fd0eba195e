"""Problems read from a jsonl file: a named dataset's split file or a custom file given by path."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from llm_cmdp_env.data.lines import Row, parse_any_row, read_jsonl
from llm_cmdp_env.data.paths import holdout_part
from llm_cmdp_env.tasks.base import Problem


class JsonlTask:
    """The problems of one jsonl file, one JSON object per line, indexed in line order.

    Parameters
    ----------
    path : path
        The file.
    source : str, optional
        ``Problem.source`` of every problem (default: the path).
    parse : callable
        Validates one line's object (default: GSM8K format ``question``/``answer`` with a ``#### N`` line,
        or MATH format ``problem``/``answer``/``solution``; see :mod:`llm_cmdp_env.data`).
    split : str, optional
        The split the file stands for (informative: shown by ``repr``).
    part : str, optional
        ``"train"`` or ``"test"``: only that part of a single file (see
        :func:`llm_cmdp_env.data.paths.resolve_dataset_path`); ``Problem.index`` stays the problem's place in the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On a malformed line (the message names the file and the 1-based line number) or an empty file.
    """

    def __init__(self, path: str | os.PathLike, source: str | None = None,
                 parse: Callable[[dict[str, Any]], Row] = parse_any_row, split: str | None = None,
                 part: str | None = None) -> None:
        self.path = Path(path)
        self.source = source or str(self.path)
        self.split = split
        rows = read_jsonl(path, parse)
        self.problems: list[Problem] = [
            Problem(r.question, r.answer, r.solution, self.source, i) for i, r in enumerate(rows)
            if holdout_part(i, part)
        ]
        if not self.problems:
            raise ValueError(f"{self.path} has {len(rows)} problems: too few to hold out every 10th as the {part!r} "
                             "split; pass a test file of its own (or a folder of <split>.jsonl files)")

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, i: int) -> Problem:
        return self.problems[i]

    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw one problem uniformly with the env's seeded generator."""
        return self.problems[int(rng.integers(len(self.problems)))]

    def __repr__(self) -> str:
        return f"JsonlTask({str(self.path)!r}, source={self.source!r}, split={self.split!r}, n={len(self)})"
