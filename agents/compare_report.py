"""The report of a method comparison (``llm-cmdp compare``): per-run records, tables with 95% bootstrap
intervals, paired differences between methods, and the accuracy-vs-satisfaction Pareto plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_cmdp_agents.compare_plan import budget_free, finished, method_id, plan_jobs, select_settings
from llm_cmdp_agents.compare_stats import metric_arrays, paired_difference, summary_row
from llm_cmdp_env.atomic_io import write_json_atomic, write_text_atomic

__all__ = ["markdown_report", "plot_pareto", "records", "write_report"]


def _runs(cfg: dict[str, Any], out: Path, phase: str) -> list[dict[str, Any]]:
    res, missing = [], []
    for job in plan_jobs(cfg, phase, out):
        r = finished(job)
        (missing.append(job["run_dir"]) if r is None else res.append(r))
    if missing:
        raise RuntimeError(f"the {phase} phase has {len(missing)} unfinished runs (e.g. {missing[0]}): run "
                           f"`--phase {phase}` first")
    return res


def _score(run: dict[str, Any], budgets: list[float]) -> dict[str, dict[str, float]]:
    out = {}
    for d in budgets:
        a = metric_arrays([run], d)
        out[f"{d:g}"] = {k: float(a[k].mean()) for k in ("accuracy", "satisfaction", "safe_accuracy")}
    return out


def records(cfg: dict[str, Any], out: Path, references: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per run (validation and test phases, and the references): method (and its ``method_id``, see
    :func:`~llm_cmdp_agents.compare_plan.method_id`), phase, seed, training
    budget (None: the method ignores it), grid setting, the metrics at every budget of the sweep, and the
    per-problem outcomes (``correct`` as a 0/1 string, ``cost`` rounded to 1e-4) they were computed from."""
    rows = []
    ids = {m["name"]: method_id(cfg, m) for m in cfg["methods"]}
    phases = (("validation", "test") if "validation" in cfg else ("test",))
    for phase in phases:
        for r in _runs(cfg, out, phase):
            rows.append({"phase": phase, "method": r["method"], "method_id": ids[r["method"]], "seed": r["seed"],
                         "budget": r["budget"],
                         "grid": r["grid"], "split": r["split"], "n": r["n"], "train_seconds": r["train_seconds"],
                         "mean_cost": r["mean_cost"], "mean_length": r["mean_length"],
                         "at_budget": _score(r, cfg["budgets"]), "per_problem": _compact(r["per_problem"])})
    for r in references:
        rows.append({"phase": "reference", "method": r["method"], "method_id": r["method"], "seed": None,
                     "budget": None, "grid": None, "split": r["split"], "n": r["n"], "train_seconds": 0.0,
                     "mean_cost": r["mean_cost"], "mean_length": r["mean_length"],
                     "at_budget": _score(r, cfg["budgets"]), "per_problem": _compact(r["per_problem"])})
    return rows


def _compact(pp: dict[str, Any]) -> dict[str, Any]:
    return {"correct": "".join("1" if c else "0" for c in pp["correct"]), "cost": [round(c, 4) for c in pp["cost"]]}


