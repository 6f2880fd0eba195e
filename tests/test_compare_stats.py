"""The comparison's statistics: scoring per-problem outcomes at a budget and paired bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from llm_cmdp_agents.experiments.records import PerProblem, ReferenceRecord
from llm_cmdp_agents.experiments.stats import bootstrap_ci, metric_arrays, paired_difference, summary_row


def _run(seed, correct, cost):
    return ReferenceRecord("r", "test", len(correct), 0.0, 0.0, 0.0, PerProblem(correct, cost), "f", seed=seed)


def test_metric_arrays_score_every_run_at_the_budget():
    runs = [_run(1, [1, 0, 1], [5.0, 1.0, 12.0]), _run(0, [0, 0, 1], [3.0, 10.0, 10.0])]
    a = metric_arrays(runs, 10.0)
    np.testing.assert_array_equal(a["accuracy"], [[0, 0, 1], [1, 0, 1]])  # sorted by seed
    np.testing.assert_array_equal(a["satisfaction"], [[1, 1, 1], [1, 1, 0]])  # cost <= d, boundary included
    np.testing.assert_array_equal(a["safe_accuracy"], [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="different lengths"):
        metric_arrays([_run(0, [1, 0], [1.0, 2.0]), _run(1, [1], [1.0])], 1.0)


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    small = (rng.random((3, 50)) < 0.6).astype(float)
    big = (rng.random((10, 2000)) < 0.6).astype(float)
    m, lo, hi = bootstrap_ci(small)
    assert lo <= m <= hi
    m2, lo2, hi2 = bootstrap_ci(big)
    assert lo2 <= 0.6 <= hi2 and (hi2 - lo2) < (hi - lo) / 3
    const = np.ones((4, 30))
    assert bootstrap_ci(const) == (1.0, 1.0, 1.0)


def test_paired_difference_sees_a_consistent_gap_that_unpaired_noise_would_hide():
    rng = np.random.default_rng(1)
    # problems differ a lot in difficulty; method a solves every problem b solves, plus 5% more
    hard = rng.random((5, 400)) < 0.5
    b = hard.astype(float)
    a = np.maximum(b, (rng.random((5, 400)) < 0.05).astype(float))
    d = paired_difference(a, b)
    assert 0 < d["low"] <= d["diff"] <= d["high"] and d["p_sign"] < 0.01
    same = paired_difference(b, b)
    assert same["diff"] == same["low"] == same["high"] == 0.0 and same["p_sign"] == 1.0
    swap = paired_difference(b, a)
    assert swap["high"] < 0 and np.isclose(swap["diff"], -d["diff"])
    with pytest.raises(ValueError, match="same seeds and problems"):
        paired_difference(a, b[:, :10])


def test_summary_row_reports_per_seed_values_with_sample_std():
    a = {"accuracy": np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])}
    row = summary_row(a)
    assert row["seeds"] == 3 and row["accuracy"]["per_seed"] == [0.5, 1.0, 0.0]
    assert np.isclose(row["accuracy"]["seed_std"], np.std([0.5, 1.0, 0.0], ddof=1))


def _write(job, correct, cost, **extra):
    import json
    from pathlib import Path

    res = {k: getattr(job, k) for k in ("phase", "method", "grid_index", "grid", "budget", "seed", "split", "n")}
    res.update({"per_problem": {"correct": correct, "cost": cost}, "fingerprint": job.fingerprint, "accuracy": 0.0,
                "mean_cost": 0.0, "mean_length": 0.0, "train_seconds": 0.0, **extra})
    Path(job.run_dir).mkdir(parents=True, exist_ok=True)
    (Path(job.run_dir) / "eval.json").write_text(json.dumps(res))


def test_the_setting_with_the_best_validation_safe_accuracy_is_chosen_per_budget(tmp_path):
    from llm_cmdp_agents.experiments.plan import load_config, plan_jobs, select_settings

    cfg = load_config({"seeds": [0, 1], "budgets": [10, 20], "eval": {"n": 4}, "validation": {"n": 4, "seeds": [9]},
                       "methods": [{"name": "b", "constraint": "budget", "grid": [{}, {"budget_scale": 0.5}]},
                                   {"name": "t", "constraint": "none", "grid": [{}, {"train": {"lr": 1e-4}}]}]})
    jobs = plan_jobs(cfg, "validation", tmp_path)
    # budget method: 2 settings x 2 budgets; budget-free method: 2 settings, trained once each
    assert len(jobs) == 6 and sorted({j.budget for j in jobs if j.method == "t"}) == [None]
    with pytest.raises(RuntimeError, match="unfinished"):
        select_settings(cfg, tmp_path)
    outcome = {  # (method, grid, budget) -> per-problem correct, cost
        ("b", 0, 10.0): ([1, 1, 1, 0], [5, 15, 15, 1]),   # d=10: 1 solved within budget
        ("b", 1, 10.0): ([1, 1, 0, 0], [5, 5, 1, 1]),     # d=10: 2
        ("b", 0, 20.0): ([1, 1, 1, 0], [5, 15, 15, 1]),   # d=20: 3
        ("b", 1, 20.0): ([1, 1, 0, 0], [5, 5, 1, 1]),     # d=20: 2
        ("t", 0, None): ([1, 1, 1, 1], [30, 30, 5, 5]),   # d=10: 2, d=20: 2 (tie with setting 1, at a higher
        ("t", 1, None): ([1, 1, 0, 0], [1, 1, 1, 1]),     # mean cost: setting 1 wins the tie)
    }
    for j in jobs:
        _write(j, *outcome[(j.method, j.grid_index, j.budget)])
    chosen = select_settings(cfg, tmp_path)
    assert {d: c["grid_index"] for d, c in chosen["b"].items()} == {"10": 1, "20": 0}
    assert chosen["b"]["10"]["scores"] == [0.25, 0.5]
    assert {d: c["grid_index"] for d, c in chosen["t"].items()} == {"10": 1, "20": 1}
    assert chosen["t"]["10"]["rule"] == "tie on safe accuracy: lower mean cost"
    assert chosen["b"]["10"]["rule"] == "highest safe accuracy" and chosen["b"]["10"]["at_edge"] is None
    test = plan_jobs(cfg, "test", tmp_path)
    runs = {(j.method, j.grid_index, j.budget) for j in test}
    assert runs == {("b", 1, 10.0), ("b", 0, 20.0), ("t", 1, None)}
    assert len(test) == 3 * 2  # x 2 seeds; "t" chose the same setting at both budgets: trained once per seed
    assert [j.settings["env"]["budget"] for j in test if j.method == "b" and j.budget == 10.0] == [5.0, 5.0]


def test_building_a_run_leaves_the_job_settings_and_so_its_fingerprint_alone(tmp_path):
    """A learned multiplier's ``update_every`` is filled in by RunConfig: on a copy, or a finished run's fingerprint
    (taken after training) would never match its plan again and the sweep would stop at it."""
    from llm_cmdp_agents.experiments.plan import load_config, plan_jobs
    from llm_cmdp_agents.run.config import EnvConfig, PolicyConfig, RunConfig, TrainConfig

    cfg = load_config({"seeds": [0], "budgets": [10], "eval": {"n": 4}, "validation": {"n": 4, "seeds": [9]},
                       "train": {"algo": "grpo", "prompts_per_update": 3, "group_size": 2},
                       "methods": [{"name": "l", "constraint": "learned-lagrangian", "grid": [{}]}]})
    job = plan_jobs(cfg, "validation", tmp_path)[0]
    before = job.fingerprint
    st = job.settings
    run = RunConfig(EnvConfig(**st["env"]), PolicyConfig(**st["policy"]), TrainConfig.from_dict(st["train"]))
    assert run.env.constraint_kwargs["update_every"] == 6
    assert "update_every" not in st["env"]["constraint_kwargs"] and job.fingerprint == before


def test_method_ids_name_what_a_method_trains():
    from llm_cmdp_agents.experiments.plan import load_config, method_id

    cfg = load_config("benchmarks/compare_shortcut.json")
    ids = {m["name"]: method_id(cfg, m) for m in cfg["methods"]}
    assert ids == {"budget reward": "budget", "fixed lambda": "lagrangian", "learned lambda": "learned-lagrangian",
                   "Saute": "saute", "worst-case": "worst-case", "task only": "none", "distill only": "distill",
                   "GKD": "gkd", "MiniLLM": "minillm", "GRPO + GKD": "grpo+gkd"}


def test_a_budget_free_method_is_scored_at_each_budget_with_the_setting_chosen_for_it(tmp_path):
    """A budget-free method that chose setting 0 at d=10 and setting 1 at d=20 is trained with both; the table at
    each budget holds only the runs of that budget's choice (the report once paired 2 x 2 runs against 2)."""
    from llm_cmdp_agents.experiments.plan import load_config, plan_jobs, select_settings
    from llm_cmdp_agents.experiments.report import _runs, summarise

    cfg = load_config({"seeds": [0, 1], "budgets": [10, 20], "eval": {"n": 4}, "validation": {"n": 4, "seeds": [9]},
                       "methods": [{"name": "b", "constraint": "budget", "grid": [{}, {"budget_scale": 0.5}]},
                                   {"name": "t", "constraint": "none", "grid": [{}, {"train": {"lr": 1e-4}}]}]})
    val = {("b", g, d): ([1, 1, 0, 0], [5, 5, 5, 5]) for g in (0, 1) for d in (10.0, 20.0)}
    val.update({
                ("t", 0, None): ([1, 1, 0, 0], [1, 1, 1, 1]),     # d=10: 2, d=20: 2
                ("t", 1, None): ([1, 1, 1, 1], [1, 15, 15, 15])})  # d=10: 1, d=20: 4
    for j in plan_jobs(cfg, "validation", tmp_path):
        _write(j, *val[(j.method, j.grid_index, j.budget)])
    chosen = select_settings(cfg, tmp_path)
    assert {d: c["grid_index"] for d, c in chosen["t"].items()} == {"10": 0, "20": 1}
    test = plan_jobs(cfg, "test", tmp_path)
    assert sorted({j.grid_index for j in test if j.method == "t"}) == [0, 1]
    for j in test:
        _write(j, *(([1, 1, 0, 0], [1, 1, 1, 1]) if j.grid_index == 0 else ([1, 1, 1, 1], [1, 15, 15, 15])))
    summary = summarise(cfg, _runs(cfg, tmp_path, "test"), [], reps=50, selection=chosen)
    for d, want in (("10", 0.5), ("20", 1.0)):
        row = summary[d]["methods"]["t"]
        assert row["seeds"] == 2 and row["accuracy"]["mean"] == want
        assert row["grid"] == cfg["methods"][1]["grid"][0 if d == "10" else 1]


