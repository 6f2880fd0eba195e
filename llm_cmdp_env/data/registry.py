"""Datasets by name: the registry of built-in datasets, the datasets imported into a data folder, and where a
named dataset's split file is found (nothing is downloaded while looking)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_cmdp_env.data.folders import GSM8K_DIR_ENV, SPLIT_NAME_RE, SPLIT_NAMES, data_dir, search_dirs
from llm_cmdp_env.data.lines import Row, parse_any_row, parse_gsm8k_row, parse_math_row

__all__ = ["LOCAL_DESCRIPTION", "REGISTRY", "DatasetSpec", "candidate_paths", "dataset_path", "find_dataset_file",
           "fix_hint", "get_spec", "is_dataset_name", "local_datasets", "local_spec"]


@dataclass(frozen=True)
class DatasetSpec:
    """What the project knows about one named dataset.

    Attributes
    ----------
    name : str
        The ``dataset=`` name and the folder name under the data folder.
    splits : tuple of str
        The splits it has; the first is the default (``split=None``).
    hub_id, hub_config : str, str or None
        Where :func:`fetch_dataset` gets it (``datasets.load_dataset(hub_id, hub_config, split=...)``).
    parse : callable
        Validates one JSON object of a line and returns its :class:`Row`.
    files : dict
        File name per split (default ``<split>.jsonl``).
    description : str
        One line for ``llm-cmdp data list`` and the docs.
    """

    name: str
    splits: tuple[str, ...]
    hub_id: str
    hub_config: str | None
    parse: Callable[[dict[str, Any]], Row]
    description: str = ""
    files: dict[str, str] = field(default_factory=dict)

    @property
    def default_split(self) -> str:
        """The split ``split=None`` means."""
        return self.splits[0]

    def file_name(self, split: str) -> str:
        """The file name of ``split`` (checked with :meth:`check_split` first)."""
        return self.files.get(split, f"{split}.jsonl")

    def check_split(self, split: str | None) -> str:
        """Return ``split`` (or the default split for None); a split the dataset lacks is a ValueError."""
        if split is None:
            return self.default_split
        if split not in self.splits:
            raise ValueError(f"split={split!r} is not a split of dataset {self.name!r}; it has {self.splits}")
        return split


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("gsm8k", ("train", "test"), "openai/gsm8k", "main", parse_gsm8k_row,
                    "grade-school math word problems (MIT); answers end in '#### N'"),
        DatasetSpec("math500", ("test",), "HuggingFaceH4/MATH-500", None, parse_math_row,
                    "500 MATH competition problems of 'Let's Verify Step by Step' (MIT); LaTeX answers"),
    )
}
"""Every named dataset, by name."""


LOCAL_DESCRIPTION = "your own dataset (llm-cmdp data import); GSM8K or MATH line format"


def _split_order(stems: Iterable[str]) -> tuple[str, ...]:
    stems = set(stems)
    return tuple([s for s in SPLIT_NAMES if s in stems] + sorted(stems - set(SPLIT_NAMES)))


def local_spec(name: str, splits: Iterable[str]) -> DatasetSpec:
    return DatasetSpec(name, _split_order(splits), "", None, parse_any_row, LOCAL_DESCRIPTION)


def local_datasets() -> dict[str, DatasetSpec]:
    """Datasets that are not built in but have a folder ``<data dir>/<name>/`` of ``<split>.jsonl`` files in a
    searched data folder (what ``llm-cmdp data import NAME FILE`` makes), by name; the first folder wins."""
    out: dict[str, DatasetSpec] = {}
    for d, _ in search_dirs():
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            stems = [f.name[: -len(".jsonl")] for f in sub.glob("*.jsonl")] if sub.is_dir() else []
            if sub.name not in REGISTRY and sub.name not in out and SPLIT_NAME_RE.match(sub.name) and stems:
                out[sub.name] = local_spec(sub.name, stems)
    return out


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``, or the local dataset of that name (:func:`local_datasets`); an unknown
    name is a ValueError listing the known ones."""
    if name in REGISTRY:
        return REGISTRY[name]
    local = local_datasets()
    if isinstance(name, str) and name in local:
        return local[name]
    raise ValueError(f"unknown dataset name {name!r}: expected one of {(*REGISTRY, *local)} (built in, or imported "
                     f"with llm-cmdp data import NAME FILE into {data_dir()})")


def is_dataset_name(name: object) -> bool:
    """Whether ``name`` names a built-in or a local dataset."""
    return isinstance(name, str) and (name in REGISTRY or name in local_datasets())


def candidate_paths(name: str, split: str | None = None) -> list[tuple[Path, str]]:
    """Every file :func:`find_dataset_file` tries for ``(name, split)``, in order, with its origin."""
    spec = get_spec(name)
    split = spec.check_split(split)
    out: list[tuple[Path, str]] = []
    alias = os.environ.get(GSM8K_DIR_ENV, "").strip()
    if name == "gsm8k" and alias:
        out.append((Path(alias).expanduser() / spec.file_name(split), f"${GSM8K_DIR_ENV} (older alias)"))
    out.extend((d / name / spec.file_name(split), origin) for d, origin in search_dirs())
    return out


def dataset_path(name: str, split: str | None = None) -> Path | None:
    """The first existing file of ``(name, split)``, or None."""
    return next((p for p, _ in candidate_paths(name, split) if p.is_file()), None)


def fix_hint(name: str) -> str:
    """The commands that put dataset ``name`` into the data folder (for error messages)."""
    spec = get_spec(name)
    if not spec.hub_id:
        return f"To add a split to it: llm-cmdp data import {name} FILE --split SPLIT   (writes into {data_dir()})"
    need = "" if importlib.util.find_spec("datasets") else "; needs `pip install datasets`"
    files = "/".join(spec.file_name(s) for s in spec.splits)
    return (
        f"To get it, run (online): llm-cmdp data fetch {name}   (downloads {spec.hub_id} from the Hugging Face Hub"
        f"{need})\nor, with a copy of the files: llm-cmdp data import {name} PATH   (PATH: a folder holding "
        f"{files}, or one .jsonl file with --split)\nBoth write into {data_dir()}."
    )


def find_dataset_file(name: str, split: str | None = None) -> Path:
    """The jsonl file of ``(name, split)``.

    Raises
    ------
    ValueError
        Unknown name, or a split the dataset does not have.
    FileNotFoundError
        No file found: the message lists every path tried, in order, and the commands that fix it.
    """
    candidates = candidate_paths(name, split)
    for path, _ in candidates:
        if path.is_file():
            return path
    split = get_spec(name).check_split(split)
    tried = "\n".join(f"  {p}   ({origin})" for p, origin in candidates)
    raise FileNotFoundError(f"dataset {name!r} split {split!r} not found. Looked for, in order:\n{tried}\n"
                            f"{fix_hint(name)}")
