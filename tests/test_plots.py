"""Training-curve figures (``llm_cmdp_agents.run.plots``), the ``llm-cmdp plot`` handler and the run logger's CSV /
Weights & Biases outputs, on synthetic run folders (fast; no model is loaded)."""

from __future__ import annotations

import csv
import json
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

from llm_cmdp_env.common import atomic_io

pytest.importorskip("matplotlib")

from llm_cmdp_agents.run.log import COLUMNS, WANDB_ID_FILE, RunLogger  # noqa: E402
from llm_cmdp_agents.run.plots import (  # noqa: E402
    CURVES_FILE,
    RunFolderError,
    load_run,
    plot_runs,
    write_run_plots,
)
from llm_cmdp_env.cli import main  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

OLD_COLUMNS = ("update", "episodes", "reward", "cost", "accuracy", "length", "constraint_satisfaction", "lambda",
               "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac", "grad_norm", "seconds")


def _rows(n: int, budget: float | None, lam: bool) -> list[dict[str, Any]]:
    rows = []
    for u in range(1, n + 1):
        acc = 0.3 + 0.4 * u / n
        cost = 5.0 - 3.0 * u / n
        rows.append({"update": u, "episodes": 16, "reward": acc - 0.1 * cost, "task_reward": acc, "cost": cost,
                     "budget": budget if budget is not None else "", "accuracy": acc, "length": 40.0 + u,
                     "constraint_satisfaction": min(1.0, u / n) if budget is not None else "",
                     "lambda": 0.01 * u if lam else "", "policy_loss": 0.1, "value_loss": "", "entropy": 1.2,
                     "approx_kl": 0.001, "clip_frac": 0.0, "grad_norm": 0.5, "seconds": 1.5})
    return rows


