"""The report of a method comparison (``llm-cmdp compare``): per-run records, tables with 95% bootstrap
intervals, paired differences between methods (bootstrap and per-seed t-intervals, the equivalence verdict on
accuracy), both satisfaction views (per episode, in expectation), and the plots
(:mod:`llm_cmdp_agents.experiments.plots`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llm_cmdp_agents.experiments.plan import (
    budget_free,
    exploratory,
    finished,
    grid_points,
    method_id,
    plan_jobs,
    read_binding,
    select_settings,
    test_budgets,
)
from llm_cmdp_agents.experiments.records import PerProblem, ReferenceRecord, ReportRecord, RunRecord
from llm_cmdp_agents.experiments.stats import (
    claim_verdict,
    equivalence_verdict,
    expected_cost_verdict,
    metric_arrays,
    paired_difference,
    paired_t,
    summary_row,
)
from llm_cmdp_env.common.atomic_io import write_json_atomic, write_text_atomic

__all__ = ["compute_summary", "markdown_report", "read_records", "records", "report_from_records",
           "status", "status_text", "summarise", "write_report"]


def _runs(cfg: dict[str, Any], out: Path, phase: str) -> list[RunRecord]:
    res, missing = [], []
    for job in plan_jobs(cfg, phase, out):
        r = finished(job)
        (missing.append(job.run_dir) if r is None else res.append(r))
    if missing:
        raise RuntimeError(f"the {phase} phase has {len(missing)} unfinished runs (e.g. {missing[0]}): run "
                           f"`--phase {phase}` first")
    return res


def _score(run: RunRecord | ReferenceRecord, budgets: list[float]) -> dict[str, dict[str, float]]:
    out = {}
    for d in budgets:
        a = metric_arrays([run], d)
        out[f"{d:g}"] = {k: float(a[k].mean()) for k in ("accuracy", "satisfaction", "safe_accuracy")}
        out[f"{d:g}"]["mean_cost_within"] = bool(a["cost"].mean() <= d)  # the expected-cost view of one run
    return out


def records(cfg: dict[str, Any], out: Path, references: list[ReferenceRecord]) -> list[ReportRecord]:
    """One record per run (validation and test phases, and the references): method (and its ``method_id``, see
    :func:`~llm_cmdp_agents.experiments.plan.method_id`), phase, seed, training
    budget (None: the method ignores it), grid setting, updates, divergence, training and evaluation seconds, the
    machine (CPU, SIMD level, torch version and threads; None for runs recorded before it was kept),
    the metrics (per-episode ``satisfaction`` and the expected-cost view ``mean_cost_within``) at every budget of
    the sweep for a run whose training ignores the budget and at its own budget for the others (a run trained for
    d is its method's run at d only), the per-update training trace (``train_trace``: batch means and the
    multiplier) and the per-problem outcomes they were computed from, as ``records.jsonl`` holds them (``cost``
    rounded to 1e-4: every figure of the report is computed from exactly these)."""
    rows = []
    ids = {m["name"]: method_id(cfg, m) for m in cfg["methods"]}
    phases = (("validation", "test") if "validation" in cfg else ("test",))
    for phase in phases:
        for r in _runs(cfg, out, phase):
            rows.append(ReportRecord(
                phase=phase, method=r.method, method_id=ids[r.method], seed=r.seed, budget=r.budget,
                grid_index=r.grid_index, grid=r.grid, split=r.split, n=r.n, train_seconds=r.train_seconds,
                updates=r.updates, divergence=r.divergence, eval_seconds=r.eval_seconds, machine=r.machine,
                mean_cost=r.mean_cost, mean_length=r.mean_length,
                at_budget=_score(r, cfg["budgets"] if r.budget is None else [r.budget]), train_trace=r.train_trace,
                eval_task=r.eval_task, train_last=r.train_last,
                per_problem=PerProblem.from_compact(r.per_problem.compact())))
    for r in references:
        rows.append(ReportRecord(
            phase="reference", method=r.method, method_id=r.method, seed=None, budget=None, grid=None, split=r.split,
            n=r.n, train_seconds=0.0, mean_cost=r.mean_cost, mean_length=r.mean_length,
            at_budget=_score(r, cfg["budgets"]), per_problem=PerProblem.from_compact(r.per_problem.compact())))
    return rows


def read_records(path: str | Path, cfg: dict[str, Any] | None = None) -> list[ReportRecord]:
    """The records of a ``records.jsonl`` (any version: see :mod:`llm_cmdp_agents.experiments.records`). The
    oldest lack ``grid_index`` (the place of the record's grid point in its method's grid): with the comparison's
    config ``cfg`` it is filled in."""
    methods = {m["name"]: m for m in (cfg or {}).get("methods", [])}
    out = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        if "grid_index" not in d and d.get("method") in methods:
            d["grid_index"] = grid_points(methods[d["method"]]).index(d["grid"])
        out.append(ReportRecord.from_dict(d, f"{path}:{i}"))
    return out


def report_from_records(cfg: dict[str, Any], recs: list[ReportRecord], selection: dict[str, Any] | None,
                        budgets: list[float] | None = None, reps: int = 2000) -> tuple[dict[str, Any], str]:
    """``(summary, markdown)`` of the test runs and references held in ``recs``: the report is computed from
    exactly what ``records.jsonl`` holds, so anyone can recompute every figure from the committed records."""
    summary = summarise(cfg, [r for r in recs if r.phase == "test"], [r for r in recs if r.phase == "reference"],
                        reps=reps, selection=selection, budgets=budgets)
    return summary, markdown_report(cfg, summary) + "\n" + compute_summary(recs)


def _by_method(cfg: dict[str, Any], runs: list[ReportRecord], d: float,
               selection: dict[str, Any] | None) -> dict[str, list[ReportRecord]]:
    """Each method's test runs that stand for it at budget ``d``: trained at ``d`` (or budget-free) with the
    setting chosen for ``d`` (a budget-free method may have chosen other settings at other budgets: its runs
    of those settings are not this budget's)."""
    out: dict[str, list[ReportRecord]] = {}
    for m in cfg["methods"]:
        want = None if budget_free(m) else d
        grid = selection[m["name"]][f"{d:g}"]["grid_index"] if selection else 0
        out[m["name"]] = [r for r in runs if r.method == m["name"] and r.budget == want and r.grid_index == grid]
    return out


def _check_paired(ra: list[ReportRecord], rb: list[ReportRecord], a: str, b: str) -> None:
    """Two methods are compared pair by pair (seed, problem): the same seeds and the same problems (split, n and,
    where recorded, the evaluation task), else a clear error instead of a difference of unrelated draws."""
    def key(runs: list[ReportRecord]) -> list[tuple[Any, ...]]:
        return sorted((r.seed, r.split, r.n, r.eval_task) for r in runs)

    ka, kb = key(ra), key(rb)
    if [k[:3] for k in ka] != [k[:3] for k in kb] or any(x[3] and y[3] and x[3] != y[3] for x, y in zip(ka, kb)):
        raise ValueError(f"{a!r} and {b!r} are not paired: runs of seeds/splits/problem counts {[k[:3] for k in ka]} "
                         f"vs {[k[:3] for k in kb]} (or other evaluation tasks)")


def summarise(cfg: dict[str, Any], runs: list[ReportRecord], references: list[ReportRecord],
              reps: int = 2000, selection: dict[str, Any] | None = None,
              budgets: list[float] | None = None) -> dict[str, Any]:
    """Per budget (default: the config's): each method's metrics (mean, 95% interval, per-seed values), its
    expected-cost verdict (mean cost <= d?) and share of seeds whose mean cost is <= d, its mean training time,
    and the paired differences of ``cfg["contrasts"]`` (default: the first method against each other one), each
    with the bootstrap interval, the per-seed t-interval and, on accuracy, the equivalence verdict against
    ``cfg["equivalence_margin"]`` (when given). ``selection``: the settings chosen on validation
    (:func:`~llm_cmdp_agents.experiments.plan.select_settings`; None: each grid's first). ``exploratory``: whether
    the config tests d whatever the binding check says (``binding.exploratory``)."""
    names = [m["name"] for m in cfg["methods"]]
    contrasts = cfg.get("contrasts") or [[names[0], n] for n in names[1:]]
    margin = cfg.get("equivalence_margin")
    out: dict[str, Any] = {}
    for d in budgets or cfg["budgets"]:
        by = _by_method(cfg, runs, d, selection)
        arrays = {name: metric_arrays(rs, d) for name, rs in by.items() if rs}
        table = {}
        for name, a in arrays.items():
            row = {**summary_row(a, reps), "grid": by[name][0].grid}
            row["expected"] = {"verdict": expected_cost_verdict(row["cost"], d),
                               "seed_share": float(np.mean([c <= d for c in row["cost"]["per_seed"]]))}
            row["train_seconds"] = float(np.mean([r.train_seconds for r in by[name]]))
            row["updates"] = by[name][0].updates
            used = [r.train_last for r in by[name] if r.train_last]
            if used:  # an outside method: the compute it used against the limit every method trains on
                row["compute"] = {"episodes": [u["episodes"] for u in used], "limit": used[0]["limit_episodes"],
                                  "over_limit_runs": sum(u["episodes"] > u["limit_episodes"] for u in used)}
            if selection:
                pick = selection[name][f"{d:g}"]
                row["choice"] = {k: pick.get(k) for k in ("grid_index", "at_edge", "rule")}
            table[name] = row
        for r in references:
            row = {**summary_row(metric_arrays([r], d), reps), "grid": None}
            row["expected"] = {"verdict": expected_cost_verdict(row["cost"], d),
                               "seed_share": float(row["cost"]["mean"] <= d)}
            table[f"*{r.method}*"] = row
        diffs = []
        for a, b in contrasts:
            if a in arrays and b in arrays:
                _check_paired(by[a], by[b], a, b)
                c: dict[str, Any] = {"a": a, "b": b}
                for k in ("accuracy", "satisfaction", "safe_accuracy", "cost"):
                    c[k] = {**paired_difference(arrays[a][k], arrays[b][k], reps),
                            "t": paired_t(arrays[a][k], arrays[b][k])}
                if margin is not None:
                    c["accuracy"]["equivalence"] = equivalence_verdict(arrays[a]["accuracy"], arrays[b]["accuracy"],
                                                                       float(margin), reps)
                    c["claim"] = claim_verdict(c)
                diffs.append(c)
        out[f"{d:g}"] = {"methods": table, "contrasts": diffs, "exploratory": exploratory(cfg, d)}
    return out


def _setting_text(grid: dict[str, Any]) -> str:
    """A grid point for the table: its JSON, with file paths cut to their last part (``.../model``)."""
    def short(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: short(x) for k, x in v.items()}
        if isinstance(v, list):
            return [short(x) for x in v]
        if isinstance(v, str) and "/" in v and len(v) > 24:
            return ".../" + v.rstrip("/").rsplit("/", 1)[-1]
        return v

    return json.dumps(short(grid))


def _ci(x: dict[str, Any], fmt: str = ".3f") -> str:
    return f"{x['mean']:{fmt}} [{x['low']:{fmt}}, {x['high']:{fmt}}]"


def _diff(c: dict[str, Any], fmt: str = "+.3f") -> str:
    t = c["t"]
    ti = "" if t["low"] is None else f"; t [{t['low']:{fmt}}, {t['high']:{fmt}}]"
    return f"{c['diff']:{fmt}} [{c['low']:{fmt}}, {c['high']:{fmt}}]{ti}"


def markdown_report(cfg: dict[str, Any], summary: dict[str, Any]) -> str:
    """Tables per budget (95% paired-bootstrap intervals over seeds and problems) and the differences (bootstrap
    interval; per-seed t-interval; the accuracy verdict against the equivalence margin)."""
    lines = []
    margin = cfg.get("equivalence_margin")
    for d, part in summary.items():
        note = (" — exploratory: tested whatever the binding check says, not part of the protocol's answer"
                if part.get("exploratory") else "")
        lines += [f"### Budget d = {d} (summed episode cost <= {d}){note}", "",
                  "| method | chosen setting | accuracy | satisfaction (per episode) | mean cost | mean cost <= d? "
                  "(seeds) | solved within budget | accuracy per seed (std) | train s/run |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, row in part["methods"].items():
            per_seed = row["accuracy"]["per_seed"]
            setting = _setting_text(row["grid"]) if row["grid"] else "–"
            if row.get("choice", {}).get("at_edge"):
                setting += " (edge)"
            exp = row["expected"]
            secs = f"{row['train_seconds']:.0f}" if "train_seconds" in row else "–"
            lines.append(f"| {name} | {setting} | {_ci(row['accuracy'])} | {_ci(row['satisfaction'])} | "
                         f"{_ci(row['cost'], '.1f')} | {exp['verdict']} ({exp['seed_share']:.0%}) | "
                         f"{_ci(row['safe_accuracy'])} | "
                         f"{', '.join(f'{x:.3f}' for x in per_seed)} ({row['accuracy']['seed_std']:.3f}) | {secs} |")
        for name, row in part["methods"].items():
            if "compute" in row:
                c = row["compute"]
                over = (f"**{c['over_limit_runs']} of {len(c['episodes'])} runs over it: not a like-for-like row**"
                        if c["over_limit_runs"] else "every run within it")
                lines.append(f"\n{name} (outside method): {min(c['episodes'])}–{max(c['episodes'])} training "
                             f"episodes per run, of the limit of {c['limit']} every method trains on; {over}.")
        if part["contrasts"]:
            head = "accuracy" + ("" if margin is None else f" (verdict, margin ±{margin:g})")
            claim = any("claim" in c for c in part["contrasts"])
            lines += ["", f"| difference (a − b) | {head} | satisfaction (per episode) | solved within budget | "
                      "mean cost |" + (" a vs b (the claim) |" if claim else ""),
                      "|---|---|---|---|---|" + ("---|" if claim else "")]
            for c in part["contrasts"]:
                acc = _diff(c["accuracy"])
                if "equivalence" in c["accuracy"]:
                    acc += f" **{c['accuracy']['equivalence']['verdict']}**"
                lines.append(f"| {c['a']} − {c['b']} | {acc} | {_diff(c['satisfaction'])} | "
                             f"{_diff(c['safe_accuracy'])} | {_diff(c['cost'], '+.1f')} |"
                             + (f" {c['claim']} |" if claim else ""))
        lines.append("")
    return "\n".join(lines)


def _machine(r: ReportRecord) -> str:
    m = r.machine
    return "not recorded" if not m else f"{m.get('cpu')} {m.get('simd')}, {m.get('threads')} thread(s)"


def compute_summary(recs: list[ReportRecord]) -> str:
    """What the sweep cost: per phase the runs and their summed training and evaluation time (each run's own
    wall time on one process; runs in parallel overlap), and the mean training time per run of each method, per
    phase and machine (times compare only within one machine and one phase: the same load beside them)."""
    lines = ["| phase | runs | training (min, summed) | evaluation (min, summed) |", "|---|---|---|---|"]
    for phase in ("validation", "test"):
        rs = [r for r in recs if r.phase == phase]
        if rs:
            lines.append(f"| {phase} | {len(rs)} | {sum(r.train_seconds for r in rs) / 60:.1f} | "
                         f"{sum(r.eval_seconds or 0.0 for r in rs) / 60:.1f} |")
    lines += ["", "| method | phase | machine | runs | training s/run (mean) |", "|---|---|---|---|---|"]
    for phase in ("test", "validation"):
        for name in dict.fromkeys(r.method for r in recs if r.phase == phase):
            rs = [r for r in recs if r.method == name and r.phase == phase]
            for where in dict.fromkeys(_machine(r) for r in rs):
                here = [r.train_seconds for r in rs if _machine(r) == where]
                lines.append(f"| {name} | {phase} | {where} | {len(here)} | {np.mean(here):.0f} |")
    return "\n".join(lines) + "\n"


def write_report(cfg: dict[str, Any], out: Path, references: list[ReferenceRecord]) -> dict[str, Any]:
    """Write ``records.jsonl``, ``results.json``, ``results.md`` and the plots (``pareto.png``: the frontier per
    budget; ``forest.png``: the paired differences; ``lambda.png``: the training traces) under ``out``. With a
    ``binding`` section, ``results.json`` also holds the binding check (``binding.json``) that chose the tested
    budgets, so the verdicts results.md quotes from validation travel with the committed results."""
    from llm_cmdp_agents.experiments.plots import plot_forest, plot_frontier, plot_traces

    selection = select_settings(cfg, out) if "validation" in cfg else None
    budgets = test_budgets(cfg, out)
    recs = records(cfg, out, references)
    summary, md = report_from_records(cfg, recs, selection, budgets)
    paths = {"records": str(out / "records.jsonl"), "json": str(out / "results.json"),
             "markdown": str(out / "results.md"), "plot": str(out / "pareto.png"),
             "forest": str(out / "forest.png"), "traces": str(out / "lambda.png")}
    write_text_atomic(paths["records"], "".join(json.dumps(r.to_dict()) + "\n" for r in recs))
    write_text_atomic(paths["markdown"], md + "\n")
    plot_frontier(cfg, summary, Path(paths["plot"]))
    plot_forest(cfg, summary, Path(paths["forest"]))
    plot_traces(cfg, [r for r in recs if r.phase == "test"], summary, Path(paths["traces"]))
    results = {"config": cfg, "summary": summary, "selection": selection, "paths": paths, "markdown": md}
    if "binding" in cfg:
        results["binding"] = read_binding(out)
    write_json_atomic(paths["json"], results)
    return results


# ---------------------------------------------------------------------------------------------- status
def status(cfg: dict[str, Any], out: Path, phase: str = "validation") -> dict[str, Any]:
    """Where a sweep stands (``--phase status``), from its finished runs (run folders or archive): per method,
    setting and budget the seeds finished of those planned and their pooled accuracy, mean cost, share of
    episodes over d and safe accuracy; the CPU time spent (training + evaluation, one thread per run) and
    the runs left. Reads only; a partial table is a progress view, never a selection."""
    rows, spent, left = [], 0.0, 0
    groups: dict[tuple, list[RunRecord]] = {}
    for job in plan_jobs(cfg, phase, out):
        res = finished(job)
        key = (job.method, job.grid_index, job.budget)
        groups.setdefault(key, [])
        if res is None:
            left += 1
        else:
            groups[key].append(res)
            spent += float(res.train_seconds) + float(res.eval_seconds or 0.0)
    planned = {}
    for job in plan_jobs(cfg, phase, out):
        key = (job.method, job.grid_index, job.budget)
        planned[key] = planned.get(key, 0) + 1
    for (method, g, budget), runs in groups.items():
        for d in ([budget] if budget is not None else cfg["budgets"]):
            row = {"method": method, "grid_index": g, "budget": d, "trained_at": budget,
                   "seeds_done": len(runs), "seeds_planned": planned[(method, g, budget)]}
            if runs:
                a = metric_arrays(runs, d)
                row.update({k: float(a[k].mean()) for k in ("accuracy", "safe_accuracy")})
                row.update({"mean_cost": float(a["cost"].mean()), "over_budget": 1.0 - float(a["satisfaction"].mean())})
            rows.append(row)
    done = sum(len(r) for r in groups.values())
    return {"phase": phase, "finished": done, "planned": done + left, "cpu_seconds": spent,
            "cpu_seconds_left_estimate": (spent / done * left) if done else None, "rows": rows}


def status_text(st: dict[str, Any]) -> str:
    """:func:`status` as a table (a budget-free method's one trained model is listed at every budget)."""
    hours = st["cpu_seconds"] / 3600
    eta = st["cpu_seconds_left_estimate"]
    lines = [f"{st['phase']}: {st['finished']}/{st['planned']} runs finished, {hours:.2f} CPU-hours spent"
             + ("" if eta is None else f", about {eta / 3600:.1f} CPU-hours left at this pace"),
             f"{'method':<20} {'g':>2} {'d':>6} {'seeds':>5} {'accuracy':>8} {'mean cost':>9} {'cost>d':>6} "
             f"{'safe acc':>8}"]
    for r in st["rows"]:
        seeds = f"{r['seeds_done']}/{r['seeds_planned']}"
        if "accuracy" not in r:
            lines.append(f"{r['method'][:20]:<20} {r['grid_index']:>2} {r['budget']:>6g} {seeds:>5}")
            continue
        lines.append(f"{r['method'][:20]:<20} {r['grid_index']:>2} {r['budget']:>6g} {seeds:>5} {r['accuracy']:>8.3f} "
                     f"{r['mean_cost']:>9.1f} {r['over_budget']:>6.1%} {r['safe_accuracy']:>8.3f}")
    return "\n".join(lines)
