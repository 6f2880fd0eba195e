"""The plan of a method comparison (``llm-cmdp compare``, see :mod:`llm_cmdp_agents.experiments.compare`): the config's
validation, the runs of each phase with their settings, which runs are finished (and run with the settings the
config now gives), and the choice of each method's setting on the validation split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from llm_cmdp_agents.experiments.records import Job, ReferenceRecord, RunRecord, read_json_record, slug
from llm_cmdp_env.common.atomic_io import write_json_atomic

__all__ = ["at_edge", "axis_value", "budget_free", "check_binding", "code_version", "exploratory", "finished",
           "grid_points", "load_config", "machine", "merge", "method_id", "model_digest", "plan_jobs", "read_binding",
           "resolved", "select_settings", "settings", "slug", "test_budgets"]

_METHOD_KEYS = {"name", "constraint", "constraint_kwargs", "train", "policy", "env", "grid", "widen", "axis",
                "axis_bounds", "budget", "outside", "time_limit_minutes"}
_GRID_KEYS = {"constraint_kwargs", "train", "policy", "env", "budget_scale", "options"}


# ---------------------------------------------------------------------------------------------- the config
def load_config(path: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Read and validate a compare config (see the module docstring); returns it with defaults filled in."""
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS

    cfg = json.loads(Path(path).read_text()) if not isinstance(path, dict) else dict(path)
    where = path if not isinstance(path, dict) else "compare config"
    for key in ("methods", "seeds", "eval"):
        if key not in cfg:
            raise ValueError(f"{where}: compare config needs {key!r}")
    if "budgets" not in cfg:
        if "budget" not in cfg["eval"]:
            raise ValueError(f"{where}: give the budget sweep ('budgets': [...]) or eval.budget")
        cfg["budgets"] = [cfg["eval"]["budget"]]
    cfg["budgets"] = [float(d) for d in cfg["budgets"]]
    if not cfg["budgets"] or any(not d > 0 for d in cfg["budgets"]):
        raise ValueError(f"{where}: budgets must be positive numbers, got {cfg['budgets']}")
    names, sizes = set(), set()
    for m in cfg["methods"]:
        unknown = set(m) - _METHOD_KEYS
        if unknown:
            raise ValueError(f"{where}: method {m.get('name')!r} has unknown keys {sorted(unknown)}; "
                             f"accepted: {sorted(_METHOD_KEYS)}")
        if m.get("constraint") not in CONSTRAINTS:
            raise ValueError(f"{where}: method {m.get('name')!r}: constraint must be one of {list(CONSTRAINTS)}")
        if m["name"] in names:
            raise ValueError(f"{where}: duplicate method name {m['name']!r}")
        names.add(m["name"])
        grid = m.get("grid", [{}])
        if "widen" in m and ("outside" in m or not isinstance(m["widen"], list)):
            raise ValueError(f"{where}: method {m['name']!r}: 'widen' is a list of extra grid points (not for an "
                             "outside algorithm)")
        if "axis" in m:
            for point in grid + m.get("widen", []):
                axis_value(m, point)  # raises when a point does not set the axis
        for g in grid + m.get("widen", []):
            bad = set(g) - _GRID_KEYS
            if bad:
                raise ValueError(f"{where}: method {m['name']!r}: grid keys {sorted(bad)} unknown; "
                                 f"accepted: {sorted(_GRID_KEYS)}")
        if "outside" in m:  # an outside algorithm (llm-cmdp bench): its own options, nothing to choose among
            if len(grid) != 1:
                raise ValueError(f"{where}: outside method {m['name']!r} takes one grid point (its options)")
            continue
        sizes.add(len(grid))
    if len(sizes) > 1:
        raise ValueError(f"{where}: every method needs a grid of the same size (a fair search), got sizes "
                         f"{sorted(sizes)}")
    if sizes - {1} and "validation" not in cfg:
        raise ValueError(f"{where}: grids of several settings need a 'validation' section to choose on")
    if "binding" in cfg:
        b = cfg["binding"]
        if "validation" not in cfg:
            raise ValueError(f"{where}: the binding check runs on the validation split: add 'validation'")
        named = [b.get("unconstrained")] + list(b.get("constrained") or [])
        if not b.get("constrained") or any(n not in names for n in named):
            raise ValueError(f"{where}: binding needs 'unconstrained' (a method name) and 'constrained' (method "
                             f"names) among {sorted(names)}, got {b}")
        b.setdefault("min_violation", 0.1)
        b.setdefault("exploratory", [])
        if not set(map(float, b["exploratory"])) <= set(map(float, cfg["budgets"])):
            raise ValueError(f"{where}: binding.exploratory {b['exploratory']} must be among the budgets "
                             f"{cfg['budgets']}")
    if "equivalence_margin" in cfg and not float(cfg["equivalence_margin"]) > 0:
        raise ValueError(f"{where}: equivalence_margin must be > 0, got {cfg['equivalence_margin']!r}")
    return cfg