def make_run(path: Path, n: int = 12, columns: tuple[str, ...] = COLUMNS, budget: float | None = 2.0,
             constraint: str = "learned-lagrangian", lam: bool = True, results: bool = True) -> Path:
    """A run folder as ``llm-cmdp train`` leaves it (config.json, progress.csv, results.json)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(
        {"env": {"constraint": constraint, "budget": budget, "divergence": "teacher_nll"}, "policy": {},
         "train": {"algo": "grpo"}}))
    with (path / "progress.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(_rows(n, budget, lam))
    if results:
        ev = {"accuracy": 0.4, "constraint_satisfaction": 0.3, "mean_cost": 4.5, "mean_length": 41.0, "n": 20}
        (path / "results.json").write_text(json.dumps(
            {"before": ev, "after": {**ev, "accuracy": 0.55, "mean_cost": 2.5}, "updates": n}))
    return path


def assert_png(path: Path | None) -> None:
    """A complete PNG that matplotlib reads back as a non-trivial image."""
    import matplotlib.image as mpimg

    assert path is not None and path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600
    assert float(img[..., :3].std()) > 0.01  # not a blank canvas
    assert not list(path.parent.glob(f".{path.name}*.tmp"))  # no temporary file left behind


def test_write_run_plots_new_format(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    out = write_run_plots(run)
    assert out == run / CURVES_FILE
    assert_png(out)
    curves = load_run(run)
    assert curves.budget == 2.0 and curves.has("task_reward") and curves.has("lambda")
    assert not curves.has("value_loss")  # an all-empty column is dropped


def test_write_run_plots_old_format_and_truncated_tail(tmp_path: Path) -> None:
    """An older progress.csv (no task_reward/budget), no lambda, no results.json, a line cut by a kill."""
    run = make_run(tmp_path / "old", columns=OLD_COLUMNS, constraint="budget", lam=False, results=False)
    with (run / "progress.csv").open("a") as f:
        f.write("13,16,0.1")  # truncated last line
    curves = load_run(run)
    assert "task_reward" not in curves.columns and "budget" not in curves.columns
    assert not curves.has("lambda")
    assert curves.budget == 2.0  # from config.json
    assert len(curves.updates) == 13
    assert_png(write_run_plots(run, smooth=3))


def test_budget_from_column_without_config(tmp_path: Path) -> None:
    """A Trainer used from Python writes progress.csv only: the budget comes from its column."""
    run = make_run(tmp_path / "py", budget=1.5, results=False)
    (run / "config.json").unlink()
    assert load_run(run).budget == 1.5
    assert_png(write_run_plots(run, tmp_path / "elsewhere" / "c.png"))


def test_plot_runs_overlays_two_runs(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a" / "seed_0")
    b = make_run(tmp_path / "b" / "seed_0", columns=OLD_COLUMNS, constraint="budget", budget=3.0, lam=False)
    out = plot_runs([a, b], tmp_path / "overlay.png", title="two runs")
    assert_png(out)
    # the same figure drawn for one run differs: the second run's curves are in it
    single = write_run_plots(a, tmp_path / "single.png")
    assert single is not None and single.read_bytes() != out.read_bytes()


def test_write_run_plots_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure mid-write keeps the previous figure intact and leaves no temporary file."""
    from matplotlib.figure import Figure

    run = make_run(tmp_path / "run")
    first = write_run_plots(run)
    assert first is not None
    before = first.read_bytes()

    def broken_savefig(self: Any, fname: Any, **kwargs: Any) -> None:
        Path(fname).write_bytes(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(KeyboardInterrupt):
        write_run_plots(run)
    assert first.read_bytes() == before
    assert not list(run.glob(".*.tmp"))


def test_write_run_plots_not_strict_warns(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError):
        write_run_plots(tmp_path / "empty")
    with pytest.warns(UserWarning, match="could not plot"):
        assert write_run_plots(tmp_path / "empty", strict=False) is None


def test_missing_matplotlib_warns_and_returns_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_cmdp_agents.run import plots

    run = make_run(tmp_path / "run")
    monkeypatch.setattr(plots, "_warned_no_matplotlib", False)
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.lines"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.warns(UserWarning, match="pip install matplotlib"):
        assert write_run_plots(run) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert write_run_plots(run) is None
    assert not (run / CURVES_FILE).exists()


def test_plot_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b", budget=None, constraint="none", lam=False)
    assert main(["plot", str(a)]) == 0
    assert_png(a / CURVES_FILE)
    out = tmp_path / "both.png"
    assert main(["plot", str(a), str(b), "--out", str(out), "--smooth", "2"]) == 0
    assert_png(out)
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["missing", "not_a_run", "empty_csv", "header_only"])
def test_plot_cli_rejects_non_run_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    good = make_run(tmp_path / "good")
    bad = tmp_path / kind
    if kind != "missing":
        bad.mkdir()
    if kind == "empty_csv":
        (bad / "progress.csv").write_text("")
    elif kind == "header_only":
        (bad / "progress.csv").write_text(",".join(COLUMNS) + "\n")
    assert main(["plot", str(good), str(bad), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "llm-cmdp plot: error:" in err and kind in err
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------------- RunLogger
class FakeWandbRun:
    def __init__(self, kwargs: dict[str, Any], step: int) -> None:
        self.kwargs = kwargs
        self.step = step
        self.logged: list[tuple[dict[str, float], int]] = []
        self.finished = 0

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((metrics, step))
        self.step = step + 1

    def finish(self) -> None:
        self.finished += 1


def fake_wandb() -> types.ModuleType:
    """A stand-in ``wandb`` module: ``init`` records its arguments; a resumed id resumes at its next step."""
    mod = types.ModuleType("wandb")
    mod.runs = []  # type: ignore[attr-defined]

    def init(**kwargs: Any) -> FakeWandbRun:
        prev = [r for r in mod.runs if r.kwargs["id"] == kwargs["id"]]  # type: ignore[attr-defined]
        run = FakeWandbRun(kwargs, prev[-1].step if prev else 0)
        mod.runs.append(run)  # type: ignore[attr-defined]
        return run

    mod.init = init  # type: ignore[attr-defined]
    return mod


def test_run_logger_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = fake_wandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    config = {"env": {"constraint": "budget", "budget": 2.0}, "policy": {}, "train": {"algo": "ppo"}}
    rows = _rows(3, 2.0, lam=False)

    logger = RunLogger(tmp_path, tensorboard=False, wandb=True, config=config)
    for row in rows[:2]:
        logger.log(row)
    logger.close()
    logger.close()  # idempotent
    (run1,) = wandb.runs
    assert run1.kwargs["config"] == config and run1.kwargs["resume"] == "allow"
    assert run1.kwargs["dir"] == str(tmp_path) and run1.kwargs["project"] == "llm-cmdp"
    run_id = run1.kwargs["id"]
    assert (tmp_path / WANDB_ID_FILE).read_text().strip() == run_id
    assert [s for _, s in run1.logged] == [1, 2]
    metrics = run1.logged[0][0]
    assert metrics["train/reward"] == rows[0]["reward"] and metrics["train/budget"] == 2.0
    assert "train/update" not in metrics and "train/lambda" not in metrics  # step, and empty values, not logged
    assert run1.finished == 1

    # resume on the same folder: same W&B run id, history W&B already has is not re-sent, the CSV is rewritten
    logger = RunLogger(tmp_path, rows[:2], tensorboard=False, wandb={"project": "mine", "tags": ["x"]},
                       config=config)
    logger.log(rows[2])
    logger.close()
    run2 = wandb.runs[1]
    assert run2.kwargs["id"] == run_id and run2.kwargs["project"] == "mine" and run2.kwargs["tags"] == ["x"]
    assert [s for _, s in run2.logged] == [3]
    assert run2.finished == 1
    with (tmp_path / "progress.csv").open() as f:
        logged = list(csv.DictReader(f))
    assert [r["update"] for r in logged] == ["1", "2", "3"]
    assert list(logged[0]) == list(COLUMNS)


def test_run_logger_wandb_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ImportError, match="pip install wandb"):
        RunLogger(tmp_path / "run", tensorboard=False, wandb=True)
    assert not (tmp_path / "run").exists()  # nothing written before the failure
    RunLogger(tmp_path / "run", tensorboard=False).close()  # off by default: no wandb needed


def test_run_logger_csv_rewrite_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resume rewrite goes through a temporary file: a failure leaves the old CSV whole."""
    import os


    rows = _rows(4, None, lam=False)
    logger = RunLogger(tmp_path, rows, tensorboard=False)
    logger.close()
    before = (tmp_path / "progress.csv").read_text()

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("killed")

    monkeypatch.setattr(atomic_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="killed"):
        RunLogger(tmp_path, rows[:2], tensorboard=False)
    monkeypatch.setattr(atomic_io.os, "replace", os.replace)
    assert (tmp_path / "progress.csv").read_text() == before
    assert not list(tmp_path.glob(".*.tmp"))
