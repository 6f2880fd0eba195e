"""Smoke runs of ``llm-cmdp train``, ``eval`` and ``compare`` on the tiny models."""

from __future__ import annotations

import csv
import json

import pytest

from llm_cmdp_env.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(tiny_dir) -> list[str]:
    return ["--teacher", str(tiny_dir / "teacher"), "--max-new-tokens", "10", "--max-prompt-tokens", "160"]


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_writes_a_run_folder_and_resumes(tiny_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", *_tiny(tiny_dir), "--model", str(tiny_dir / "student"), "--constraint", "learned-lagrangian",
            "--budget", "50", "--algo", "ppo", "--updates", "2", "--prompts-per-update", "4", "--eval-n", "4",
            "--checkpoint-every", "1", "--out", str(run), "--no-progress", "--lr", "1e-3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "before: accuracy" in out and "after:  accuracy" in out and "constraint satisfaction" in out
    for name in ("config.json", "progress.csv", "results.json", "final/config.json", "final/agent_config.json",
                 "checkpoints/latest.pt", "checkpoints/update_000002.pt"):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env"]["constraint"] == "learned-lagrangian"
    assert cfg["env"]["constraint_kwargs"]["update_every"] == 4  # one multiplier update per batch
    rows = list(csv.DictReader((run / "progress.csv").open()))
    assert [r["update"] for r in rows] == ["1", "2"]
    res = json.loads((run / "results.json").read_text())
    assert set(res["before"]) >= {"accuracy", "constraint_satisfaction", "mean_cost", "mean_length"}

    assert main(["train", "--out", str(run), "--resume", "--updates", "3", "--eval-n", "0", "--no-progress"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert len(list(csv.DictReader((run / "progress.csv").open()))) == 3

    with pytest.raises(FileExistsError):
        main(args)

    assert main(["eval", str(run), "--n", "4", "--json"]) == 0
    res = _last_json(capsys.readouterr().out)
    assert set(res) >= {"accuracy", "constraint_satisfaction", "mean_cost", "mean_length"}
    assert 0 <= res["accuracy"] <= 1 and 0 <= res["constraint_satisfaction"] <= 1 and res["mean_length"] > 0


def test_grpo_train_json_and_eval_of_a_model(tiny_dir, tmp_path, capsys):
    run = tmp_path / "g"
    assert main(["train", *_tiny(tiny_dir), "--model", str(tiny_dir / "student"), "--constraint", "budget",
                 "--budget", "40", "--algo", "grpo", "--group-size", "2", "--updates", "1",
                 "--prompts-per-update", "2", "--eval-n", "3", "--out", str(run), "--no-progress", "--json"]) == 0
    line = _last_json(capsys.readouterr().out)
    assert line["updates"] == 1 and line["after"]["n"] == 3

    assert main(["eval", str(tiny_dir / "student"), *_tiny(tiny_dir), "--budget", "1000", "--n", "3", "--json"]) == 0
    res = _last_json(capsys.readouterr().out)
    assert res["constraint_satisfaction"] == 1.0  # every 10-token episode costs far below 1000
    assert main(["eval", str(tiny_dir / "student"), *_tiny(tiny_dir), "--budget", "0.001", "--n", "3", "--json"]) == 0
    assert _last_json(capsys.readouterr().out)["constraint_satisfaction"] == 0.0


def test_cli_errors(tiny_dir, tmp_path):
    with pytest.raises(SystemExit):
        main(["train", "--constraint", "lagrangian", "--out", str(tmp_path / "x")])  # needs --lam
    with pytest.raises(SystemExit):
        main(["train", "--constraint", "nonsense"])
    with pytest.raises(FileNotFoundError):
        main(["train", "--out", str(tmp_path / "nothing"), "--resume"])


def test_compare_protocol_chooses_on_validation_runs_seeds_and_budgets_and_reports(tiny_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    cfg = {
        "out": str(tmp_path / "cmp"),
        "seeds": [0, 1],
        "budgets": [40.0, 60.0],
        "workers": 1,
        "threads": 1,
        "env": {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 8, "max_prompt_tokens": 160},
        "policy": {"model": str(tiny_dir / "student"), "device": "cpu"},
        "train": {"algo": "grpo", "group_size": 2, "updates": 1, "prompts_per_update": 2, "lr": 1e-3,
                  "checkpoint_every": 0},
        "validation": {"split": "validation", "n": 3, "seeds": [7]},
        "eval": {"split": "test", "n": 3},
        # the tiny models need not bind: both budgets are tested whatever the check says
        "binding": {"unconstrained": "task only", "constrained": ["budget reward"], "exploratory": [40.0, 60.0]},
        "methods": [
            {"name": "budget reward", "constraint": "budget",
             "grid": [{"constraint_kwargs": {"unsafe_reward": 0.0}}, {"constraint_kwargs": {"unsafe_reward": -1.0}}]},
            {"name": "task only", "constraint": "none", "grid": [{"train": {"lr": 1e-3}}, {"train": {"lr": 1e-4}}]},
        ],
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    # in two parts, as a long sweep would be split
    assert main(["compare", "--config", str(path), "--no-progress", "--phase", "validation", "--part", "1/2"]) == 0
    assert main(["compare", "--config", str(path), "--no-progress", "--phase", "validation", "--part", "2/2"]) == 0
    out = tmp_path / "cmp"
    # budget reward: 2 settings x 2 budgets; task only ignores the budget: 2 settings, trained once each
    val = [json.loads(p.read_text()) for p in (out / "validation").rglob("eval.json")]
    assert len(val) == 6 and all("split='validation'" in r["eval_task"] for r in val)
    assert main(["compare", "--config", str(path), "--no-progress"]) == 0  # the rest: test phase and report
    text = capsys.readouterr().out
    assert "| budget reward |" in text and "| task only |" in text and "*teacher*" in text
    assert "budget reward − task only" in text
    sel = json.loads((out / "selection.json").read_text())
    assert set(sel) == {"budget reward", "task only"} and set(sel["budget reward"]) == {"40", "60"}
    test_runs = [json.loads(p.read_text()) for p in (out / "test").rglob("eval.json")]
    assert len(test_runs) <= 2 * 2 * 2 + 2 * 2 and all("split='test'" in r["eval_task"] for r in test_runs)
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    test = [r for r in recs if r["phase"] == "test"]
    assert {r["seed"] for r in test} == {0, 1} and {r["method"] for r in test} == {"budget reward", "task only"}
    assert {r["method_id"] for r in test} == {"budget", "none"}
    for r in recs:
        own = {"40", "60"} if r["budget"] is None else {f"{r['budget']:g}"}  # a run trained for d: scored at d
        assert set(r["at_budget"]) == own and len(r["per_problem"]["correct"]) == 3
        for at in r["at_budget"].values():
            assert at["safe_accuracy"] <= min(at["accuracy"], at["satisfaction"])
    res = json.loads((out / "results.json").read_text())
    assert res["binding"] == json.loads((out / "binding.json").read_text())  # the check travels with the results
    assert res["binding"]["test_budgets"] == [40.0, 60.0] and set(res["binding"]["budgets"]) == {"40", "60"}
    row = res["summary"]["40"]["methods"]["budget reward"]
    assert row["seeds"] == 2 and row["accuracy"]["low"] <= row["accuracy"]["mean"] <= row["accuracy"]["high"]
    assert (out / "pareto.png").stat().st_size > 1000
    assert (out / "forest.png").stat().st_size > 1000 and (out / "lambda.png").stat().st_size > 1000
    # every figure recomputes from the records alone (what docs/data/ commits)
    from llm_cmdp_agents.experiments.report import read_records, report_from_records

    summary, md = report_from_records(res["config"], read_records(out / "records.jsonl"), res["selection"])
    assert json.loads(json.dumps(summary)) == res["summary"] and md == res["markdown"]

    # a changed setting does not silently reuse finished runs
    cfg["train"]["lr"] = 5e-4
    path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="other settings"):
        main(["compare", "--config", str(path), "--no-progress", "--phase", "validation"])
    bad = dict(cfg, methods=[{"name": "x", "constraint": "nope"}])
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="constraint must be one of"):
        main(["compare", "--config", str(path)])
    uneven = dict(cfg, methods=[cfg["methods"][0], {"name": "y", "constraint": "none"}])
    path.write_text(json.dumps(uneven))
    with pytest.raises(ValueError, match="same size"):
        main(["compare", "--config", str(path)])


def test_train_config_file_comments_flags_and_print_config(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"_comment": "ignored",
                                "env": {"max_new_tokens": 64, "env_kwargs": {"dtype": "bfloat16"}},
                                "train": {"algo": "gkd", "gkd_beta": 0.2}}))
    assert main(["train", "--config", str(path), "--vocab-size", "600", "--gkd-lambda", "0.7", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["env"]["max_new_tokens"] == 64
    assert cfg["env"]["env_kwargs"] == {"dtype": "bfloat16", "vocab_size": 600}  # the flag adds to the file's
    assert (cfg["train"]["algo"], cfg["train"]["gkd_beta"], cfg["train"]["gkd_lambda"]) == ("gkd", 0.2, 0.7)
    path.write_text(json.dumps({"envs": {}}))
    with pytest.raises(SystemExit, match="unknown sections"):
        main(["train", "--config", str(path), "--print-config"])
