"""GSM8K word problems, from a local jsonl file or (when online) from the Hugging Face ``datasets`` hub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from llm_cmdp_env.tasks.base import Problem
from llm_cmdp_env.verify import reference_from_solution


class JsonlTask:
    """Problems read from a jsonl file, one ``{"question": ..., "answer": ...}`` object per line.

    ``answer`` is a GSM8K-style worked solution whose last ``#### N`` line is the reference answer.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On a malformed line; the message names the file and the 1-based line number.
    """

    def __init__(self, path: str | os.PathLike, source: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"dataset file not found: {self.path}")
        self.source = source or str(self.path)
        self.problems: list[Problem] = []
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("expected a JSON object")
                    question, solution = row["question"], row["answer"]
                    if not isinstance(question, str) or not isinstance(solution, str):
                        raise ValueError("'question' and 'answer' must be strings")
                    answer = reference_from_solution(solution)
                except (json.JSONDecodeError, KeyError, ValueError) as e:
                    raise ValueError(f"{self.path}:{lineno}: malformed dataset line ({e})") from e
                self.problems.append(Problem(question, answer, solution, self.source, len(self.problems)))
        if not self.problems:
            raise ValueError(f"{self.path}: no problems in file")

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, i: int) -> Problem:
        return self.problems[i]

    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw one problem uniformly with the env's seeded generator."""
        return self.problems[int(rng.integers(len(self.problems)))]


def gsm8k_path(split: str) -> Path | None:
    """Find a local GSM8K jsonl: ``$LLM_CMDP_GSM8K_DIR/{split}.jsonl`` or ``../shared/data/gsm8k``."""
    candidates = []
    if os.environ.get("LLM_CMDP_GSM8K_DIR"):
        candidates.append(Path(os.environ["LLM_CMDP_GSM8K_DIR"]) / f"{split}.jsonl")
    here = Path.cwd()
    for base in (here, *here.parents):
        candidates.append(base / "shared" / "data" / "gsm8k" / f"{split}.jsonl")
        candidates.append(base.parent / "shared" / "data" / "gsm8k" / f"{split}.jsonl")
    return next((p for p in candidates if p.is_file()), None)


class Gsm8kTask(JsonlTask):
    """GSM8K (MIT). Loaded from a local jsonl when one is found (see :func:`gsm8k_path`), otherwise from
    the ``datasets`` library (``openai/gsm8k``, config ``main``), which needs network access."""

    def __init__(self, split: str = "train") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split must be one of 'train', 'test' for gsm8k, got {split!r}")
        path = gsm8k_path(split)
        if path is not None:
            super().__init__(path, source="gsm8k")
            return
        try:  # pragma: no cover - needs network
            import datasets
        except ImportError as e:  # pragma: no cover
            raise FileNotFoundError(
                "no local GSM8K jsonl found (set LLM_CMDP_GSM8K_DIR) and `datasets` is not installed"
            ) from e
        ds = datasets.load_dataset("openai/gsm8k", "main", split=split)  # pragma: no cover
        self.path = Path(f"hf://openai/gsm8k/{split}")  # pragma: no cover
        self.source = "gsm8k"  # pragma: no cover
        self.problems = [  # pragma: no cover
            Problem(r["question"], reference_from_solution(r["answer"]), r["answer"], "gsm8k", i)
            for i, r in enumerate(ds)
        ]
