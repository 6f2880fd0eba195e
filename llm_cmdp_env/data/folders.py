"""Where dataset files live: the data folders searched, in order, and the names a dataset or split may have."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "GSM8K_DIR_ENV", "SPLIT_NAMES", "SPLIT_NAME_RE", "data_dir", "dev_data_dir",
           "search_dirs", "user_data_dir"]

DATA_DIR_ENV = "LLM_CMDP_DATA_DIR"
"""Environment variable naming the data folder (holding ``gsm8k/``, ``math500/``, ...)."""

GSM8K_DIR_ENV = "LLM_CMDP_GSM8K_DIR"
"""Older environment variable naming the folder of GSM8K's ``train.jsonl``/``test.jsonl`` (still honoured)."""

SPLIT_NAMES = ("train", "validation", "test")
"""File stems that name a split: a jsonl file called ``test.jsonl`` is the test split and nothing else."""

SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
"""What a dataset or split name may be (it names a folder or a file stem)."""


def user_data_dir() -> Path:
    """The per-user default data folder: ``$XDG_CACHE_HOME/llm-cmdp-env/data``, else ``~/.cache/...``."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "llm-cmdp-env" / "data"


def dev_data_dir() -> Path:
    """``shared/data`` beside the repository checkout (the development fallback; may not exist)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def data_dir() -> Path:
    """The data folder fetch and import write into: ``$LLM_CMDP_DATA_DIR``, else :func:`user_data_dir`."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else user_data_dir()


def search_dirs() -> list[tuple[Path, str]]:
    """The data folders searched, in order, each with where it comes from (for messages and ``data list``)."""
    if os.environ.get(DATA_DIR_ENV, "").strip():
        return [(data_dir(), f"${DATA_DIR_ENV}")]
    dirs = [(user_data_dir(), f"user cache folder; set ${DATA_DIR_ENV} to use another")]
    if dev_data_dir().is_dir():
        dirs.append((dev_data_dir(), "development fallback beside the repository"))
    return dirs
