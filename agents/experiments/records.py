"""The records a comparison reads and writes, as dataclasses: the jobs it plans (:class:`Job`,
:class:`ReferenceJob`), a finished run's ``eval.json`` (:class:`RunRecord`), an untrained model's evaluation
(:class:`ReferenceRecord`) and a line of the report's ``records.jsonl`` (:class:`ReportRecord`).

Every record carries a ``version`` (:data:`VERSION`); the loaders read every committed record:

- version 1 (no ``version`` key): written before the algorithm registry. Its ``resolved`` train settings list
  every algorithm's options; :meth:`RunRecord.from_dict` keeps those of the run's algorithm, what the code
  resolves the same settings to now.
- version 2: the current layout.

Files are read and written whole (:func:`read_json_record`, :func:`write_record`): a file that is not a JSON
object, or two copies of one record that differ, is an error, never taken as "not run".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from llm_cmdp_env.common.atomic_io import write_json_atomic

__all__ = ["VERSION", "Job", "RunKey", "PerProblem", "ReferenceJob", "ReferenceRecord", "ReportRecord", "RunRecord",
           "fingerprint_of", "read_json_record", "slug", "write_record"]

VERSION = 2
"""The record layout written now (see the module docstring for the older one the loaders read)."""

R = TypeVar("R")


def _build(cls: type[R], d: Mapping[str, Any], where: str) -> R:
    """``cls(**d)`` after checking ``d`` names only fields of ``cls`` and every field without a default."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    required = [f.name for f in fields(cls) if f.default is dataclasses.MISSING  # type: ignore[arg-type]
                and f.default_factory is dataclasses.MISSING and f.name not in d]
    if unknown or required:
        raise ValueError(f"{where}: not a {cls.__name__} (unknown keys {unknown}, missing {required})")
    return cls(**d)


def slug(name: str) -> str:
    """A method's name as a folder name (``"fixed lambda (Dr. GRPO)"`` -> ``"fixed-lambda-dr-grpo"``)."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()


def fingerprint_of(settings: Mapping[str, Any], seed: int, split: str, n: int) -> str:
    """What a finished run was run with, as 16 hex digits: a changed config must not reuse its result."""
    key = {"settings": settings, "seed": seed, "split": split, "n": n}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- jobs
@dataclass
class RunKey:
    """Which run: a method's grid point (``grid_index`` of its grid, ``grid`` the point) at a training budget (None:
    a budget-free method) and seed, evaluated on ``n`` problems of ``split`` in ``phase``."""

    phase: str
    method: str
    grid_index: int
    grid: dict[str, Any]
    budget: float | None
    seed: int
    split: str
    n: int

    def key(self) -> dict[str, Any]:
        """The :class:`RunKey` fields as keywords (to build the record of this run)."""
        return {f.name: getattr(self, f.name) for f in fields(RunKey)}


@dataclass
class Job(RunKey):
    """One planned run of a comparison phase: its :class:`RunKey`; ``settings`` are its env / policy / train (and
    ``outside``) sections, ``run_dir`` its folder and ``archive`` its record's archived copy (or None);
    ``time_limit_s`` stops an outside method's run that takes longer."""

    run_dir: str
    archive: str | None
    threads: int
    batch_size: int
    settings: dict[str, Any]
    time_limit_s: float | None = None  # an outside method's wall-time limit per run (not part of what it ran)

    @property
    def fingerprint(self) -> str:
        """The fingerprint of its settings, seed and problems (:func:`fingerprint_of`)."""
        return fingerprint_of(self.settings, self.seed, self.split, self.n)

    @property
    def outside(self) -> bool:
        """Whether the method is an outside algorithm (``llm-cmdp bench``)."""
        return "outside" in self.settings


@dataclass(frozen=True)
class ReferenceJob:
    """The evaluation of an untrained model (``name``: ``"student"`` or ``"teacher"``) on ``n`` problems of
    ``split``, in the env ``env`` (its constraint replaced by the statistics alone)."""

    name: str
    model: str
    env: dict[str, Any]
    split: str
    n: int
    out: str
    archive: str | None
    test_split: str
    batch_size: int
    threads: int
    device: str

    @property
    def fingerprint(self) -> str:
        return fingerprint_of({"env": self.env, "model": self.model}, 0, self.split, self.n)

    @property
    def file(self) -> Path:
        """Its record's path under ``out`` (and ``archive``): ``references/<name>[_<split>].json``."""
        tag = "" if self.split == self.test_split else f"_{self.split}"
        return Path("references") / f"{slug(self.name)}{tag}.json"


# ---------------------------------------------------------------------------------------------- records
@dataclass
class PerProblem:
    """Each evaluated problem's outcome, in problem order: solved (1/0), summed episode cost and (where recorded)
    length."""

    correct: list[float]
    cost: list[float]
    length: list[int] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerProblem:
        return cls(list(d["correct"]), list(d["cost"]), None if d.get("length") is None else list(d["length"]))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"correct": self.correct, "cost": self.cost}
        if self.length is not None:
            out["length"] = self.length
        return out

    def compact(self) -> dict[str, Any]:
        """``records.jsonl``'s form: ``correct`` as a 0/1 string, ``cost`` rounded to 1e-4."""
        return {"correct": "".join("1" if c else "0" for c in self.correct), "cost": [round(c, 4) for c in self.cost]}

    @classmethod
    def from_compact(cls, d: Mapping[str, Any]) -> PerProblem:
        return cls([c == "1" for c in d["correct"]], list(d["cost"]))