def test_status_reports_finished_seeds_pooled_scores_and_cpu_time_without_writing(tmp_path, capsys):
    """``--phase status``: what a multi-session sweep has finished so far, read only (nothing trained or written)."""
    from llm_cmdp_agents.experiments.compare import run_compare
    from llm_cmdp_agents.experiments.plan import load_config, plan_jobs
    from llm_cmdp_agents.experiments.report import status, status_text

    cfg = load_config({"seeds": [0], "budgets": [10, 20], "eval": {"n": 4}, "validation": {"n": 4, "seeds": [8, 9]},
                       "methods": [{"name": "b", "constraint": "budget", "grid": [{}]},
                                   {"name": "t", "constraint": "none", "grid": [{}]}]})
    jobs = plan_jobs(cfg, "validation", tmp_path)  # b: 2 budgets x 2 seeds; t: trained once, 2 seeds
    done = [j for j in jobs if (j.method, j.budget) in (("b", 10.0), ("t", None))][:3]
    for j in done:
        _write(j, [1, 1, 0, 0], [5, 15, 15, 1], train_seconds=100.0, eval_seconds=20.0)
    st = status(cfg, tmp_path)
    assert (st["finished"], st["planned"], st["cpu_seconds"]) == (3, 6, 360.0)
    assert st["cpu_seconds_left_estimate"] == 360.0  # 3 left at 120 s each
    rows = {(r["method"], r["budget"]): r for r in st["rows"]}
    assert rows[("b", 10.0)]["seeds_done"] == 2 and rows[("b", 20.0)]["seeds_done"] == 0
    assert "accuracy" not in rows[("b", 20.0)]
    t10, t20 = rows[("t", 10.0)], rows[("t", 20.0)]  # one model scored at both budgets
    assert t10["seeds_done"] == t20["seeds_done"] == 1 and t10["accuracy"] == t20["accuracy"] == 0.5
    assert (t10["over_budget"], t20["over_budget"]) == (0.5, 0.0) and t10["safe_accuracy"] == 0.25
    assert t10["mean_cost"] == 9.0
    text = status_text(st)
    assert "3/6 runs finished" in text and "0.10 CPU-hours spent" in text
    before = sorted(p for p in tmp_path.rglob("*"))
    res = run_compare(cfg, out_dir=tmp_path, phase="status")
    assert res["status"][0]["finished"] == 3 and sorted(p for p in tmp_path.rglob("*")) == before


