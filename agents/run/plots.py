"""Training curves of run folders as PNG figures, and the ``llm-cmdp plot`` command.

:func:`write_run_plots` draws ``<run_dir>/curves.png`` from a run folder's ``progress.csv`` (one row per
update), ``config.json`` (the budget) and ``results.json`` (the test evaluation before and after training);
the trainer calls it at the end of training and on Ctrl-C. :func:`plot_runs` overlays several runs in the same
panels, one colour per run. The panels, over updates:

- task reward / accuracy of the training batches (and the test accuracy before/after training);
- the penalised (shaped) reward: what the learner actually optimises (the wrapper stack's reward);
- the episode cost, with the budget d as a horizontal line;
- the Lagrange multiplier lambda (when the run has one);
- the constraint satisfaction (when the run has a budget).

matplotlib is optional: it is imported lazily, through its object-oriented API with the Agg canvas (no pyplot,
so a user's interactive backend is left alone); when it is missing, :func:`write_run_plots` warns once and
returns None so a training run never fails for want of a figure. The PNG is written to a temporary file and
renamed over the target, so an interrupted write never leaves a truncated figure.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm_cmdp_env.common.atomic_io import atomic_path
from llm_cmdp_env.wrappers.factory import REGISTRY

__all__ = [
    "CURVES_FILE", "RunCurves", "RunFolderError", "load_run", "plot_command",
    "plot_runs", "write_run_plots",
]

#: The figure :func:`write_run_plots` writes in a run folder.
CURVES_FILE = "curves.png"
PROGRESS_FILE = "progress.csv"
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"

_warned_no_matplotlib = False


class RunFolderError(ValueError):
    """A folder that cannot be plotted: not a run folder, or no update logged yet."""


@dataclass
class RunCurves:
    """What a run folder holds for plotting.

    Attributes
    ----------
    path : Path
        The run folder.
    name : str
        Its label in figures (the folder name).
    columns : dict of str to ndarray
        One float array per ``progress.csv`` column with at least one value (NaN where a row left it empty);
        ``"update"`` is always present.
    config : dict
        ``config.json`` (empty if absent or unreadable).
    results : dict
        ``results.json`` (empty if absent or unreadable).
    """

    path: Path
    name: str
    columns: dict[str, np.ndarray]
    config: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def updates(self) -> np.ndarray:
        """The x axis: update index of each row."""
        return self.columns["update"]

    def has(self, column: str) -> bool:
        """Whether ``column`` holds at least one finite value."""
        v = self.columns.get(column)
        return v is not None and bool(np.isfinite(v).any())

    @property
    def constraint(self) -> str | None:
        """The run's constraint name from ``config.json`` (None if unknown)."""
        env = self.config.get("env")
        return env.get("constraint") if isinstance(env, dict) else None

    @property
    def budget(self) -> float | None:
        """The constraint budget d: ``config.json`` ``env.budget``, else the last value of the budget column."""
        env = self.config.get("env")
        b = env.get("budget") if isinstance(env, dict) else None
        if b is not None:
            try:
                b = float(b)
            except (TypeError, ValueError):
                b = None
            if b is not None and math.isfinite(b):
                return b
        if self.has("budget"):
            col = self.columns["budget"]
            return float(col[np.isfinite(col)][-1])
        return None

    def evaluation(self, which: str) -> dict[str, Any] | None:
        """The ``before`` or ``after`` test evaluation of ``results.json``, or None."""
        ev = self.results.get(which)
        return ev if isinstance(ev, dict) else None

    @property
    def last_update(self) -> float:
        """Update count at the end of training (where the ``after`` evaluation is drawn)."""
        u = self.results.get("updates")
        if isinstance(u, (int, float)) and math.isfinite(u):
            return float(u)
        return float(np.nanmax(self.updates))


