"""The comparison protocol's honesty checks: per-seed t-intervals, the equivalence verdict, both
satisfaction views, widened grids with edge flags, the binding check that picks the test budgets, and the
report's plots from the training traces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm_cmdp_agents.experiments.stats import (
    equivalence_verdict,
    expected_cost_verdict,
    paired_t,
    t_quantile,
)
from tests.test_compare_stats import _write


def _reference_record(correct, cost):
    from llm_cmdp_agents.experiments.records import PerProblem, ReferenceRecord

    return ReferenceRecord("student", "validation", len(correct), float(np.mean(correct)), float(np.mean(cost)), 1.0,
                           PerProblem(correct, cost), "f")


@pytest.mark.parametrize("df, q, want", [(1, 0.975, 12.7062047), (2, 0.975, 4.30265273), (4, 0.975, 2.77644511),
                                         (4, 0.95, 2.13184679), (30, 0.975, 2.04227246), (9, 0.995, 3.24983554)])
def test_t_quantile_matches_the_tables(df, q, want):
    assert t_quantile(q, df) == pytest.approx(want, rel=1e-7)
    assert t_quantile(1 - q, df) == pytest.approx(-want, rel=1e-7)
    with pytest.raises(ValueError):
        t_quantile(1.0, df)


def test_t_quantile_agrees_with_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 8, 20, 100):
        for q in (0.6, 0.9, 0.95, 0.975, 0.999):
            assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-8)


def test_paired_t_treats_each_seed_as_one_observation():
    b = np.zeros((3, 4))
    a = np.array([[0.1] * 4, [0.2] * 4, [0.3] * 4])
    t = paired_t(a, b)
    half = 4.30265273 * 0.1 / np.sqrt(3)
    assert t["diff"] == pytest.approx(0.2) and t["df"] == 2
    assert (t["low"], t["high"]) == pytest.approx((0.2 - half, 0.2 + half))
    one = paired_t(a[:1], b[:1])
    assert one["low"] is None and one["high"] is None  # one seed: no interval, not a zero-width one
    with pytest.raises(ValueError, match="same seeds"):
        paired_t(a, b[:, :2])


def test_equivalence_needs_the_90_percent_interval_inside_the_margin():
    rng = np.random.default_rng(0)
    b = (rng.random((5, 2000)) < 0.5).astype(float)
    same = b.copy()
    same[0, :10] = 1 - same[0, :10]  # 10 flips in 10,000: a difference of ~0.001
    assert equivalence_verdict(same, b, 0.02)["verdict"] == "comparable"
    better = np.maximum(b, (rng.random(b.shape) < 0.2).astype(float))  # +~0.1
    assert equivalence_verdict(better, b, 0.02)["verdict"] == "different"
    small_b = (rng.random((2, 30)) < 0.5).astype(float)
    small_a = (rng.random((2, 30)) < 0.5).astype(float)
    v = equivalence_verdict(small_a, small_b, 0.02)
    assert v["verdict"] == "inconclusive" and v["low90"] < -0.02 < 0.02 < v["high90"]


def test_comparable_needs_the_per_seed_t_interval_inside_the_margin_too():
    """With 5 seeds the percentile bootstrap over seeds x problems is narrower than the t(4) interval: a margin
    between the two is met by the bootstrap alone, and the verdict must then not be "comparable"."""
    from llm_cmdp_agents.experiments.stats import paired_difference

    b = np.zeros((5, 100))
    a = b + np.array([0.015, -0.015, 0.015, -0.015, 0.012])[:, None]  # seed-to-seed spread, nothing within a seed
    boot, t = paired_difference(a, b, level=0.90), paired_t(a, b, level=0.90)
    wide, narrow = max(abs(t["low"]), abs(t["high"])), max(abs(boot["low"]), abs(boot["high"]))
    assert narrow < wide
    v = equivalence_verdict(a, b, (narrow + wide) / 2)
    assert v["verdict"] == "inconclusive" and v["t_low90"] == pytest.approx(t["low"])
    assert equivalence_verdict(a, b, wide * 1.01)["verdict"] == "comparable"
    one = equivalence_verdict(a[:1] * 0, b[:1], 0.02)  # one seed: no t-interval, the bootstrap decides
    assert one["verdict"] == "comparable" and one["t_low90"] is None


def test_the_claim_is_read_on_both_intervals_at_comparable_accuracy():
    from llm_cmdp_agents.experiments.stats import claim_verdict

    def contrast(verdict, boot, t):
        return {"accuracy": {"equivalence": {"verdict": verdict}},
                "satisfaction": {"low": boot[0], "high": boot[1], "t": {"low": t[0], "high": t[1]}}}

    assert claim_verdict(contrast("comparable", (0.01, 0.05), (0.002, 0.06))) == "beats"
    assert claim_verdict(contrast("comparable", (0.01, 0.05), (-0.01, 0.07))) == "no difference shown"
    assert claim_verdict(contrast("comparable", (-0.05, -0.01), (-0.06, -0.001))) == "loses"
    assert claim_verdict(contrast("different", (0.01, 0.05), (0.002, 0.06))) == "not at comparable accuracy"
    assert claim_verdict(contrast("comparable", (0.01, 0.05), (None, None))) == "beats"  # one seed: bootstrap


def test_expected_cost_verdict_reads_the_whole_interval():
    assert expected_cost_verdict({"mean": 90, "low": 80, "high": 99}, 100) == "satisfied"
    assert expected_cost_verdict({"mean": 110, "low": 101, "high": 120}, 100) == "violated"
    assert expected_cost_verdict({"mean": 99, "low": 90, "high": 108}, 100) == "undetermined"


def _cfg(**extra):
    from llm_cmdp_agents.experiments.plan import load_config

    cfg = {"seeds": [0, 1], "budgets": [10, 20], "eval": {"n": 4}, "validation": {"n": 4, "seeds": [9]},
           "methods": [{"name": "c", "constraint": "budget", "axis": "constraint_kwargs.overrun_penalty",
                        "grid": [{"constraint_kwargs": {"overrun_penalty": 0.0}},
                                 {"constraint_kwargs": {"overrun_penalty": 0.1}}]},
                       {"name": "u", "constraint": "none", "axis": "train.lr",
                        "grid": [{"train": {"lr": 1e-5}}, {"train": {"lr": 1e-4}}]}]}
    cfg.update(extra)
    return load_config(cfg)


def test_a_widened_grid_is_searched_after_the_base_grid_and_edges_are_flagged(tmp_path):
    from llm_cmdp_agents.experiments.plan import at_edge, grid_points, load_config, plan_jobs, select_settings

    cfg = _cfg()
    cfg["methods"][0]["widen"] = [{"constraint_kwargs": {"overrun_penalty": 0.05}}]
    cfg = load_config(cfg)  # the base grids keep the same size; widen points come on top
    m = cfg["methods"][0]
    assert [p["constraint_kwargs"]["overrun_penalty"] for p in grid_points(m)] == [0.0, 0.1, 0.05]
    assert [at_edge(m, g) for g in range(3)] == [True, True, False]
    assert [at_edge({**m, "axis_bounds": [0.0, None]}, g) for g in range(3)] == [False, True, False]  # 0: a limit
    jobs = plan_jobs(cfg, "validation", tmp_path)
    assert sorted({j.grid_index for j in jobs if j.method == "c"}) == [0, 1, 2]
    for j in jobs:  # the widened point (index 2) solves most within budget
        _write(j, [1, 1, 1, 0] if j.grid_index == 2 and j.method == "c" else [1, 0, 0, 0], [1, 1, 1, 1])
    chosen = select_settings(cfg, tmp_path)
    assert chosen["c"]["10"]["grid_index"] == 2 and chosen["c"]["10"]["at_edge"] is False
    assert chosen["u"]["10"]["at_edge"] is True  # all tied: lower cost tied too, the first point (an edge)
    assert chosen["u"]["10"]["rule"] == "tie on safe accuracy and mean cost: first grid point"
    bad = _cfg()
    bad["methods"][1]["axis"] = "train.gamma"
    with pytest.raises(ValueError, match="does not set its axis"):
        load_config(bad)


def test_the_binding_check_keeps_only_budgets_that_bind_without_collapse(tmp_path):
    from llm_cmdp_agents.experiments.plan import check_binding, exploratory, plan_jobs, test_budgets

    cfg = _cfg(binding={"unconstrained": "u", "constrained": ["c"]})
    assert cfg["binding"]["min_violation"] == 0.1
    with pytest.raises(RuntimeError, match="binding.json"):
        test_budgets(cfg, tmp_path)
    for j in plan_jobs(cfg, "validation", tmp_path):
        if j.method == "u":  # the most accurate setting (1) costs 15 on half the problems: violates d=10 only
            _write(j, *(([1, 1, 1, 1], [15, 15, 5, 5]) if j.grid_index == 1 else ([1, 0, 0, 0], [1, 1, 1, 1])))
        else:  # the constrained method: 3/4 solved at cost 5
            _write(j, [1, 1, 1, 0], [5, 5, 5, 5])
    student = _reference_record([1, 1, 0, 0], [1, 1, 1, 1])
    res = check_binding(cfg, tmp_path, student)
    row = res["budgets"]["10"]
    assert row["unconstrained"] == {"grid_index": 1, "accuracy": 1.0, "violation": 0.5, "mean_cost": 10.0}
    assert row["binds_per_episode"] and not row["binds_in_expectation"] and row["beats_student"] and row["passes"]
    assert not res["budgets"]["20"]["passes"] and res["test_budgets"] == [10.0]
    assert json.loads((tmp_path / "binding.json").read_text())["test_budgets"] == [10.0]
    assert {j.budget for j in plan_jobs(cfg, "test", tmp_path) if j.method == "c"} == {10.0}
    # a student as accurate as the constrained method: every budget collapses, and the check says so
    with pytest.raises(RuntimeError, match="binds without collapse"):
        check_binding(cfg, tmp_path, _reference_record([1, 1, 1, 0], [1, 1, 1, 1]))
    # a budget the config lists as exploratory is tested although it fails the check, and the report says so
    cfg["binding"]["exploratory"] = [20]
    assert check_binding(cfg, tmp_path, student)["test_budgets"] == [10.0, 20.0]
    assert test_budgets(cfg, tmp_path) == [10.0, 20.0] and exploratory(cfg, 20) and not exploratory(cfg, 10)
    with pytest.raises(ValueError, match="exploratory"):
        _cfg(binding={"unconstrained": "u", "constrained": ["c"], "exploratory": [30]})


def test_the_report_gives_both_satisfaction_views_t_intervals_the_verdict_and_the_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from llm_cmdp_agents.experiments.plan import plan_jobs, select_settings
    from llm_cmdp_agents.experiments.plots import frontier, plot_forest, plot_frontier, plot_traces
    from llm_cmdp_agents.experiments.report import _runs, markdown_report, records, summarise

    cfg = _cfg(equivalence_margin=0.02, contrasts=[["c", "u"]])
    for j in plan_jobs(cfg, "validation", tmp_path):
        _write(j, [1, 1, 0, 0], [5, 5, 5, 5])
    chosen = select_settings(cfg, tmp_path)
    trace = {"update": [1, 2], "cost": [30.0, 8.0], "lambda": [0.1, 0.05]}
    for j in plan_jobs(cfg, "test", tmp_path):
        _write(j, *(([1, 1, 0, 0], [2, 11, 2, 2]) if j.method == "c" else ([1, 1, 1, 0], [30, 30, 30, 25])),
               train_trace=trace)
    summary = summarise(cfg, _runs(cfg, tmp_path, "test"), [], reps=200, selection=chosen)
    row = summary["10"]["methods"]["c"]
    assert row["cost"]["mean"] == pytest.approx(4.25) and row["expected"] == {"verdict": "satisfied",
                                                                               "seed_share": 1.0}
    assert row["satisfaction"]["mean"] == pytest.approx(0.75)  # per episode: one of four over d
    assert summary["10"]["methods"]["u"]["expected"]["verdict"] == "violated"
    c = summary["10"]["contrasts"][0]
    assert c["accuracy"]["t"]["df"] == 1 and c["accuracy"]["equivalence"]["verdict"] in (
        "comparable", "different", "inconclusive")
    md = markdown_report(cfg, summary)
    assert "mean cost <= d?" in md and "satisfied (100%)" in md and "; t [" in md and "**" in md
    assert "a vs b (the claim)" in md and f" {c['claim']} |" in md  # the pre-stated claim, per contrast
    assert "(edge)" in md  # every choice sat at an edge of its two-point grid
    assert "exploratory" not in md and summary["20"]["exploratory"] is False
    explore = {**cfg, "binding": {"unconstrained": "u", "constrained": ["c"], "exploratory": [20]}}
    labelled = summarise(explore, _runs(cfg, tmp_path, "test"), [], reps=200, selection=chosen)
    assert labelled["20"]["exploratory"] and not labelled["10"]["exploratory"]
    assert "d = 20 (summed episode cost <= 20) — exploratory" in markdown_report(explore, labelled)
    for fn in (plot_frontier, plot_forest):  # the plots label the exploratory budget too
        assert fn(explore, labelled, tmp_path / f"explore_{fn.__name__}.png").stat().st_size > 0
    from llm_cmdp_agents.experiments.report import compute_summary

    everything = records(cfg, tmp_path, [])
    assert "| validation | 6 |" in compute_summary(everything) and "| test | 6 |" in compute_summary(everything)
    assert "| c | test | not recorded | 4 |" in compute_summary(everything)  # no machine field: not pooled
    import dataclasses

    timed = [dataclasses.replace(r, machine={"cpu": "X", "simd": "avx2", "threads": 1}, train_seconds=9.0)
             for r in everything[:1]] + everything
    assert "| X avx2, 1 thread(s) | 1 | 9 |" in compute_summary(timed)  # times are per machine
    recs = [r for r in everything if r.phase == "test"]
    assert recs[0].train_trace == trace and "mean_cost_within" in recs[0].at_budget["10"]
    for fn, args in ((plot_frontier, (cfg, summary)), (plot_forest, (cfg, summary)),
                     (plot_traces, (cfg, recs, summary))):
        path = fn(*args, tmp_path / f"{fn.__name__}.png")
        assert path.stat().st_size > 5000
    assert frontier([(0.9, 0.5), (0.8, 0.6), (0.7, 0.55), (0.95, 0.4)]) == [(0.8, 0.6), (0.9, 0.5), (0.95, 0.4)]
    assert frontier([(10.0, 0.5), (20.0, 0.6), (25.0, 0.55)], higher_x=False) == [(10.0, 0.5), (20.0, 0.6)]


def test_an_interrupted_run_records_nothing_and_a_short_record_is_refused(tiny_dir, tmp_path, monkeypatch):
    """SIGTERM/Ctrl-C makes the trainer stop after the current update and return: the run must not then be
    evaluated and written as if finished (a sweep would skip it on resume and report a shorter run)."""
    from llm_cmdp_agents.experiments.compare import run_job
    from llm_cmdp_agents.experiments.plan import finished, load_config, plan_jobs
    from llm_cmdp_agents.run.trainer import Trainer

    cfg = load_config({"seeds": [0], "budgets": [40.0], "threads": 1,
                       "env": {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 4, "max_prompt_tokens": 160},
                       "policy": {"model": str(tiny_dir / "student"), "device": "cpu"},
                       "train": {"algo": "grpo", "group_size": 2, "updates": 2, "prompts_per_update": 2,
                                 "checkpoint_every": 0},
                       "eval": {"split": "test", "n": 2}, "methods": [{"name": "b", "constraint": "budget"}]})
    job = plan_jobs(cfg, "test", tmp_path)[0]
    real_step = Trainer.step

    def step_then_signal(self):
        row = real_step(self)
        self.interrupted = True  # what GracefulInterrupt leads to: train() returns after this update
        return row

    monkeypatch.setattr(Trainer, "step", step_then_signal)
    monkeypatch.setattr(Trainer, "train", lambda self, updates=None: [self.step()])
    with pytest.raises(RuntimeError, match="stopped after 1 of 2 updates"):
        run_job(job)
    assert finished(job) is None
    monkeypatch.undo()
    res = run_job(job)
    assert res.updates == 2 and len(res.train_trace["update"]) == 2
    path = tmp_path / "test" / "b" / "g0_d40" / "seed_0" / "eval.json"
    path.write_text(json.dumps({**res.to_dict(), "updates": 1}))
    with pytest.raises(ValueError, match="1 of the 2 planned updates"):
        finished(job)


def test_which_methods_train_once_is_read_off_the_registry(monkeypatch):
    """A method trains once per seed (and is scored at every d) when its rule does not read the budget: what the
    registry says, not a list of names in the agent (a rule registered here follows it)."""
    from llm_cmdp_agents.experiments.plan import budget_free
    from llm_cmdp_env.wrappers import factory
    from llm_cmdp_env.wrappers.lagrangian import FixedLagrangian

    for name, spec in factory.REGISTRY.items():
        assert budget_free({"name": name, "constraint": name}) is (not spec.reads_budget)
    monkeypatch.setitem(factory.REGISTRY, "my-penalty", factory.REGISTRY["lagrangian"])
    assert budget_free({"name": "m", "constraint": "my-penalty"})
    factory.register_constraint("my-budgeted", FixedLagrangian, budget="required", help="test rule")
    try:
        assert not budget_free({"name": "m", "constraint": "my-budgeted"})
        assert budget_free({"name": "m", "constraint": "my-budgeted", "budget": 5.0})  # its own fixed budget
    finally:
        factory.REGISTRY.pop("my-budgeted")
        factory.CONSTRAINTS.pop("my-budgeted", None)


def test_finished_runs_are_read_back_from_the_archive_and_a_bad_archive_copy_is_refused(tiny_dir, tmp_path,
                                                                                      monkeypatch):
    """With ``archive`` (a folder kept in git), a finished run survives the loss of its run folder: it is read
    back, not rerun; a corrupted or mismatched archive copy raises instead of passing as a result or as 'not
    run'. The same holds for the reference evaluations."""
    import dataclasses
    import shutil

    from llm_cmdp_agents.experiments import compare
    from llm_cmdp_agents.experiments.plan import finished, load_config, plan_jobs
    from llm_cmdp_agents.experiments.records import ReferenceJob
    from llm_cmdp_agents.run.trainer import Trainer

    base = {"seeds": [0], "budgets": [40.0], "threads": 1, "archive": str(tmp_path / "archive"),
            "env": {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 4, "max_prompt_tokens": 160},
            "policy": {"model": str(tiny_dir / "student"), "device": "cpu"},
            "train": {"algo": "grpo", "group_size": 2, "updates": 1, "prompts_per_update": 2, "checkpoint_every": 0},
            "eval": {"split": "test", "n": 2}, "methods": [{"name": "b", "constraint": "budget"}]}
    out = tmp_path / "out"
    job = plan_jobs(load_config(base), "test", out)[0]
    assert job.archive == str(tmp_path / "archive" / "test" / "b" / "g0_d40" / "seed_0.json")
    res = compare.run_job(job)
    import torch

    assert res.machine["torch"] == torch.__version__ and res.machine["threads"] == 1 and res.machine["cpu"]
    archived = json.loads((tmp_path / "archive" / "test" / "b" / "g0_d40" / "seed_0.json").read_text())
    assert archived == json.loads((out / "test" / "b" / "g0_d40" / "seed_0" / "eval.json").read_text())
    local = out / "test" / "b" / "g0_d40" / "seed_0" / "eval.json"
    local.write_text(json.dumps({**res.to_dict(), "accuracy": 1.0}))  # ran again elsewhere: which counts is unclear
    with pytest.raises(ValueError, match="differ"):
        finished(job)
    shutil.rmtree(out)  # the run folder is gone (a new machine): the archive answers, nothing is trained again
    monkeypatch.setattr(Trainer, "train", lambda self, updates=None: pytest.fail("a finished run was rerun"))
    assert compare.run_job(job).per_problem == res.per_problem
    assert finished(job).fingerprint == res.fingerprint
    # the config changed since: the archived record is not this job's result
    changed = plan_jobs(load_config({**base, "train": {**base["train"], "lr": 1e-3}}), "test", out)[0]
    with pytest.raises(ValueError, match="seed_0.json was written with other settings"):
        finished(changed)
    # a truncated or foreign archive file: a clear error, never "not run" or a result
    path = tmp_path / "archive" / "test" / "b" / "g0_d40" / "seed_0.json"
    path.write_text(path.read_text()[:100])
    with pytest.raises(ValueError, match="not valid JSON"):
        finished(job)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a run record"):
        finished(job)
    path.write_text(json.dumps({**res.to_dict(), "updates": 0}))
    with pytest.raises(ValueError, match="0 of the 1 planned updates"):
        finished(job)
    # a record run with another default (or other weights) than the code (and models) now give is refused
    assert res.resolved["train"]["clip"] == 0.2 and res.resolved["models"]["student"]
    assert res.code is None or len(res.code["commit"]) == 40
    for where, key, value in (("train", "clip", 0.3), ("models", "student", "0" * 16), ("constraint", "unsafe_reward",
                                                                                       -1.0)):
        old = json.loads(json.dumps(res.to_dict()))
        old["resolved"][where][key] = value
        path.write_text(json.dumps(old))
        with pytest.raises(ValueError, match=rf"other defaults or model weights .*\['{where}'\]"):
            finished(job)
    path.write_text(json.dumps({k: v for k, v in res.to_dict().items() if k != "resolved"}))  # an old record: read
    assert finished(job).per_problem == res.per_problem
    # the references: kept in the archive too, and checked against the model, env and problems asked for
    monkeypatch.undo()
    ref = ReferenceJob(out=str(out), archive=base["archive"], name="student", model=base["policy"]["model"],
                       env=compare.settings(load_config(base), {"constraint": "none"}, 0, None)["env"], split="test",
                       test_split="test", n=2, batch_size=2, threads=1, device="cpu")
    first = compare._reference(ref)
    assert (tmp_path / "archive" / "references" / "student.json").is_file()
    shutil.rmtree(out)
    import llm_cmdp_agents.run.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_policy", lambda *a, **k: pytest.fail("a finished reference was rerun"))
    assert compare._reference(ref).per_problem == first.per_problem
    with pytest.raises(ValueError, match="student.json was written for another model"):
        compare._reference(dataclasses.replace(ref, n=3))


def test_a_contrast_of_unpaired_runs_is_an_error():
    from types import SimpleNamespace

    from llm_cmdp_agents.experiments.report import _check_paired

    def runs(seeds, n=4, task="ArithmeticTask(split='test')"):
        return [SimpleNamespace(seed=s, split="test", n=n, eval_task=task) for s in seeds]

    _check_paired(runs([1, 0]), runs([0, 1]), "a", "b")  # order does not matter
    for other in (runs([0, 2]), runs([0, 1], n=5), runs([0, 1], task="ArithmeticTask(split='validation')")):
        with pytest.raises(ValueError, match="not paired"):
            _check_paired(runs([0, 1]), other, "a", "b")
