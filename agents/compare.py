"""``llm-cmdp compare``: train one student per (constraint method, seed), evaluate every run with the SAME
criterion (summed test-episode cost <= the evaluation budget), and write a results JSON, a Markdown table and
an accuracy-vs-constraint-satisfaction plot.

Config (JSON)::

    {
      "out": "runs/compare_wrappers",             # output folder (one sub-folder per run)
      "seeds": [0, 1, 2],
      "workers": 2,                               # runs in parallel (processes, 1 torch thread each)
      "env":    {... EnvConfig fields shared by all methods (teacher, divergence, max_new_tokens, ...)},
      "policy": {... PolicyConfig fields},
      "train":  {... TrainConfig fields (algo, updates, lr, ...)},
      "eval":   {"n": 200, "budget": 12.0},      # test problems and the common budget d
      "references": true,                         # also evaluate the untrained student and the teacher
      "methods": [
        {"name": "budget reward (paper)", "constraint": "budget"},
        {"name": "fixed lambda 0.05", "constraint": "lagrangian", "constraint_kwargs": {"lam": 0.05}},
        {"name": "worst-case", "constraint": "worst-case", "budget": 0.3},   # per-token bound
        ...
      ]
    }

A method's ``budget`` defaults to the evaluation budget. Finished runs (``<out>/<method>/seed_<k>/eval.json``)
are skipped when the sweep is started again, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from llm_cmdp_env.atomic_io import write_json_atomic, write_text_atomic

__all__ = ["load_config", "markdown_table", "plot_results", "run_compare", "summarise"]

_METHOD_KEYS = {"name", "constraint", "budget", "constraint_kwargs", "train", "policy"}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a compare config (see the module docstring)."""
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS

    cfg = json.loads(Path(path).read_text())
    for key in ("methods", "seeds", "eval"):
        if key not in cfg:
            raise ValueError(f"{path}: compare config needs {key!r}")
    names = set()
    for m in cfg["methods"]:
        unknown = set(m) - _METHOD_KEYS
        if unknown:
            raise ValueError(f"{path}: method {m.get('name')!r} has unknown keys {sorted(unknown)}; "
                             f"accepted: {sorted(_METHOD_KEYS)}")
        if m.get("constraint") not in CONSTRAINTS:
            raise ValueError(f"{path}: method {m.get('name')!r}: constraint must be one of {list(CONSTRAINTS)}")
        if m["name"] in names:
            raise ValueError(f"{path}: duplicate method name {m['name']!r}")
        names.add(m["name"])
    if "budget" not in cfg["eval"]:
        raise ValueError(f"{path}: eval needs the common budget ('budget')")
    return cfg