def _parse_float(v: Any) -> float:
    if v is None:
        return math.nan
    s = str(v).strip()
    if not s:
        return math.nan
    if s in ("True", "False"):
        return float(s == "True")
    try:
        return float(s)
    except ValueError:
        return math.nan


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} (with a warning) if it is missing-but-optional or unreadable."""
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring unreadable {path}: {e}", stacklevel=3)
        return {}
    return obj if isinstance(obj, dict) else {}


def load_run(run_dir: str | Path) -> RunCurves:
    """Read a run folder's ``progress.csv``, ``config.json`` and ``results.json``.

    Tolerant of what interrupted or older runs leave: columns an older logger did not write (``task_reward``,
    ``budget``) are simply absent, empty cells are NaN, a truncated last line (a kill mid-append) and stray
    NUL bytes are ignored. ``config.json`` and ``results.json`` are optional (a :class:`Trainer` used from
    Python without :func:`~llm_cmdp_agents.run.folder.train_run` writes only ``progress.csv``).

    Raises
    ------
    RunFolderError
        If ``run_dir`` is not a folder, has no ``progress.csv``, or the CSV has no logged update.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunFolderError(f"{path} is not a run folder (no such folder)")
    csv_path = path / PROGRESS_FILE
    if not csv_path.is_file():
        raise RunFolderError(f"{path} is not a run folder (no {PROGRESS_FILE})")
    text = csv_path.read_text(errors="replace").replace("\x00", "")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "update" not in header:
        raise RunFolderError(f"{csv_path} has no logged update yet (empty, or no 'update' column in its header)")
    rows = [r for r in reader if any(c.strip() for c in r)]
    raw = {name: np.array([_parse_float(r[i]) if i < len(r) else math.nan for r in rows], dtype=float)
           for i, name in enumerate(header)}
    keep = np.isfinite(raw["update"]) if rows else np.zeros(0, dtype=bool)
    if not keep.any():
        raise RunFolderError(f"{csv_path} has no logged update yet")
    columns = {k: v[keep] for k, v in raw.items() if k == "update" or np.isfinite(v[keep]).any()}
    return RunCurves(path=path, name=path.resolve().name or str(path), columns=columns,
                     config=_read_json(path / CONFIG_FILE), results=_read_json(path / RESULTS_FILE))


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` rows, ignoring NaN."""
    if window <= 1 or len(y) < 2:
        return y
    out = np.full_like(y, np.nan)
    for i in range(len(y)):
        w = y[max(0, i - window + 1): i + 1]
        w = w[np.isfinite(w)]
        if len(w):
            out[i] = w.mean()
    return out


def _import_matplotlib() -> tuple[Any, Any, Any] | None:
    """``(Figure, FigureCanvasAgg, Line2D)``, or None with a one-time warning when matplotlib is missing."""
    global _warned_no_matplotlib
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        if not _warned_no_matplotlib:
            _warned_no_matplotlib = True
            warnings.warn("matplotlib is not installed: no training-curve plots (pip install matplotlib)",
                          stacklevel=3)
        return None
    return Figure, FigureCanvasAgg, Line2D


# panel key -> title; drawn in this order, the last two only when some run has them
_PANELS = {
    "task": "task reward / accuracy",
    "reward": "penalised reward (what the learner optimises)",
    "cost": "episode cost",
    "lambda": "Lagrange multiplier lambda",
    "satisfaction": "constraint satisfaction",
}


def _panel_keys(runs: Sequence[RunCurves]) -> list[str]:
    keys = ["task", "reward", "cost"]
    if any(r.has("lambda") for r in runs):
        keys.append("lambda")
    if any(r.has("constraint_satisfaction")
           or any((r.evaluation(w) or {}).get("constraint_satisfaction") is not None for w in ("before", "after"))
           for r in runs):
        keys.append("satisfaction")
    return keys


def _draw(runs: Sequence[RunCurves], out: Path, smooth: int, title: str | None) -> Path:
    mpl = _import_matplotlib()
    assert mpl is not None
    Figure, FigureCanvasAgg, Line2D = mpl
    from matplotlib.ticker import MaxNLocator
    keys = _panel_keys(runs)
    ncols = 2
    nrows = (len(keys) + ncols - 1) // ncols
    fig = Figure(figsize=(6.4 * ncols, 3.4 * nrows + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    ax_of = dict(zip(keys, axes))
    single = len(runs) == 1
    styles: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in keys}  # panel -> label -> style (legends)

    def line(key: str, run_colour: str, x: np.ndarray, y: np.ndarray, label: str, **style: Any) -> None:
        ax = ax_of[key]
        ok = np.isfinite(y)
        if not ok.any():
            return
        style = {"linestyle": "-", **style}
        colour = style.pop("color", run_colour)
        if smooth > 1:
            ax.plot(x[ok], y[ok], color=colour, alpha=0.25, linewidth=0.8, linestyle=style["linestyle"])
            ys = _smooth(y, smooth)
            ok = np.isfinite(ys)
            ax.plot(x[ok], ys[ok], color=colour, linewidth=1.5, label=label if single else None, **style)
        else:
            ax.plot(x[ok], y[ok], color=colour, linewidth=1.3, label=label if single else None, **style)
        styles[key].setdefault(label, {**style, "color": colour})

    def hline(key: str, y: float, colour: str, label: str) -> None:
        ax_of[key].axhline(y, color=colour, linestyle=":", linewidth=1.4, label=label if single else None)
        styles[key].setdefault("budget d" if not single else label, {"linestyle": ":", "color": colour})

    def point(key: str, x: float, y: Any, colour: str, label: str, marker: str) -> None:
        if not isinstance(y, (int, float)) or not math.isfinite(y):
            return
        ax_of[key].plot([x], [y], linestyle="none", marker=marker, markersize=8, markerfacecolor="white",
                        markeredgewidth=1.8, color=colour, label=label if single else None, zorder=5)
        styles[key].setdefault(label, {"linestyle": "none", "marker": marker, "markerfacecolor": "white",
                                       "markeredgewidth": 1.8, "color": colour})

    notes: list[str] = []
    for i, run in enumerate(runs):
        c = f"C{i % 10}"
        x = run.updates
        cols = run.columns
        if run.has("accuracy"):
            line("task", c, x, cols["accuracy"], "accuracy (training batch)")
        if run.has("task_reward"):
            line("task", c, x, cols["task_reward"], "task reward (training batch)", linestyle="--")
        if run.has("reward"):
            line("reward", c, x, cols["reward"], "penalised reward (training batch)")
        if run.has("cost"):
            line("cost", c, x, cols["cost"], "episode cost (training batch)")
        if "lambda" in ax_of and run.has("lambda"):
            line("lambda", c, x, cols["lambda"], "lambda")
        if "satisfaction" in ax_of and run.has("constraint_satisfaction"):
            line("satisfaction", c, x, cols["constraint_satisfaction"], "satisfaction (training batch)")
        d = run.budget
        if d is not None:
            spec = REGISTRY.get(run.constraint or "none")  # a rule registered by another process: an episode budget
            if spec is not None and not spec.episode_budget:
                # d bounds another quantity (worst-case: the running mean cost per token of every prefix)
                notes.append(f"{run.name}: {run.constraint} bound d = {d:g} (not drawn on episode cost)")
            elif single and run.has("budget") and np.unique(cols["budget"][np.isfinite(cols["budget"])]).size > 1:
                line("cost", "red", x, cols["budget"], "budget d", linestyle=":")
            else:
                hline("cost", d, "red" if single else c, f"budget d = {d:g}")
        for which, marker in (("before", "o"), ("after", "D")):
            ev = run.evaluation(which)
            if ev is None:
                continue
            ex = 0.0 if which == "before" else run.last_update
            point("task", ex, ev.get("accuracy"), c, f"test accuracy, {which} training", marker)
            point("cost", ex, ev.get("mean_cost"), c, f"test mean cost, {which} training", marker)
            if "satisfaction" in ax_of:
                point("satisfaction", ex, ev.get("constraint_satisfaction"), c,
                      f"test satisfaction, {which} training", marker)

    for key, ax in ax_of.items():
        ax.set_title(_PANELS[key], fontsize=10)
        ax.set_xlabel("update")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if key == "satisfaction":
            ax.set_ylim(-0.05, 1.05)
        if single:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
        elif styles[key]:  # multi-run: line styles in grey here, run colours in the figure legend
            handles = [Line2D([], [], **{**s, "color": "0.35"}) for s in styles[key].values()]
            ax.legend(handles, list(styles[key]), fontsize=7, loc="best")
    if not single:
        handles = [Line2D([], [], color=f"C{i % 10}", linewidth=2) for i in range(len(runs))]
        fig.legend(handles, [r.name for r in runs], loc="upper center", ncol=min(len(runs), 4), fontsize=9,
                   frameon=False, bbox_to_anchor=(0.5, 1 - (0.4 if title else 0.05) / fig.get_figheight()))
    h = fig.get_figheight()
    top = 1 - ((0.35 if title else 0.0) + (0.35 if not single else 0.0)) / h
    fig.tight_layout(rect=(0, 0.2 / h if notes else 0, 1, top))
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / h, va="top")
    if notes:
        fig.text(0.01, 0.05 / h, "; ".join(notes), fontsize=7, color="0.3")
    return _save_atomic(fig, out)


def _save_atomic(fig: Any, out: Path) -> Path:
    """Write the figure as a PNG that is complete or untouched (it is also written on Ctrl-C)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return out


def _run_title(run: RunCurves) -> str:
    parts = [run.name]
    env = run.config.get("env") if isinstance(run.config.get("env"), dict) else {}
    train = run.config.get("train") if isinstance(run.config.get("train"), dict) else {}
    if env.get("constraint"):
        parts.append(f"constraint {env['constraint']}")
    if run.budget is not None:
        parts.append(f"budget {run.budget:g}")
    if train.get("algo"):
        parts.append(str(train["algo"]).upper())
    if env.get("divergence"):
        parts.append(str(env["divergence"]))
    return "  |  ".join(parts)


def write_run_plots(run_dir: str | Path, out: str | Path | None = None, *, smooth: int = 1,
                    strict: bool = True) -> Path | None:
    """Draw a run folder's training curves as one PNG (default ``<run_dir>/curves.png``).

    Parameters
    ----------
    run_dir : path
        The run folder (needs ``progress.csv`` with at least one update; ``config.json`` and ``results.json``
        add the budget line and the before/after test evaluation when present).
    out : path, optional
        Where to write the PNG (default ``<run_dir>/curves.png``); written atomically (temp file + rename).
    smooth : int
        Trailing moving-average window over updates (1: raw curves; > 1 draws the raw curves faintly behind).
    strict : bool
        If False, any failure (not a run folder yet, unreadable files, a plotting error) becomes a warning and
        None is returned: what the trainer uses, so a figure never crashes or masks the end of a training run.

    Returns
    -------
    Path or None
        The PNG written, or None when matplotlib is not installed (warned once) or, with ``strict=False``,
        when plotting failed.

    Raises
    ------
    RunFolderError
        (``strict=True``) ``run_dir`` is not a run folder or has no logged update.
    """
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    if _import_matplotlib() is None:
        return None
    try:
        run = load_run(run_dir)
        return _draw([run], Path(out) if out is not None else run.path / CURVES_FILE, smooth, _run_title(run))
    except Exception as e:
        if strict:
            raise
        warnings.warn(f"could not plot the training curves of {run_dir}: {e}", stacklevel=2)
        return None


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path, *, smooth: int = 1,
              title: str | None = None) -> Path | None:
    """Overlay several runs' training curves in the same panels (one colour per run, legend = folder name).

    Parameters
    ----------
    run_dirs : sequence of path
        Run folders (see :func:`write_run_plots`); folder names that collide are told apart by their parent.
    out : path
        The PNG to write (atomically).
    smooth : int
        Trailing moving-average window over updates (1: raw curves).
    title : str, optional
        Figure title.

    Returns
    -------
    Path or None
        The PNG written, or None when matplotlib is not installed (warned once).

    Raises
    ------
    RunFolderError
        If any folder is not a run folder or has no logged update.
    """
    if not run_dirs:
        raise ValueError("plot_runs needs at least one run folder")
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    if _import_matplotlib() is None:
        return None
    runs = [load_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.path.resolve().parent.name}/{r.name}"
    return _draw(runs, Path(out), smooth, title)


# ---------------------------------------------------------------------------------------------- command line
def plot_command(args: argparse.Namespace) -> int:
    """Handler of ``llm-cmdp plot`` (reads ``args.runs``, ``args.out``, ``args.smooth``, ``args.title``).

    Returns 0 on success, 2 (message on stderr) for a folder that is not a run folder or has no logged update
    or a bad option, 1 when matplotlib is missing.
    """
    prog = "llm-cmdp plot"
    smooth = getattr(args, "smooth", 1)
    if smooth < 1:
        print(f"{prog}: error: --smooth must be >= 1, got {smooth}", file=sys.stderr)
        return 2
    runs = [Path(r) for r in args.runs]
    try:
        for r in runs:
            load_run(r)  # validate every folder before drawing anything
    except RunFolderError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if _import_matplotlib() is None:
        print(f"{prog}: error: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 1
    title = getattr(args, "title", None)
    if len(runs) == 1:
        run = load_run(runs[0])
        out = Path(args.out) if args.out else run.path / CURVES_FILE
        path = _draw([run], out, smooth, title or _run_title(run))
    else:
        path = plot_runs(runs, args.out or CURVES_FILE, smooth=smooth, title=title)
    print(f"plot: {path}")
    return 0
