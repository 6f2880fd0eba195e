"""Datasets by name: the registry, where their jsonl files are looked for, and how they get there.

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

Also here, because it is a rule about files: which split a jsonl file or folder given as a path stands for
(:func:`resolve_dataset_path`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from llm_cmdp_env.atomic_io import write_bytes_atomic
from llm_cmdp_env.verify import reference_from_solution

DATA_DIR_ENV = "LLM_CMDP_DATA_DIR"
"""Environment variable naming the data folder (holding ``gsm8k/``, ``math500/``, ...)."""

GSM8K_DIR_ENV = "LLM_CMDP_GSM8K_DIR"
"""Older environment variable naming the folder of GSM8K's ``train.jsonl``/``test.jsonl`` (still honoured)."""

SPLIT_NAMES = ("train", "validation", "test")
"""File stems that name a split: a jsonl file called ``test.jsonl`` is the test split and nothing else."""

_SPLIT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TRUE = ("1", "true", "yes", "on")


class Row(NamedTuple):
    """One validated dataset line: the text shown, the reference final answer and the worked solution."""

    question: str
    answer: str
    solution: str


# --- line formats -------------------------------------------------------------------------------------


def _text(row: dict[str, Any], key: str) -> str:
    if key not in row:
        raise ValueError(f"missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"field {key!r} is empty")
    return value


def parse_gsm8k_row(row: dict[str, Any]) -> Row:
    """GSM8K format: ``question`` and ``answer``, a worked solution whose last ``#### N`` line is the answer."""
    question, solution = _text(row, "question"), _text(row, "answer")
    try:
        answer = reference_from_solution(solution)
    except ValueError as e:
        raise ValueError(f"field 'answer' must end in a '#### <final answer>' line (GSM8K format): {e}") from e
    return Row(question, answer, solution)


def parse_math_row(row: dict[str, Any]) -> Row:
    """MATH format: ``problem``, ``answer`` (the final answer, LaTeX) and an optional ``solution``."""
    question, answer = _text(row, "problem"), _text(row, "answer")
    solution = row.get("solution", "")
    if not isinstance(solution, str):
        raise ValueError(f"field 'solution' must be a string, got {type(solution).__name__}")
    return Row(question, answer.strip(), solution)


def parse_any_row(row: dict[str, Any]) -> Row:
    """A custom file's line: GSM8K format when it has ``question``, MATH format when it has ``problem``."""
    if "question" in row:
        return parse_gsm8k_row(row)
    if "problem" in row:
        return parse_math_row(row)
    raise ValueError("expected fields 'question' + 'answer' (GSM8K format) or 'problem' + 'answer' (MATH format)")


def parse_jsonl(text: str, parse: Callable[[dict[str, Any]], Row], where: str) -> list[Row]:
    """Validate and parse every non-blank line of ``text``.

    Raises
    ------
    ValueError
        On the first malformed line, as ``"<where>:<line>: ..."`` (1-based), or when there is no line at all.
    """
    rows: list[Row] = []
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON may hold U+2028
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            rows.append(parse(obj))
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{where}:{lineno}: malformed dataset line ({e})") from e
    if not rows:
        raise ValueError(f"{where}: no problems in file")
    return rows


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 text ({e})") from e


def read_jsonl(path: str | os.PathLike, parse: Callable[[dict[str, Any]], Row] = parse_any_row) -> list[Row]:
    """Read and validate a jsonl dataset file (errors name ``file:line``; see :func:`parse_jsonl`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    return parse_jsonl(_decode(path.read_bytes(), str(path)), parse, str(path))


# --- the registry -------------------------------------------------------------------------------------


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


def _local_spec(name: str, splits: Iterable[str]) -> DatasetSpec:
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
            if sub.name not in REGISTRY and sub.name not in out and _SPLIT_RE.match(sub.name) and stems:
                out[sub.name] = _local_spec(sub.name, stems)
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


# --- where files are looked for -----------------------------------------------------------------------


def user_data_dir() -> Path:
    """The per-user default data folder: ``$XDG_CACHE_HOME/llm-cmdp-env/data``, else ``~/.cache/...``."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "llm-cmdp-env" / "data"


def dev_data_dir() -> Path:
    """``shared/data`` beside the repository checkout (the development fallback; may not exist)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


# --- a path given as dataset= ---------------------------------------------------------------------------


def _check_split_name(split: str) -> None:
    if not isinstance(split, str) or not _SPLIT_RE.match(split):
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
        _check_split_name(split)
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


# --- getting files into the data folder ----------------------------------------------------------------


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
    elif isinstance(name, str) and _SPLIT_RE.match(name) and name != "arithmetic":
        spec = _local_spec(name, SPLIT_NAMES if split is None else (*SPLIT_NAMES, split))
        if split is not None:
            _check_split_name(split)
    else:
        raise ValueError(f"dataset name must be letters, digits and '_.-' (not 'arithmetic', which is generated), "
                         f"got {name!r}")
    payload: dict[str, tuple[bytes, int, str]] = {}
    for s, path in _import_splits(spec, Path(source).expanduser(), split).items():
        data = path.read_bytes()
        payload[s] = (data, len(parse_jsonl(_decode(data, str(path)), spec.parse, str(path))), str(path))
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


__all__ = [
    "DATA_DIR_ENV", "DataFile", "DatasetFile", "DatasetSpec", "FetchError", "GSM8K_DIR_ENV", "HOLDOUT_EVERY",
    "REGISTRY", "Row", "SPLIT_NAMES", "candidate_paths", "data_dir", "dataset_path", "dev_data_dir",
    "fetch_dataset", "find_dataset_file", "fix_hint", "get_spec", "holdout_part", "hub_offline", "import_dataset",
    "is_dataset_name", "list_data", "local_datasets", "parse_any_row", "parse_gsm8k_row", "parse_jsonl",
    "parse_math_row", "read_jsonl", "resolve_dataset_path", "search_dirs", "user_data_dir",
]