def _slug(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (method, seed); runs in a worker process."""
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    from llm_cmdp_agents.config import EnvConfig, PolicyConfig, RunConfig, TrainConfig
    from llm_cmdp_agents.evaluate import evaluate_policy
    from llm_cmdp_agents.runs import make_env, make_policy
    from llm_cmdp_agents.trainer import Trainer

    run_dir = Path(job["run_dir"])
    done = run_dir / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    m = job["method"]
    run = RunConfig(EnvConfig(**{**job["env"], "constraint": m["constraint"],
                                 "budget": m.get("budget", job["eval"]["budget"]),
                                 "constraint_kwargs": dict(m.get("constraint_kwargs", {}))}),
                    PolicyConfig(**{**job["policy"], **m.get("policy", {})}),
                    TrainConfig.from_dict({**job["train"], **m.get("train", {}), "seed": job["seed"]}))
    env_cfg, pol_cfg, train_cfg = run.env, run.policy, run.train
    torch.manual_seed(job["seed"])
    env = make_env(env_cfg, "train")
    policy = make_policy(pol_cfg, train_cfg.algo, env_cfg.constraint)
    trainer = Trainer(env, policy, train_cfg, run_dir=run_dir, progress=False)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    # the common criterion: summed episode cost <= eval budget, on the same test problems for every run
    test_env = make_env(EnvConfig(**{**job["env"], "constraint": "none", "budget": job["eval"]["budget"]}), "test")
    if policy.budget_conditioned:
        # a Sauté policy needs its augmented env (z tracked with the teacher), at z0 = 1 of the eval budget; its
        # statistics wrapper counts the same criterion (summed cost <= budget)
        test_env = make_env(EnvConfig(**{**vars(env_cfg), "budget": job["eval"]["budget"],
                                         "constraint_kwargs": {}}), "test")
    ev = evaluate_policy(policy, test_env, job["eval"]["n"], batch_size=job["eval"].get("batch_size", 64),
                         budget=job["eval"]["budget"])
    last = trainer.history[-1] if trainer.history else {}
    res = {"method": m["name"], "seed": job["seed"], "train_seconds": seconds, **ev,
           "train_reward_last": last.get("reward"), "train_cost_last": last.get("cost")}
    write_json_atomic(done, res)
    return res


def _reference(job: dict[str, Any]) -> dict[str, Any]:
    """Evaluate an untrained model (the student before training, or the teacher) on the common criterion."""
    import torch

    torch.set_num_threads(int(job.get("threads", 1)))
    from llm_cmdp_agents.config import EnvConfig
    from llm_cmdp_agents.evaluate import evaluate_policy
    from llm_cmdp_agents.policy import LLMPolicy
    from llm_cmdp_agents.runs import make_env

    out = Path(job["out"]) / f"reference_{_slug(job['name'])}.json"
    if out.is_file():
        return json.loads(out.read_text())
    env = make_env(EnvConfig(**{**job["env"], "constraint": "none", "budget": job["eval"]["budget"]}), "test")
    policy = LLMPolicy.from_pretrained(job["model"], device=job["policy"].get("device", "auto"), value_head=False)
    ev = evaluate_policy(policy, env, job["eval"]["n"], batch_size=job["eval"].get("batch_size", 64),
                         budget=job["eval"]["budget"])
    res = {"method": job["name"], **ev}
    write_json_atomic(out, res)
    return res


def summarise(runs: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Mean and std (over seeds, ddof=0) of each metric per method, in config order."""
    rows = []
    for name in methods:
        rs = [r for r in runs if r["method"] == name]
        if not rs:
            continue
        row: dict[str, Any] = {"method": name, "seeds": len(rs)}
        for k in ("accuracy", "constraint_satisfaction", "mean_cost", "mean_length", "train_seconds"):
            vals = np.array([r[k] for r in rs], dtype=float)
            row[f"{k}_mean"], row[f"{k}_std"] = float(vals.mean()), float(vals.std())
        rows.append(row)
    return rows


def markdown_table(summary: list[dict[str, Any]], references: list[dict[str, Any]], budget: float) -> str:
    """The results as a Markdown table (mean ± std over seeds)."""
    lines = [f"| method | test accuracy | constraint satisfaction (cost <= {budget:g}) | mean episode cost | "
             "mean length | training time (s) |", "|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(
            f"| {r['method']} | {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | "
            f"{r['constraint_satisfaction_mean']:.3f} ± {r['constraint_satisfaction_std']:.3f} | "
            f"{r['mean_cost_mean']:.2f} ± {r['mean_cost_std']:.2f} | {r['mean_length_mean']:.1f} | "
            f"{r['train_seconds_mean']:.0f} ± {r['train_seconds_std']:.0f} |")
    for r in references:
        lines.append(f"| *{r['method']}* (no training) | {r['accuracy']:.3f} | {r['constraint_satisfaction']:.3f} | "
                     f"{r['mean_cost']:.2f} | {r['mean_length']:.1f} | – |")
    return "\n".join(lines)


def plot_results(summary: list[dict[str, Any]], references: list[dict[str, Any]], path: str | Path,
                 budget: float) -> Path:
    """Accuracy vs constraint satisfaction, one point per method with std error bars, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for r in summary:
        ax.errorbar(r["constraint_satisfaction_mean"], r["accuracy_mean"], xerr=r["constraint_satisfaction_std"],
                    yerr=r["accuracy_std"], fmt="o", capsize=3, label=r["method"])
    for r in references:
        ax.scatter(r["constraint_satisfaction"], r["accuracy"], marker="x", color="k")
        ax.annotate(r["method"], (r["constraint_satisfaction"], r["accuracy"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"constraint satisfaction (fraction of test episodes with cost <= {budget:g})")
    ax.set_ylabel("test accuracy")
    ax.set_xlim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_compare(config: str | Path | dict[str, Any], out_dir: str | Path | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Run the sweep of a config; returns the results dict (also written as JSON) with ``paths`` and ``markdown``."""
    from llm_cmdp_agents.config import EnvConfig, PolicyConfig, TrainConfig

    cfg = load_config(config) if not isinstance(config, dict) else config
    out = Path(out_dir or cfg.get("out", "runs/compare"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**{f.name: f.default for f in fields(EnvConfig) if f.name not in ("constraint_kwargs", "env_kwargs")},
           **cfg.get("env", {})}
    policy = {**{f.name: f.default for f in fields(PolicyConfig)}, **cfg.get("policy", {})}
    TrainConfig.from_dict(cfg.get("train", {}))  # validate early
    workers = int(cfg.get("workers", 1))
    threads = int(cfg.get("threads", 1 if workers > 1 else max(1, (os.cpu_count() or 1))))
    common = {"env": env, "policy": policy, "train": cfg.get("train", {}), "eval": cfg["eval"], "threads": threads}
    jobs = [{**common, "method": m, "seed": s, "run_dir": str(out / _slug(m["name"]) / f"seed_{s}")}
            for m in cfg["methods"] for s in cfg["seeds"]]
    refs = []
    if cfg.get("references", True):
        refs = [{**common, "out": str(out), "name": "student", "model": policy["model"]},
                {**common, "out": str(out), "name": "teacher", "model": env["teacher"]}]
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(jobs) + len(refs), disable=not progress, desc="compare")
    runs: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    if workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            ref_futs = [pool.submit(_reference, j) for j in refs]
            futs = [pool.submit(_run_one, j) for j in jobs]
            for f in ref_futs:
                references.append(f.result())
                bar.update(1)
            for f in futs:
                runs.append(f.result())
                bar.update(1)
                bar.set_postfix(method=runs[-1]["method"][:20], acc=f"{runs[-1]['accuracy']:.2f}")
    else:
        import torch

        saved_threads = torch.get_num_threads()
        for j in refs:
            references.append(_reference(j))
            bar.update(1)
        for j in jobs:
            runs.append(_run_one(j))
            bar.update(1)
            bar.set_postfix(method=runs[-1]["method"][:20], acc=f"{runs[-1]['accuracy']:.2f}")
        torch.set_num_threads(saved_threads)
    bar.close()
    summary = summarise(runs, [m["name"] for m in cfg["methods"]])
    budget = float(cfg["eval"]["budget"])
    md = markdown_table(summary, references, budget)
    paths = {"json": str(out / "results.json"), "markdown": str(out / "results.md"), "plot": str(out / "results.png")}
    write_text_atomic(paths["markdown"], md + "\n")
    plot_results(summary, references, paths["plot"], budget)
    results = {"config": cfg, "runs": runs, "summary": summary, "references": references,
               "wall_seconds": time.perf_counter() - t0, "paths": paths, "markdown": md}
    write_json_atomic(paths["json"], results)
    return results
