"""GSM8K (MIT): older entry points kept for callers; loading goes through :mod:`llm_cmdp_env.data` like
every named dataset (``load_task("gsm8k", split)``)."""

from __future__ import annotations

from pathlib import Path

from llm_cmdp_env.data.registry import dataset_path
from llm_cmdp_env.tasks.jsonl import JsonlTask

__all__ = ["JsonlTask", "gsm8k_path"]


def gsm8k_path(split: str) -> Path | None:
    """The local GSM8K jsonl of ``split`` (``"train"``/``"test"``), or None when there is none.

    Same search as every named dataset (see :func:`llm_cmdp_env.data.registry.candidate_paths`), which includes the
    older ``$LLM_CMDP_GSM8K_DIR``.
    """
    return dataset_path("gsm8k", split)
