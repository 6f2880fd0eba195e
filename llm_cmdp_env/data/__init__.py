"""Datasets by name: the registry (``registry``), where their jsonl files are looked for (``folders``), the line
formats (``lines``), how files get there (``install``), and what a path given as ``dataset=`` means (``paths``).

A named dataset (``"gsm8k"``, ``"math500"``) is one jsonl file per split, ``<data dir>/<name>/<split>.jsonl``.
Folders searched, in order:

1. ``$LLM_CMDP_GSM8K_DIR/<split>.jsonl`` (gsm8k only; the older variable, kept as an alias).
2. ``$LLM_CMDP_DATA_DIR`` when set, and then nothing else (an explicit choice is never mixed with defaults).
   When unset: the per-user cache folder ``$XDG_CACHE_HOME/llm-cmdp-env/data`` (else
   ``~/.cache/llm-cmdp-env/data``), then ``shared/data`` beside the repository checkout, the development
   fallback (searched only when that folder exists).

Nothing is ever downloaded while loading: a missing file is a :class:`FileNotFoundError` that lists every
path tried and the command that fixes it. Files get into the data folder explicitly, through
:func:`fetch_dataset` (``llm-cmdp data fetch NAME``, Hugging Face Hub through ``datasets``) or
:func:`import_dataset` (``llm-cmdp data import NAME PATH``, a copy you already have). Both validate every
line first and write each file atomically (temp file + rename), so a failed run leaves no partial file.
"""

from llm_cmdp_env.data.folders import (
    DATA_DIR_ENV,
    GSM8K_DIR_ENV,
    SPLIT_NAMES,
    data_dir,
    dev_data_dir,
    search_dirs,
    user_data_dir,
)
from llm_cmdp_env.data.install import DataFile, FetchError, fetch_dataset, hub_offline, import_dataset, list_data
from llm_cmdp_env.data.lines import Row, parse_any_row, parse_gsm8k_row, parse_jsonl, parse_math_row, read_jsonl
from llm_cmdp_env.data.paths import HOLDOUT_EVERY, DatasetFile, holdout_part, resolve_dataset_path
from llm_cmdp_env.data.registry import (
    REGISTRY,
    DatasetSpec,
    candidate_paths,
    dataset_path,
    find_dataset_file,
    fix_hint,
    get_spec,
    is_dataset_name,
    local_datasets,
)

__all__ = [
    "DATA_DIR_ENV", "DataFile", "DatasetFile", "DatasetSpec", "FetchError", "GSM8K_DIR_ENV", "HOLDOUT_EVERY",
    "REGISTRY", "Row", "SPLIT_NAMES", "candidate_paths", "data_dir", "dataset_path", "dev_data_dir",
    "fetch_dataset", "find_dataset_file", "fix_hint", "get_spec", "holdout_part", "hub_offline", "import_dataset",
    "is_dataset_name", "list_data", "local_datasets", "parse_any_row", "parse_gsm8k_row", "parse_jsonl",
    "parse_math_row", "read_jsonl", "resolve_dataset_path", "search_dirs", "user_data_dir",
]
