"""The model zoo: a small teacher/student pair shipped inside the package so everything runs offline.

Both are GPT-2-style causal LMs trained by :mod:`llm_cmdp_env.zoo.train` on the procedural arithmetic task
(:class:`llm_cmdp_env.tasks.arithmetic.ArithmeticTask`) with the prompt
``PLAIN_PROMPT_TEMPLATE.format(question=q) + " " + solution + eos``. They share one tokenizer (saved in
each folder), so each folder loads with ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained``. The teacher solves the task reliably; the student is a smaller,
clearly weaker model, so a distillation/RL run has room to improve it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ZOO_DIR", "ZOO_MODELS", "zoo_model_path"]

ZOO_DIR: Path = Path(__file__).resolve().parent / "weights"
"""Folder holding one sub-folder per shipped model."""

ZOO_MODELS: tuple[str, ...] = ("teacher", "student", "shortcut-student")
"""Names of the shipped models (``shortcut-student``: the second testbed's student, see docs/zoo.md)."""


def zoo_model_path(name: str) -> Path:
    """Return the folder of the shipped model ``name`` (``"teacher"`` or ``"student"``).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`ZOO_MODELS`.
    FileNotFoundError
        If the weights are missing (e.g. a source checkout where they were not built); the message says
        how to rebuild them.
    """
    if name not in ZOO_MODELS:
        raise ValueError(f"unknown zoo model {name!r}: expected one of {ZOO_MODELS}")
    path = ZOO_DIR / name
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise FileNotFoundError(
            f"zoo model {name!r} not found at {path} (config.json and *.safetensors expected); "
            f"rebuild the zoo with `python -m llm_cmdp_env.zoo.train --out {ZOO_DIR}`"
        )
    return path
