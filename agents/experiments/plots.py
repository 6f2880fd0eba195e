"""The plots of a method comparison (``llm-cmdp compare --phase report``), drawn from its summary and records:

- ``pareto.png`` (:func:`plot_frontier`): per budget d one column; top, accuracy against per-episode satisfaction;
  bottom, accuracy against the mean episode cost (the expected-cost view, d drawn as a line); each method one
  point with its 95% intervals, the non-dominated methods joined as the frontier, the references as black marks.
- ``forest.png`` (:func:`plot_forest`): every contrast's paired difference per budget and metric, the bootstrap
  interval (thick) and the per-seed t-interval (thin), the equivalence margin shaded on accuracy.
- ``lambda.png`` (:func:`plot_traces`): per budget, the Lagrange multiplier per update (methods that have one)
  and every method's training mean cost per update against d, each seed thin, their mean thick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from llm_cmdp_agents.experiments.records import ReportRecord

__all__ = ["frontier", "plot_forest", "plot_frontier", "plot_traces"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(cfg: dict[str, Any]) -> dict[str, Any]:
    plt = _plt()
    return {m["name"]: plt.cm.tab10(i % 10) for i, m in enumerate(cfg["methods"])}


def frontier(points: list[tuple[float, float]], higher_x: bool = True) -> list[tuple[float, float]]:
    """The non-dominated points of ``(x, y)`` pairs (higher y is better; higher x too, or lower with
    ``higher_x=False``), sorted by x: the accuracy-satisfaction (or accuracy-cost) frontier."""
    sign = 1.0 if higher_x else -1.0
    keep = [p for p in points if not any((sign * q[0] >= sign * p[0] and q[1] >= p[1]) and q != p
                                         for q in points)]
    return sorted(set(keep))


def _tag(summary: dict[str, Any], d: str) -> str:
    """What a budget's titles and labels say after "d = ...": whether the config tests it as exploratory."""
    return " (exploratory)" if summary[d].get("exploratory") else ""


def _errorbar(ax: Any, x: dict[str, Any], y: dict[str, Any], **kw: Any) -> None:
    ax.errorbar([x["mean"]], [y["mean"]], xerr=[[x["mean"] - x["low"]], [x["high"] - x["mean"]]],
                yerr=[[y["mean"] - y["low"]], [y["high"] - y["mean"]]], capsize=2, **kw)


def plot_frontier(cfg: dict[str, Any], summary: dict[str, Any], path: Path) -> Path:
    """Accuracy against per-episode satisfaction (top) and against mean cost (bottom), one column per budget."""
    plt = _plt()
    colors = _colors(cfg)
    budgets = list(summary)
    fig, axes = plt.subplots(2, len(budgets), figsize=(5.2 * len(budgets), 9), squeeze=False)
    for j, d in enumerate(budgets):
        rows = summary[d]["methods"]
        top, bottom = axes[0][j], axes[1][j]
        sat_pts, cost_pts = [], []
        for name, row in rows.items():
            ref = name.startswith("*")
            style = ({"fmt": "kx" if "student" in name else "k+", "ms": 10, "mew": 2} if ref else
                     {"fmt": "o", "color": colors.get(name), "ms": 7})
            label = name.strip("*") + " (untrained)" if ref else name
            _errorbar(top, row["satisfaction"], row["accuracy"], label=label if j == 0 else None, **style)
            _errorbar(bottom, row["cost"], row["accuracy"], **style)
            if not ref:
                sat_pts.append((row["satisfaction"]["mean"], row["accuracy"]["mean"]))
                cost_pts.append((row["cost"]["mean"], row["accuracy"]["mean"]))
        for ax, pts, higher in ((top, sat_pts, True), (bottom, cost_pts, False)):
            f = frontier(pts, higher_x=higher)
            if len(f) > 1:
                ax.plot([p[0] for p in f], [p[1] for p in f], "-", color="0.5", lw=1.2, zorder=0,
                        label="frontier (non-dominated methods)" if (j == 0 and higher) else None)
        bottom.axvline(float(d), color="k", ls="--", lw=1, label="budget d" if j == 0 else None)
        top.set_title(f"d = {d}{_tag(summary, d)}: per episode (share with summed cost <= d)", fontsize=9)
        bottom.set_title(f"d = {d}{_tag(summary, d)}: in expectation (mean cost vs d)", fontsize=9)
        top.set_xlabel("constraint satisfaction (test episodes with cost <= d)")
        bottom.set_xlabel("mean episode cost (test)")
        for ax in (top, bottom):
            ax.set_ylabel("test accuracy (greedy)")
            ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in (axes[0][0], axes[1][0]):
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, frameon=False)
    fig.suptitle("accuracy vs constraint satisfaction per budget (95% bootstrap intervals over seeds x problems)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_FOREST = (("accuracy", "accuracy"), ("satisfaction", "satisfaction (per episode)"),
           ("safe_accuracy", "solved within budget"), ("cost", "mean cost"))


