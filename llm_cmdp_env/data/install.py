"""Getting dataset files into the data folder: ``llm-cmdp data import`` (a copy you have), ``data fetch`` (the
Hugging Face Hub, through ``datasets``) and ``data list``. Every line is validated before anything is written,
and each file is written atomically, so a failed run leaves no partial file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llm_cmdp_env.common.atomic_io import write_bytes_atomic
from llm_cmdp_env.data.folders import SPLIT_NAME_RE, SPLIT_NAMES, data_dir
from llm_cmdp_env.data.lines import decode_text, parse_jsonl
from llm_cmdp_env.data.paths import check_split_name
from llm_cmdp_env.data.registry import REGISTRY, DatasetSpec, candidate_paths, get_spec, local_datasets, local_spec

__all__ = ["DataFile", "FetchError", "fetch_dataset", "hub_offline", "import_dataset", "list_data"]

_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class DataFile:
    """One dataset file: where it is (or would be written) and what happened to it / how many lines it has.

    ``status`` is ``"written"``, ``"replaced"`` or ``"unchanged"`` after fetch/import, ``"found"`` or
    ``"missing"`` in :func:`list_data`.
    """

    name: str
    split: str
    path: Path | None
    lines: int | None
    status: str
    origin: str = ""


class FetchError(RuntimeError):
    """A dataset could not be downloaded (offline, ``datasets`` missing, Hub error); nothing was written."""


def _install(spec: DatasetSpec, payload: dict[str, tuple[bytes, int, str]], force: bool) -> list[DataFile]:
    """Write validated ``{split: (bytes, lines, source)}`` into the data folder; check every target first."""
    folder = data_dir() / spec.name
    plan: list[tuple[str, Path, bytes, int, str]] = []
    for split, (data, n, source) in payload.items():
        target = folder / spec.file_name(split)
        if target.is_file():
            if target.read_bytes() == data:
                plan.append((split, target, data, n, "unchanged"))
                continue
            if not force:
                raise FileExistsError(f"{target} already exists and differs from {source}; pass --force "
                                      f"(force=True) to replace it")
            plan.append((split, target, data, n, "replaced"))
        else:
            plan.append((split, target, data, n, "written"))
    folder.mkdir(parents=True, exist_ok=True)
    for _, target, data, _, status in plan:
        if status != "unchanged":
            write_bytes_atomic(target, data)
    return [DataFile(spec.name, s, t, n, status) for s, t, _, n, status in plan]


def _import_splits(spec: DatasetSpec, source: Path, split: str | None) -> dict[str, Path]:
    """Which file of ``source`` (a jsonl file or a folder of split files) is which split of ``spec``."""
    if split is not None:
        spec.check_split(split)
    if source.is_dir():
        wanted = [split] if split is not None else list(spec.splits)
        found = {s: source / spec.file_name(s) for s in wanted if (source / spec.file_name(s)).is_file()}
        if not found:
            names = ", ".join(spec.file_name(s) for s in wanted)
            raise FileNotFoundError(f"folder {source} holds none of {names} (the files of {spec.name!r})")
        return found
    if not source.is_file():
        raise FileNotFoundError(f"import source not found: {source}")
    stem = source.name[: -len(".jsonl")] if source.name.endswith(".jsonl") else source.stem
    if stem in spec.splits or stem in SPLIT_NAMES:
        if split not in (None, stem):
            raise ValueError(f"{source} is named for the {stem!r} split, but --split {split} was given: "
                             f"rename the file or pass the {split} file")
        return {spec.check_split(stem): source}
    if split is None:
        raise ValueError(f"cannot tell which split {source} is (its name is not one of {spec.splits}): "
                         f"pass --split")
    return {split: source}


def import_dataset(name: str, source: str | os.PathLike, split: str | None = None,
                   force: bool = False) -> list[DataFile]:
    """Copy a jsonl file, or a folder of split files, into ``<data dir>/<name>/<split>.jsonl``.

    Every line of every source is validated (errors name ``file:line``) before anything is written; bytes
    are copied unchanged, each file atomically. An existing identical file is left as is.

    Parameters
    ----------
    name : str
        A registry name (see :data:`REGISTRY`), or any other name (letters, digits, ``_.-``): your own dataset,
        then usable as ``dataset=name`` (its splits are the files it holds).
    source : path
        A ``.jsonl`` file (its split is its stem when that is a split name, else ``split``) or a folder
        holding ``<split>.jsonl`` files (all the dataset's splits found there, or only ``split``).
    split : str, optional
        Which split the file is / which file of the folder to import.
    force : bool
        Replace an existing file with different content (otherwise a FileExistsError).
    """
    if name in REGISTRY:
        spec = REGISTRY[name]
    elif isinstance(name, str) and SPLIT_NAME_RE.match(name) and name != "arithmetic":
        spec = local_spec(name, SPLIT_NAMES if split is None else (*SPLIT_NAMES, split))
        if split is not None:
            check_split_name(split)
    else:
        raise ValueError(f"dataset name must be letters, digits and '_.-' (not 'arithmetic', which is generated), "
                         f"got {name!r}")
    payload: dict[str, tuple[bytes, int, str]] = {}
    for s, path in _import_splits(spec, Path(source).expanduser(), split).items():
        data = path.read_bytes()
        payload[s] = (data, len(parse_jsonl(decode_text(data, str(path)), spec.parse, str(path))), str(path))
    return _install(spec, payload, force)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def fetch_dataset(name: str, split: str | None = None, force: bool = False) -> list[DataFile]:
    """Download dataset ``name`` from the Hugging Face Hub (through ``datasets``) into the data folder.

    Every split (or only ``split``) is downloaded and validated before any file is written; rows are
    written as jsonl with all their fields, each file atomically.

    Raises
    ------
    FetchError
        Offline (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``; checked first, so it fails at once), ``datasets``
        not installed, or the download failed. The message says how to import a copy instead.
    """
    if name not in REGISTRY:
        raise ValueError(f"cannot fetch {name!r}: fetch knows the built-in datasets {tuple(REGISTRY)}; your own "
                         f"files come in with llm-cmdp data import {name} FILE")
    spec = get_spec(name)
    splits = [spec.check_split(split)] if split is not None else list(spec.splits)
    files = "/".join(spec.file_name(s) for s in spec.splits)
    instead = (f"Without network, import a copy you have: llm-cmdp data import {name} PATH (a folder holding "
               f"{files}, or one .jsonl file with --split)")
    if hub_offline():
        raise FetchError(f"cannot fetch {name!r}: offline mode (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set); "
                         f"unset it to download. {instead}")
    try:
        import datasets
    except ImportError as e:
        raise FetchError(f"cannot fetch {name!r}: the `datasets` package is not installed "
                         f"(pip install datasets). {instead}") from e
    except Exception as e:  # a broken install (incompatible pyarrow, ...) is reported, not a traceback
        raise FetchError(f"cannot fetch {name!r}: the `datasets` package failed to import "
                         f"({type(e).__name__}: {e}). {instead}") from e
    payload: dict[str, tuple[bytes, int, str]] = {}
    for s in splits:
        where = f"{spec.hub_id}[{s}]"
        try:
            ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=s)
            rows = [dict(r) for r in ds]
        except Exception as e:  # any failure of the download is reported the same way, never a traceback
            raise FetchError(f"cannot fetch {name!r}: downloading {where} failed ({type(e).__name__}: {e}). "
                             f"{instead}") from e
        text = "".join(json.dumps(r) + "\n" for r in rows)
        payload[s] = (text.encode("utf-8"), len(parse_jsonl(text, spec.parse, where)), where)
    return _install(spec, payload, force)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def list_data(names: Iterable[str] | None = None) -> list[DataFile]:
    """Every split of every named dataset: the file found (with its number of non-blank lines) or missing."""
    out: list[DataFile] = []
    for name in names if names is not None else (*REGISTRY, *local_datasets()):
        spec = get_spec(name)
        for s in spec.splits:
            found = next(((p, o) for p, o in candidate_paths(name, s) if p.is_file()), None)
            if found is None:
                out.append(DataFile(name, s, None, None, "missing"))
            else:
                out.append(DataFile(name, s, found[0], _count_lines(found[0]), "found", found[1]))
    return out