def grid_points(method: dict[str, Any]) -> list[dict[str, Any]]:
    """The method's settings to choose among: its ``grid`` (the same size for every method: the fair search)
    followed by its ``widen`` points (added where the choice on the base grid sat at an edge of ``axis``)."""
    return list(method.get("grid", [{}])) + list(method.get("widen", []))


def axis_value(method: dict[str, Any], point: dict[str, Any]) -> float:
    """The value a grid point sets on the method's ``axis`` (a dotted path such as ``constraint_kwargs.lam``)."""
    x: Any = point
    for key in method["axis"].split("."):
        if not isinstance(x, dict) or key not in x:
            raise ValueError(f"method {method['name']!r}: grid point {point} does not set its axis "
                             f"{method['axis']!r}")
        x = x[key]
    return float(x)


def at_edge(method: dict[str, Any], g: int) -> bool | None:
    """Whether grid point ``g`` holds the lowest or highest value of the method's ``axis`` among its points, and
    that value is not a natural limit of the parameter (``axis_bounds: [low, high]``, None for open: e.g. an
    overrun penalty of 0 cannot be widened further). None: the method names no axis, or has one point."""
    points = grid_points(method)
    if "axis" not in method or len(points) < 2:
        return None
    values = [axis_value(method, p) for p in points]
    low, high = method.get("axis_bounds") or (None, None)
    v = values[g]
    return (v == min(values) and v != low) or (v == max(values) and v != high)


def budget_free(method: dict[str, Any]) -> bool:
    """Whether the method's training ignores the sweep's budget d (its constraint reads none, or the method fixes
    its own training budget with ``"budget"``): it is trained once per seed and setting. An outside algorithm
    (``"outside"``) is handed the budget, so it trains at every d."""
    if "outside" in method:
        return "budget" in method
    from llm_cmdp_env.wrappers.factory import constraint_spec

    return not constraint_spec(method["constraint"]).reads_budget or "budget" in method


def method_id(cfg: dict[str, Any], method: dict[str, Any]) -> str:
    """A short, stable id of what a method trains, for records: the distillation algorithm (``gkd``,
    ``minillm``), ``<algo>+gkd`` for PPO/GRPO with the JSD term, else the constraint (``budget``, ``saute``,
    ``lagrangian``, ``learned-lagrangian``, ``worst-case``, ``distill``, ``none`` = task reward only)."""
    if "outside" in method:
        return f"outside:{method['outside']}"
    from llm_cmdp_agents.algos.registry import get_algorithm

    train = merge(cfg.get("train"), method.get("train"))
    algo = train.get("algo", "ppo")
    if not get_algorithm(algo).uses_reward:
        return algo
    if train.get("distill_coef") or any((g.get("train") or {}).get("distill_coef") for g in method.get("grid", [])):
        return f"{algo}+gkd"
    return method["constraint"]


