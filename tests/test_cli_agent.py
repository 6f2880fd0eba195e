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


def test_compare_sweep_writes_json_table_and_plot(tiny_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    cfg = {
        "out": str(tmp_path / "cmp"),
        "seeds": [0, 1],
        "workers": 1,
        "threads": 1,
        "env": {"teacher": str(tiny_dir / "teacher"), "max_new_tokens": 8, "max_prompt_tokens": 160},
        "policy": {"model": str(tiny_dir / "student"), "device": "cpu"},
        "train": {"algo": "ppo", "updates": 1, "prompts_per_update": 2, "lr": 1e-3, "checkpoint_every": 0},
        "eval": {"n": 3, "budget": 45.0},
        "methods": [
            {"name": "budget reward", "constraint": "budget"},
            {"name": "sauté", "constraint": "saute"},
        ],
    }
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    assert main(["compare", "--config", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| budget reward |" in out and "| sauté |" in out and "*teacher*" in out
    res = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert len(res["runs"]) == 4 and [r["method"] for r in res["summary"]] == [m["name"] for m in cfg["methods"]]
    for r in res["runs"]:
        assert 0 <= r["constraint_satisfaction"] <= 1 and r["mean_cost"] > 0
    assert (tmp_path / "cmp" / "results.png").stat().st_size > 1000
    assert (tmp_path / "cmp" / "budget-reward" / "seed_1" / "eval.json").is_file()

    bad = dict(cfg, methods=[{"name": "x", "constraint": "nope"}])
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="constraint must be one of"):
        main(["compare", "--config", str(path)])