def _agrees(new, old, path=""):
    """Every number of ``old`` (a committed summary) in ``new``; extra keys in ``new`` are fields added since."""
    import math

    if isinstance(old, dict):
        for k, v in old.items():
            assert k in new, f"{path}/{k} is missing"
            _agrees(new[k], v, f"{path}/{k}")
    elif isinstance(old, list):
        assert len(new) == len(old), path
        for i, (a, b) in enumerate(zip(new, old)):
            _agrees(a, b, f"{path}[{i}]")
    elif isinstance(old, float):  # round-1 records keep per-problem costs to 6 decimals
        assert math.isclose(new, old, rel_tol=1e-6, abs_tol=1e-5), (path, new, old)
    else:
        assert new == old, (path, new, old)


def test_the_committed_comparison_results_recompute_from_the_committed_records(tmp_path):
    """Every results file in docs/data/ (what docs/results.md quotes) is what the report computes from the records
    committed beside it: no figure in the docs rests on a run folder that is gone. Round-1 files predate the
    report's markdown, the t-intervals and the records' ``grid_index`` (the place of the record's grid point in its
    method's grid); their figures must agree to the records' rounding, later ones exactly. A results file with a
    binding check (which budgets were tested) must also be what the check computes from the committed per-run
    archive and the untrained student's validation record in it."""
    import json
    from pathlib import Path

    from llm_cmdp_agents.experiments.report import read_records, report_from_records

    data = Path(__file__).resolve().parents[1] / "docs" / "data"
    pairs = [(p, data / p.name.replace("_results.json", "_records.jsonl"))
             for p in sorted(data.glob("compare_*_results.json"))]
    assert pairs, "no committed comparison results"
    for results, records in pairs:
        res = json.loads(results.read_text())
        recs = read_records(records, res["config"])
        budgets = [float(d) for d in res["summary"]]  # the tested budgets (a binding check may drop some)
        summary, md = report_from_records(res["config"], recs, res["selection"], budgets)
        if "markdown" in res:
            assert json.loads(json.dumps(summary)) == res["summary"] and md == res["markdown"], results.name
        else:
            _agrees(json.loads(json.dumps(summary)), res["summary"])
        if "binding" in res:
            from llm_cmdp_agents.experiments.plan import check_binding

            archive = data.parent.parent / res["config"]["archive"]
            student = ReferenceRecord.from_dict(json.loads((archive / "references" / "student_validation.json")
                                                           .read_text()))
            check = check_binding({**res["config"], "archive": str(archive)}, tmp_path / results.stem, student)
            assert json.loads(json.dumps(check)) == res["binding"], results.name
            assert res["binding"]["test_budgets"] == budgets, results.name