def merge(*dicts: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        out.update(d or {})
    return out


def settings(cfg: dict[str, Any], method: dict[str, Any], g: int, budget: float | None) -> dict[str, Any]:
    """The env / policy / train settings of one run (shared config < method < grid point)."""
    from llm_cmdp_agents.run.config import EnvConfig, PolicyConfig

    point = grid_points(method)[g]
    env_defaults = {f.name: f.default for f in fields(EnvConfig) if f.name not in ("constraint_kwargs", "env_kwargs")}
    env = merge(env_defaults, cfg.get("env"), method.get("env"), point.get("env"))
    env["constraint"] = method["constraint"]
    env["constraint_kwargs"] = merge(method.get("constraint_kwargs"), point.get("constraint_kwargs"))
    if budget is None:  # a budget-free method: its own fixed training budget, if any
        env["budget"] = None if method.get("budget") is None else float(method["budget"])
    else:
        env["budget"] = float(budget) * float(point.get("budget_scale", 1.0))
    policy = merge({f.name: f.default for f in fields(PolicyConfig)}, cfg.get("policy"), method.get("policy"),
                    point.get("policy"))
    train = merge(cfg.get("train"), method.get("train"), point.get("train"))
    out = {"env": env, "policy": policy, "train": train}
    if "outside" in method:
        out["outside"] = {"algo": method["outside"], "options": dict(point.get("options") or {})}
    return out


# ---------------------------------------------------------------------------------------------- the jobs
def plan_jobs(cfg: dict[str, Any], phase: str, out: Path) -> list[Job]:
    """The runs of ``phase`` (``"validation"`` or ``"test"``), in a fixed order. A test plan needs the
    validation phase's choice (``selection.json``) when the grids hold several settings."""
    jobs: dict[str, Job] = {}
    threads = int(cfg.get("threads", 1))
    if phase == "validation":
        if "validation" not in cfg:
            return []
        val = cfg["validation"]
        seeds, split, n = val.get("seeds", [cfg["seeds"][0] + 1000]), val.get("split", "validation"), val["n"]
        chosen = None
    else:
        seeds, split, n = cfg["seeds"], cfg["eval"].get("split", "test"), cfg["eval"]["n"]
        chosen = select_settings(cfg, out) if "validation" in cfg else None
    budgets = cfg["budgets"] if phase == "validation" else test_budgets(cfg, out)
    for m in cfg["methods"]:
        if phase == "validation" and "outside" in m:  # one setting: nothing to choose on validation
            continue
        for d in budgets:
            budget = None if budget_free(m) else d
            grid = range(len(grid_points(m))) if phase == "validation" else [
                chosen[m["name"]][f"{d:g}"]["grid_index"] if chosen else 0]
            for g in grid:
                for s in seeds:
                    tag = f"g{g}" + ("" if budget is None else f"_d{budget:g}")
                    where = Path(phase) / slug(m["name"]) / tag / f"seed_{s}"
                    jobs.setdefault(str(out / where), Job(
                        phase=phase, method=m["name"], grid_index=g, grid=grid_points(m)[g], budget=budget, seed=s,
                        split=split, n=n, run_dir=str(out / where),
                        archive=(None if not cfg.get("archive") else
                                 str(Path(cfg["archive"]) / where.parent / f"{where.name}.json")),
                        threads=threads, batch_size=cfg["eval"].get("batch_size", 64),
                        settings=settings(cfg, m, g, budget),
                        time_limit_s=(None if m.get("time_limit_minutes") is None
                                      else 60.0 * float(m["time_limit_minutes"]))))
    return list(jobs.values())


def resolved(job: Job) -> dict[str, Any]:
    """What a run's settings resolve to with the code's defaults filled in (the fingerprint hashes the settings as
    the config gives them): every training option, every parameter of the built constraint rule and a digest of
    the student's and the teacher's weights. A record keeps it; a record whose ``resolved`` differs from what
    the code and the models give now is refused, so a changed default or re-trained weights never pass as the same
    run."""
    import dataclasses

    from llm_cmdp_agents.algos.config import TrainConfig
    from llm_cmdp_env.wrappers.factory import build_rule

    st = job.settings
    out: dict[str, Any] = {"train": TrainConfig.from_dict({**st["train"], "seed": job.seed}).to_dict()}
    if "outside" not in st:
        env = st["env"]
        _, rule = build_rule(env["constraint"], env["budget"], dict(env["constraint_kwargs"]))
        params: dict[str, Any] = {}
        for f in dataclasses.fields(rule) if rule is not None else ():
            value = getattr(rule, f.name)
            if f.init:
                params[f.name] = ({g.name: getattr(value, g.name) for g in dataclasses.fields(value) if g.init}
                                  if dataclasses.is_dataclass(value) else value)
        out["constraint"] = {"name": env["constraint"], **params}
    out["models"] = {"student": model_digest(st["policy"]["model"]), "teacher": model_digest(st["env"]["teacher"])}
    return json.loads(json.dumps(out, default=repr))  # tuples as lists: what a JSON record reads back


_DIGESTS: dict[str, str | None] = {}


def model_digest(spec: str) -> str | None:
    """The first 16 hex digits of the SHA-256 of a local model's weight files (``*.safetensors``, ``*.bin``,
    ``*.gguf``, sorted by name), None for a hub id (its revision is the hub's business); cached per process."""
    from llm_cmdp_env.models.loading import resolve_model

    if spec not in _DIGESTS:
        path = Path(resolve_model(spec))
        files = sorted(p for pat in ("*.safetensors", "*.bin", "*.gguf") for p in path.glob(pat)) if path.is_dir() \
            else []
        if not files:
            _DIGESTS[spec] = None
        else:
            h = hashlib.sha256()
            for p in files:
                h.update(p.name.encode())
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            _DIGESTS[spec] = h.hexdigest()[:16]
    return _DIGESTS[spec]


def machine() -> dict[str, Any]:
    """Where a run ran: the CPU model, torch's version and threads (another CPU's kernels round differently, so
    runs of one config on two machines are equally valid samples but not bit-identical)."""
    import platform

    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        info = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in
                                                  Path("/proc/cpuinfo").read_text().splitlines()[:40] if ":" in line)}
        cpu, flags = info.get("model name", cpu), set(info.get("flags", "").split())
    except OSError:
        pass
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), None)
    return {"cpu": cpu, "simd": simd, "torch": torch.__version__, "threads": torch.get_num_threads()}