class _Record:
    """What the three records share: reading a file's dict (any version this code reads; its ``per_problem`` in the
    record's form, :attr:`COMPACT`) and writing the current one."""

    COMPACT: ClassVar[bool] = False  # per_problem in records.jsonl's compact form
    version: int

    @classmethod
    def from_dict(cls: type[R], d: Mapping[str, Any], where: str = "record") -> R:
        d = dict(d)
        version = d.setdefault("version", 1)
        if version not in (1, VERSION):
            raise ValueError(f"{where}: record version {version!r} is not one this code reads (1, {VERSION})")
        pp = d["per_problem"]
        d["per_problem"] = PerProblem.from_compact(pp) if cls.COMPACT else PerProblem.from_dict(pp)  # type: ignore
        cls._migrate(d)  # type: ignore[attr-defined]
        return _build(cls, d, where)

    @classmethod
    def _migrate(cls, d: dict[str, Any]) -> None:
        """Bring a version-1 dict to the current layout in place (nothing to do by default)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)  # type: ignore[call-overload]
        out["per_problem"] = self.per_problem.compact() if self.COMPACT else self.per_problem.to_dict()  # type: ignore
        return out


@dataclass
class RunRecord(_Record, RunKey):
    """A finished run (its ``eval.json``): what ran (its :class:`RunKey`, ``resolved``, ``fingerprint``), how it
    scored (``accuracy``, ``mean_cost``, ``mean_length``, ``per_problem``), its training trace and time, and where
    (``machine``, ``code``). ``outside`` and ``train_last`` only for an outside algorithm (``llm-cmdp bench``)."""

    accuracy: float
    mean_cost: float
    mean_length: float
    per_problem: PerProblem
    train_seconds: float
    fingerprint: str
    updates: int | None = None
    divergence: str | None = None
    eval_seconds: float | None = None
    train_trace: dict[str, list[Any]] | None = None
    eval_task: str | None = None
    machine: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    resolved: dict[str, Any] | None = None
    outside: str | None = None
    train_last: dict[str, Any] | None = None
    version: int = VERSION

    @classmethod
    def _migrate(cls, d: dict[str, Any]) -> None:
        if d["version"] == 1 and isinstance(d.get("resolved"), dict) and "train" in d["resolved"]:
            d["resolved"] = {**d["resolved"], "train": _current_train(d["resolved"]["train"])}

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if v is not None or k in _ALWAYS}


_ALWAYS = {"budget"}  # a budget of None (a budget-free method) is written as null; other unset fields are left out


def _current_train(train: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 ``resolved.train`` (every algorithm's options) as the run's algorithm's config has them now."""
    from llm_cmdp_agents.algos.registry import get_algorithm

    own = {f.name for f in fields(get_algorithm(train.get("algo", "ppo")).config)}
    return {k: v for k, v in train.items() if k in own}


@dataclass
class ReferenceRecord(_Record):
    """An untrained model's evaluation (``method``: ``"student"`` or ``"teacher"``) on the problems of ``split``."""

    method: str
    split: str
    n: int
    accuracy: float
    mean_cost: float
    mean_length: float
    per_problem: PerProblem
    fingerprint: str
    seed: int = 0
    budget: float | None = None
    version: int = VERSION



@dataclass
class ReportRecord(_Record):
    """One line of the report's ``records.jsonl``: a run of the validation or test phase, or a reference
    (``phase="reference"``, ``seed`` None), with its metrics at the budgets it stands for (``at_budget``) and the
    per-problem outcomes they come from (in memory expanded, in the file compact: :meth:`PerProblem.compact`)."""

    phase: str
    method: str
    method_id: str
    seed: int | None
    budget: float | None
    grid: dict[str, Any] | None
    split: str
    n: int
    train_seconds: float
    mean_cost: float
    mean_length: float
    at_budget: dict[str, dict[str, Any]]
    per_problem: PerProblem
    grid_index: int | None = None
    updates: int | None = None
    divergence: str | None = None
    eval_seconds: float | None = None
    machine: dict[str, Any] | None = None
    train_trace: dict[str, list[Any]] | None = None
    eval_task: str | None = None
    train_last: dict[str, Any] | None = None  # an outside method's compute: episodes and steps against its limit
    version: int = VERSION

    COMPACT: ClassVar[bool] = True


# ---------------------------------------------------------------------------------------------- files
def read_json_record(path: str | Path, archive: str | Path | None = None) -> tuple[dict[str, Any], Path] | None:
    """A record file's JSON object and where it was read: ``path`` (the run folder's copy), else its ``archive``
    copy (the config's ``archive`` folder, kept in git so that finished runs outlive the run folder); None when
    neither exists. A file that is not a JSON object raises (it is never taken as "not run", nor as a result), and
    so do two copies that differ (one job run twice, e.g. on two machines: which one counts is the user's call)."""
    found = []
    for p in (Path(path), None if archive is None else Path(archive)):
        if p is not None and p.is_file():
            try:
                res = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{p} is not valid JSON ({e}): remove it to run that job again") from None
            if not isinstance(res, dict):
                raise ValueError(f"{p} holds a {type(res).__name__}, not a run record: remove it to run again")
            found.append((res, p))
    if len(found) == 2 and found[0][0] != found[1][0]:
        raise ValueError(f"{found[0][1]} and its archive copy {found[1][1]} differ (the job ran twice?): keep the one "
                         "that counts and remove the other")
    return found[0] if found else None


def write_record(record: RunRecord | ReferenceRecord, path: str | Path, archive: str | Path | None = None) -> None:
    """Write a finished record to ``path`` and, with an ``archive`` path, a copy there (atomically, both)."""
    data = record.to_dict()
    write_json_atomic(Path(path), data)
    if archive is not None:
        write_json_atomic(Path(archive), data)