def _by_method(cfg: dict[str, Any], runs: list[dict[str, Any]], d: float,
               selection: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Each method's test runs that stand for it at budget ``d``: trained at ``d`` (or budget-free) with the
    setting chosen for ``d`` (a budget-free method may have chosen other settings at other budgets: its runs
    of those settings are not this budget's)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in cfg["methods"]:
        want = None if budget_free(m) else d
        grid = selection[m["name"]][f"{d:g}"]["grid_index"] if selection else 0
        out[m["name"]] = [r for r in runs if r["method"] == m["name"] and r["budget"] == want
                          and r["grid_index"] == grid]
    return out


def summarise(cfg: dict[str, Any], runs: list[dict[str, Any]], references: list[dict[str, Any]],
              reps: int = 2000, selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per budget: each method's metrics (mean, 95% interval, per-seed values) and the paired differences of
    ``cfg["contrasts"]`` (default: the first method against each other one). ``selection``: the settings chosen
    on validation (:func:`~llm_cmdp_agents.compare_plan.select_settings`; None: each grid's first)."""
    names = [m["name"] for m in cfg["methods"]]
    contrasts = cfg.get("contrasts") or [[names[0], n] for n in names[1:]]
    out: dict[str, Any] = {}
    for d in cfg["budgets"]:
        by = _by_method(cfg, runs, d, selection)
        arrays = {name: metric_arrays(rs, d) for name, rs in by.items() if rs}
        table = {name: {**summary_row(a, reps), "grid": by[name][0]["grid"]} for name, a in arrays.items()}
        for r in references:
            table[f"*{r['method']}*"] = {**summary_row(metric_arrays([{**r, "seed": 0}], d), reps), "grid": None}
        diffs = []
        for a, b in contrasts:
            if a in arrays and b in arrays:
                diffs.append({"a": a, "b": b, **{k: paired_difference(arrays[a][k], arrays[b][k], reps)
                                                 for k in ("accuracy", "satisfaction", "safe_accuracy", "cost")}})
        out[f"{d:g}"] = {"methods": table, "contrasts": diffs}
    return out


def _ci(x: dict[str, Any], fmt: str = ".3f") -> str:
    return f"{x['mean']:{fmt}} [{x['low']:{fmt}}, {x['high']:{fmt}}]"


def markdown_report(cfg: dict[str, Any], summary: dict[str, Any]) -> str:
    """Tables per budget (95% paired-bootstrap intervals over seeds and problems) and the differences."""
    lines = []
    for d, part in summary.items():
        lines += [f"### Budget d = {d} (summed episode cost <= {d})", "",
                  "| method | chosen setting | accuracy | satisfaction | solved within budget | mean cost | "
                  "accuracy per seed (std) |", "|---|---|---|---|---|---|---|"]
        for name, row in part["methods"].items():
            per_seed = row["accuracy"]["per_seed"]
            lines.append(f"| {name} | {json.dumps(row['grid']) if row['grid'] else '–'} | {_ci(row['accuracy'])} | "
                         f"{_ci(row['satisfaction'])} | {_ci(row['safe_accuracy'])} | {_ci(row['cost'], '.1f')} | "
                         f"{', '.join(f'{x:.3f}' for x in per_seed)} ({row['accuracy']['seed_std']:.3f}) |")
        if part["contrasts"]:
            lines += ["", "| difference (a − b) | accuracy | satisfaction | solved within budget | mean cost |",
                      "|---|---|---|---|---|"]
            for c in part["contrasts"]:
                cell = [f"{c[k]['diff']:+.3f} [{c[k]['low']:+.3f}, {c[k]['high']:+.3f}]"
                        for k in ("accuracy", "satisfaction", "safe_accuracy")]
                cost = c["cost"]
                lines.append(f"| {c['a']} − {c['b']} | {' | '.join(cell)} | "
                             f"{cost['diff']:+.1f} [{cost['low']:+.1f}, {cost['high']:+.1f}] |")
        lines.append("")
    return "\n".join(lines)


def plot_pareto(cfg: dict[str, Any], summary: dict[str, Any], path: Path) -> Path:
    """Left: accuracy vs constraint satisfaction, one line per method through its points at the budgets of the
    sweep (labelled with d), with 95% intervals on both axes, the references as crosses. Right: each method's
    share solved within the budget (the common criterion) against d, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    names = [m["name"] for m in cfg["methods"]]
    lows = []
    budgets = [float(d) for d in summary]
    for i, name in enumerate(names):
        pts = [(d, part["methods"][name]) for d, part in summary.items() if name in part["methods"]]
        if not pts:
            continue
        xs = [p["satisfaction"]["mean"] for _, p in pts]
        ys = [p["accuracy"]["mean"] for _, p in pts]
        lows += [p["satisfaction"]["low"] for _, p in pts]
        xerr = [[x - p["satisfaction"]["low"] for x, (_, p) in zip(xs, pts)],
                [p["satisfaction"]["high"] - x for x, (_, p) in zip(xs, pts)]]
        yerr = [[y - p["accuracy"]["low"] for y, (_, p) in zip(ys, pts)],
                [p["accuracy"]["high"] - y for y, (_, p) in zip(ys, pts)]]
        color = plt.cm.tab10(i % 10)
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o-", color=color, capsize=2, label=name, alpha=0.85)
        for (d, _), x, y in zip(pts, xs, ys):
            ax.annotate(f"d={d}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points", color=color)
        safe = [p["safe_accuracy"] for _, p in pts]
        span = (max(budgets) - min(budgets)) or 0.2 * max(abs(budgets[0]), 1.0)  # one budget: a span around it
        shift = (i - len(names) / 2) * 0.006 * span  # side by side, readable
        bx.errorbar([float(d) + shift for d, _ in pts], [x["mean"] for x in safe],
                    yerr=[[x["mean"] - x["low"] for x in safe], [x["high"] - x["mean"] for x in safe]],
                    fmt="o-", color=color, capsize=2, label=name, alpha=0.85)
    for name in {n for part in summary.values() for n in part["methods"] if n.startswith("*")}:
        pts = [part["methods"][name] for part in summary.values()]
        ax.plot([p["satisfaction"]["mean"] for p in pts], [p["accuracy"]["mean"] for p in pts], "kx--", lw=0.8)
        ax.annotate(name.strip("*"), (pts[-1]["satisfaction"]["mean"], pts[-1]["accuracy"]["mean"]), fontsize=8,
                    xytext=(4, -10), textcoords="offset points")
        bx.plot(budgets, [p["safe_accuracy"]["mean"] for p in pts], "k:", lw=1)
        bx.annotate(name.strip("*"), (budgets[-1], pts[-1]["safe_accuracy"]["mean"]), fontsize=8,
                    xytext=(4, 0), textcoords="offset points")
    ax.set_xlabel("constraint satisfaction (test episodes with summed cost <= d)")
    ax.set_ylabel("test accuracy (greedy)")
    ax.set_xlim(max(-0.03, min(lows, default=0.0) - 0.05), 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("accuracy vs satisfaction per method across budgets d (95% bootstrap intervals)", fontsize=9)
    bx.set_xlabel("budget d (summed episode cost)")
    bx.set_ylabel("solved within budget (correct and cost <= d)")
    bx.set_xticks(budgets)
    if len(budgets) == 1:
        bx.set_xlim(budgets[0] - 0.2 * max(abs(budgets[0]), 1.0), budgets[0] + 0.2 * max(abs(budgets[0]), 1.0))
    bx.grid(alpha=0.3)
    bx.set_title("the common criterion, per budget", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(cfg: dict[str, Any], out: Path, references: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``records.jsonl``, ``results.json``, ``results.md`` and ``pareto.png`` under ``out``."""
    runs = _runs(cfg, out, "test")
    selection = select_settings(cfg, out) if "validation" in cfg else None
    summary = summarise(cfg, runs, references, selection=selection)
    md = markdown_report(cfg, summary)
    paths = {"records": str(out / "records.jsonl"), "json": str(out / "results.json"),
             "markdown": str(out / "results.md"), "plot": str(out / "pareto.png")}
    write_text_atomic(paths["records"], "".join(json.dumps(r) + "\n" for r in records(cfg, out, references)))
    write_text_atomic(paths["markdown"], md + "\n")
    plot_pareto(cfg, summary, Path(paths["plot"]))
    results = {"config": cfg, "summary": summary, "selection": selection, "paths": paths, "markdown": md}
    write_json_atomic(paths["json"], results)
    return results