def code_version() -> dict[str, Any] | None:
    """The git commit of the package's checkout and whether it had uncommitted changes (None outside a git
    checkout): provenance only, since a record stays valid across commits that do not change its ``resolved``."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def finished(job: Job) -> RunRecord | None:
    """The record of a finished run (its folder's ``eval.json``, else the archive copy), checked against the
    settings the config now gives (fingerprint), what the code and models resolve them to (``resolved``) and the
    planned number of updates; None when not run."""
    found = read_json_record(Path(job.run_dir) / "eval.json", job.archive)
    if found is None:
        return None
    raw, path = found
    res = RunRecord.from_dict(raw, str(path))
    if res.fingerprint != job.fingerprint:
        raise ValueError(f"{path} was written with other settings than the config now gives (fingerprint "
                         f"{res.fingerprint} vs {job.fingerprint}); remove it or use another 'out'")
    if res.resolved is not None and res.resolved != resolved(job):  # the oldest records lack it
        now = resolved(job)
        changed = sorted(k for k in now if res.resolved.get(k) != now[k])
        raise ValueError(f"{path} was run with other defaults or model weights than the code and models now give "
                         f"(differs in {changed}); remove it to run the job again, or restore what it ran with")
    if res.updates is not None and not job.outside:
        from llm_cmdp_agents.algos.config import TrainConfig

        planned = TrainConfig.from_dict(job.settings["train"]).updates
        if res.updates != planned:
            raise ValueError(f"{path} records {res.updates} of the {planned} planned updates (a stopped run): "
                             "remove it to run the job again")
    return res


# ---------------------------------------------------------------------------------------------- selection
def select_settings(cfg: dict[str, Any], out: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {f"{d:g}": {"grid_index", "scores", "mean_costs", "at_edge", "rule"}}}``: per method and budget,
    the grid point with the highest validation safe accuracy (solved with summed cost <= d, over every
    validation seed and problem), from the finished validation runs (all needed). Ties (equal safe accuracy)
    go to the lower mean validation cost, then to the earlier grid point. ``at_edge`` says whether the choice
    holds an extreme value of the method's ``axis`` (then widen its grid: ``"widen"``)."""
    from llm_cmdp_agents.experiments.stats import metric_arrays

    runs: dict[tuple[str, int, float | None], list[RunRecord]] = {}
    missing = []
    for job in plan_jobs(cfg, "validation", out):
        res = finished(job)
        if res is None:
            missing.append(job.run_dir)
        else:
            runs.setdefault((job.method, job.grid_index, job.budget), []).append(res)
    if missing:
        raise RuntimeError(f"the validation phase has {len(missing)} unfinished runs (e.g. {missing[0]}): run "
                           "`--phase validation` first")
    chosen: dict[str, dict[str, dict[str, Any]]] = {}
    for m in cfg["methods"]:
        for d in cfg["budgets"]:
            if "outside" in m:
                chosen.setdefault(m["name"], {})[f"{d:g}"] = {"grid_index": 0, "scores": [], "mean_costs": [],
                                                             "at_edge": None, "rule": "one setting"}
                continue
            budget = None if budget_free(m) else d
            arrays = [metric_arrays(runs[(m["name"], g, budget)], d) for g in range(len(grid_points(m)))]
            scores = [float(a["safe_accuracy"].mean()) for a in arrays]
            costs = [float(a["cost"].mean()) for a in arrays]
            best = min(range(len(scores)), key=lambda g: (-scores[g], costs[g], g))
            tied = [g for g in range(len(scores)) if scores[g] == scores[best]]
            rule = ("highest safe accuracy" if len(tied) == 1 else
                    "tie on safe accuracy: lower mean cost" if [costs[g] for g in tied].count(costs[best]) == 1 else
                    "tie on safe accuracy and mean cost: first grid point")
            chosen.setdefault(m["name"], {})[f"{d:g}"] = {"grid_index": best, "scores": scores, "mean_costs": costs,
                                                         "at_edge": at_edge(m, best), "rule": rule}
    write_json_atomic(out / "selection.json", chosen)
    return chosen


# ---------------------------------------------------------------------------------------------- binding budgets
def exploratory(cfg: dict[str, Any], d: float) -> bool:
    """Whether budget ``d`` is one the config tests whatever the binding check says (``binding.exploratory``)."""
    return float(d) in [float(x) for x in (cfg.get("binding") or {}).get("exploratory", [])]


def read_binding(out: Path) -> dict[str, Any]:
    """The binding check the test phase ran on validation (``binding.json``, written by :func:`check_binding`)."""
    path = Path(out) / "binding.json"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: `--phase test` checks on validation which budgets bind first")
    return json.loads(path.read_text())


def test_budgets(cfg: dict[str, Any], out: Path) -> list[float]:
    """The budgets of the test phase: the config's, or, with a ``binding`` section, those that passed the
    binding check on validation (:func:`read_binding`)."""
    if "binding" not in cfg:
        return cfg["budgets"]
    return [float(d) for d in read_binding(out)["test_budgets"]]


def check_binding(cfg: dict[str, Any], out: Path, student: ReferenceRecord) -> dict[str, Any]:
    """Which validation budgets bind without collapse (config ``binding``: ``unconstrained``, ``constrained``,
    ``min_violation``), from the finished validation runs and the untrained ``student``'s evaluation on the same
    validation problems. A budget d passes when (1) the unconstrained method (its most accurate validation
    setting) violates it: at least ``min_violation`` of its episodes cost more than d (per episode; whether its
    mean cost exceeds d, the expected-cost view, is recorded too), and (2) every constrained method, with the
    setting chosen for d, is more accurate than the student. A budget listed in ``exploratory`` is tested
    whatever the check says (the report labels it exploratory: not part of the protocol's answer). Writes
    ``binding.json`` (with ``test_budgets``); raises when no budget is to be tested."""
    from llm_cmdp_agents.experiments.stats import metric_arrays

    spec = cfg["binding"]
    runs: dict[tuple[str, int, float | None], list[RunRecord]] = {}
    for job in plan_jobs(cfg, "validation", out):
        res = finished(job)
        if res is None:
            raise RuntimeError(f"the validation phase is unfinished ({job.run_dir}): run `--phase validation`")
        runs.setdefault((job.method, job.grid_index, job.budget), []).append(res)
    chosen = select_settings(cfg, out)
    methods = {m["name"]: m for m in cfg["methods"]}
    u = methods[spec["unconstrained"]]
    u_key = max(((u["name"], g, None if budget_free(u) else d) for g in range(len(grid_points(u)))
                 for d in cfg["budgets"]), key=lambda k: float(metric_arrays(runs[k], 1.0)["accuracy"].mean()))
    student_acc = float(np.mean(student.per_problem.correct))
    table: dict[str, Any] = {}
    for d in cfg["budgets"]:
        a = metric_arrays(runs[u_key], d)
        row = {"unconstrained": {"grid_index": u_key[1], "accuracy": float(a["accuracy"].mean()),
                                 "violation": float(1.0 - a["satisfaction"].mean()),
                                 "mean_cost": float(a["cost"].mean())},
               "student_accuracy": student_acc, "constrained": {}}
        for name in spec["constrained"]:
            m = methods[name]
            g = chosen[name][f"{d:g}"]["grid_index"]
            acc = float(metric_arrays(runs[(name, g, None if budget_free(m) else d)], d)["accuracy"].mean())
            row["constrained"][name] = {"grid_index": g, "accuracy": acc}
        row["binds_per_episode"] = row["unconstrained"]["violation"] >= spec["min_violation"]
        row["binds_in_expectation"] = row["unconstrained"]["mean_cost"] > d
        row["beats_student"] = all(c["accuracy"] > student_acc for c in row["constrained"].values())
        row["passes"] = row["binds_per_episode"] and row["beats_student"]
        table[f"{d:g}"] = row
    result = {"rule": dict(spec), "budgets": table,
              "test_budgets": [float(d) for d in cfg["budgets"] if table[f"{d:g}"]["passes"] or exploratory(cfg, d)]}
    write_json_atomic(Path(out) / "binding.json", result)
    if not result["test_budgets"]:
        raise RuntimeError(f"no budget of {cfg['budgets']} binds without collapse on validation: {table}")
    return result