def plot_forest(cfg: dict[str, Any], summary: dict[str, Any], path: Path) -> Path:
    """Paired differences (a − b) of every contrast and budget: one column per metric, one row per contrast."""
    plt = _plt()
    rows = [(d, c) for d, part in summary.items() for c in part["contrasts"]]
    fig, axes = plt.subplots(1, len(_FOREST), figsize=(4.2 * len(_FOREST), 1.2 + 0.42 * max(1, len(rows))),
                             sharey=True, squeeze=False)
    margin = cfg.get("equivalence_margin")
    ys = np.arange(len(rows))[::-1]
    for ax, (key, title) in zip(axes[0], _FOREST):
        for y, (_, c) in zip(ys, rows):
            x = c[key]
            ax.plot([x["low"], x["high"]], [y, y], "-", color="tab:blue", lw=3, solid_capstyle="butt")
            if x["t"]["low"] is not None:
                ax.plot([x["t"]["low"], x["t"]["high"]], [y - 0.18, y - 0.18], "-", color="tab:orange", lw=1)
            ax.plot([x["diff"]], [y], "o", color="k", ms=4)
        ax.axvline(0.0, color="k", lw=0.8)
        if key == "accuracy" and margin is not None:
            ax.axvspan(-float(margin), float(margin), color="tab:green", alpha=0.15)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    axes[0][0].set_yticks(ys)
    axes[0][0].set_yticklabels([f"d={d}{_tag(summary, d)}: {c['a']} − {c['b']}" for d, c in rows], fontsize=8)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    legend = [Line2D([], [], color="tab:blue", lw=3, label="95% paired bootstrap (seeds x problems)"),
              Line2D([], [], color="tab:orange", lw=1, label="95% per-seed paired t-interval")]
    if margin is not None:
        legend.append(Patch(color="tab:green", alpha=0.15, label=f"equivalence margin ±{margin:g}"))
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("paired differences between methods (a − b), per budget", fontsize=10)
    fig.tight_layout(rect=(0, 0.1 if len(rows) < 6 else 0.05, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _runs_at(records: list[ReportRecord], name: str, row: dict[str, Any], d: float) -> list[ReportRecord]:
    return [r for r in records if r.method == name and r.grid == row["grid"] and r.budget in (d, None)
            and r.train_trace]


def plot_traces(cfg: dict[str, Any], records: list[ReportRecord], summary: dict[str, Any], path: Path) -> Path:
    """Per budget: the multiplier per update (top) and the training mean cost per update against d (bottom)."""
    plt = _plt()
    colors = _colors(cfg)
    budgets = list(summary)
    fig, axes = plt.subplots(2, len(budgets), figsize=(5.2 * len(budgets), 7.5), squeeze=False)
    for j, d in enumerate(budgets):
        top, bottom = axes[0][j], axes[1][j]
        for name, row in summary[d]["methods"].items():
            runs = _runs_at(records, name, row, float(d))
            if not runs:
                continue
            for key, ax in (("lambda", top), ("cost", bottom)):
                series = [np.array([np.nan if v is None else v for v in r.train_trace[key]], dtype=float)
                          for r in runs]
                if all(np.isnan(s).all() for s in series):
                    continue
                n = min(len(s) for s in series)
                for s in series:
                    ax.plot(np.arange(1, n + 1), s[:n], "-", color=colors.get(name), lw=0.5, alpha=0.35)
                ax.plot(np.arange(1, n + 1), np.nanmean([s[:n] for s in series], axis=0), "-",
                        color=colors.get(name), lw=1.8, label=name)
        bottom.axhline(float(d), color="k", ls="--", lw=1, label="budget d")
        top.set_title(f"d = {d}{_tag(summary, d)}: Lagrange multiplier after each update", fontsize=9)
        bottom.set_title(f"d = {d}{_tag(summary, d)}: training mean episode cost per update", fontsize=9)
        for ax, lab in ((top, "lambda"), (bottom, "mean episode cost (sampled batch)")):
            ax.set_xlabel("update")
            ax.set_ylabel(lab)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        if not top.get_legend_handles_labels()[0]:
            top.text(0.5, 0.5, "no method with a multiplier", ha="center", va="center", transform=top.transAxes)
    fig.suptitle("training traces of the test runs (each seed thin, the mean over seeds thick)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
