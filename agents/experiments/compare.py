"""``llm-cmdp compare``: the method comparison protocol. Every method gets the same training budget (updates,
prompts), the same grid size of hyper-parameter settings chosen on a validation split, the same seeds and the
same test problems, and is scored on the same constraint (summed episode cost <= d) at every budget d of the
sweep; results are per-problem, so the report gives paired bootstrap intervals of every difference.

Config (JSON)::

    {
      "out": "runs/compare_shortcut",
      "seeds": [0, 1, 2, 3, 4],                   # test runs: one per seed and (method, budget)
      "budgets": [20, 40, 80],                    # the sweep of d (default: [eval.budget])
      "workers": 2,                               # runs in parallel (processes, 1 torch thread each)
      "archive": "docs/data/compare_shortcut",    # (optional) a copy of every finished record, e.g. in git:
                                                  # a run whose folder is gone is read from there, not rerun
      "env": {...}, "policy": {...}, "train": {...},        # shared EnvConfig / PolicyConfig / TrainConfig fields
      "validation": {"split": "validation", "n": 200, "seeds": [100]},   # where each grid is chosen (optional)
      "eval": {"split": "test", "n": 500, "batch_size": 100},
      "references": true,                         # also evaluate the untrained student and the teacher
      "equivalence_margin": 0.02,                 # "comparable accuracy": the 90% CI of the difference within ±0.02
      "binding": {"unconstrained": "task only", "constrained": ["budget"], "min_violation": 0.1,   # (optional)
                  "exploratory": []},              # budgets tested whatever the check says, labelled so
      "methods": [
        {"name": "budget", "constraint": "budget",
         "grid": [{"constraint_kwargs": {"unsafe_reward": 0.0}}, {"constraint_kwargs": {"unsafe_reward": -0.5}},
                  {"constraint_kwargs": {"unsafe_reward": -1.0}}]},
        {"name": "worst-case", "constraint": "worst-case",
         "grid": [{"budget_scale": 0.01}, {"budget_scale": 0.02}, {"budget_scale": 0.04}]},
        {"name": "gkd", "constraint": "none", "train": {"algo": "gkd"},
         "grid": [{"train": {"gkd_beta": 0.1}}, {"train": {"gkd_beta": 0.5}}, {"train": {"gkd_beta": 0.9}}]},
        ...
      ]
    }

A method may override ``env``, ``policy`` and ``train`` fields, and so may each grid point (also
``constraint_kwargs`` and ``budget_scale``: the training budget is ``budget_scale x d``, e.g. the worst-case
method's per-token bound). Methods whose training ignores the budget (constraint ``none``, ``distill`` or
``lagrangian``: task-only, distillation-only, fixed λ, GKD, MiniLLM, ...; or a method with its own fixed
training ``budget``) train once per seed and are scored at every d; each d still chooses its own setting among
them (a fixed λ is tuned per budget). A method's ``axis`` (a dotted path such as ``constraint_kwargs.lam``)
names the value its grid varies, so the report flags a choice at an edge of the grid; its ``widen`` points
are appended to the grid (the base ``grid`` has the same size for every method) to move such a choice inside.

Phases (``--phase``): ``validation`` trains every grid point (validation seeds) and evaluates it on the
validation split; the grid point with the highest validation *safe accuracy* (solved with cost <= d over all
validation seeds and problems; ties: the lower mean cost, then the first) is chosen per (method, d) and
written to ``selection.json``; ``test`` first checks, with a ``binding`` section, which budgets bind without
collapse on validation (``binding.json``: the unconstrained method violates d in at least ``min_violation`` of
its episodes and every constrained method beats the untrained student's accuracy; the others are dropped,
except those listed in ``exploratory``, which are tested and labelled exploratory in the report),
then trains the chosen settings with every seed and evaluates on the test split; ``report`` writes
``records.jsonl`` (one line per run, with its training trace), ``results.json``, ``results.md`` (tables with
95% bootstrap and per-seed t-intervals, both satisfaction views, the accuracy equivalence verdict) and the
plots ``pareto.png``, ``forest.png`` and ``lambda.png``. ``all`` runs the three in order; ``status`` trains nothing
and prints, per method, setting and budget, the seeds finished and their pooled scores so far, and the CPU time
spent and left. Each run writes
``eval.json`` when done (and its copy under ``archive``), and finished runs are skipped, so a stopped sweep
resumes where it stopped, on another machine too when the archive travels (in git);
``--part K/N`` runs every N-th job of a phase starting at the K-th, to split a phase into pieces of bounded
length.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from llm_cmdp_agents.experiments.plan import (
    check_binding,
    code_version,
    finished,
    load_config,
    machine,
    merge,
    plan_jobs,
    resolved,
    select_settings,
    settings,
)
from llm_cmdp_agents.experiments.records import (
    Job,
    PerProblem,
    ReferenceJob,
    ReferenceRecord,
    RunRecord,
    read_json_record,
    write_record,
)
from llm_cmdp_agents.experiments.stops import RunStopped, SweepInterrupted
from llm_cmdp_env.common.atomic_io import write_json_atomic

__all__ = ["PHASES", "RunStopped", "SweepInterrupted", "load_config", "plan_jobs", "run_compare", "run_job",
           "select_settings"]

PHASES = ("validation", "test", "report", "all", "status")


# ---------------------------------------------------------------------------------------------- one run
def run_job(job: Job) -> RunRecord:
    """Train and evaluate one run (in a worker process); writes and returns its ``eval.json`` record."""
    import torch

    torch.set_num_threads(job.threads)
    from llm_cmdp_agents.run.build import make_env, make_eval_env, make_policy
    from llm_cmdp_agents.run.config import EnvConfig, EvalConfig, PolicyConfig, RunConfig, TrainConfig
    from llm_cmdp_agents.run.evaluate import evaluate_policy
    from llm_cmdp_agents.run.trainer import Trainer

    done = finished(job)
    if done is not None:
        return done
    st = job.settings
    if job.outside:  # an outside algorithm (llm-cmdp bench)
        from llm_cmdp_agents.experiments.bench import run_outside_job

        return run_outside_job(job)
    run = RunConfig(EnvConfig(**st["env"]), PolicyConfig(**st["policy"]),
                    TrainConfig.from_dict({**st["train"], "seed": job.seed}),
                    EvalConfig(n=job.n, split=job.split, batch_size=job.batch_size))
    torch.manual_seed(job.seed)
    env = make_env(run.env, run.env.split)
    policy = make_policy(run.policy, run.train.algo, run.env.constraint, seed=job.seed)
    trainer = Trainer(env, policy, run.train, run_dir=job.run_dir, progress=False, tensorboard=False)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    if trainer.interrupted or trainer.update_idx != run.train.updates:  # a stopped run is not a result
        raise RunStopped(f"{job.run_dir}: training stopped after {trainer.update_idx} of {run.train.updates} "
                         "updates (interrupted); nothing recorded, the run starts again on the next call")
    # the evaluation stack: the run's own (a Sauté policy needs z), without multiplier learning; the common
    # criterion (cost <= d) is applied to the per-problem costs afterwards, for every d of the sweep
    eval_env = make_eval_env(run)
    task = eval_env.unwrapped.setup.task
    if getattr(task, "split", job.split) != job.split:  # never score a run on problems of another split
        raise RuntimeError(f"the evaluation env holds {task!r}, not the {job.split!r} split")
    t1 = time.perf_counter()
    ev = evaluate_policy(policy, eval_env, job.n, batch_size=job.batch_size, per_problem=True)
    res = RunRecord(**job.key(), updates=trainer.update_idx, divergence=run.env.divergence,
                    train_seconds=round(seconds, 2), eval_seconds=round(time.perf_counter() - t1, 2),
                    accuracy=ev["accuracy"], mean_cost=ev["mean_cost"], mean_length=ev["mean_length"],
                    per_problem=PerProblem.from_dict(ev["per_problem"]), train_trace=train_trace(trainer.history),
                    eval_task=repr(task), machine=machine(), code=code_version(), resolved=resolved(job),
                    fingerprint=job.fingerprint)
    write_record(res, Path(job.run_dir) / "eval.json", job.archive)
    return res


TRACE_KEYS = ("update", "task_reward", "reward", "cost", "accuracy", "constraint_satisfaction", "lambda", "seconds")
"""What a run's ``train_trace`` keeps per update: the batch means of the task reward, the penalised reward the
learner optimised, the episode cost, accuracy and per-episode constraint satisfaction, the Lagrange multiplier
the update's last episode ran with (fixed when that episode began: the value before the update's own dual
step; None without one) and the update's wall time."""


def train_trace(history: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The training history as columns of :data:`TRACE_KEYS` (rounded; missing values None)."""
    def _round(x: Any) -> Any:
        return None if x is None else round(float(x), 6)

    return {k: [_round(row.get(k)) if k != "update" else int(row["update"]) for row in history] for k in TRACE_KEYS}


def _reference(job: ReferenceJob) -> ReferenceRecord:
    """Evaluate an untrained model (the student before training, or the teacher) on the test problems."""
    import torch

    torch.set_num_threads(job.threads)
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_agents.run.build import make_env
    from llm_cmdp_agents.run.config import EnvConfig
    from llm_cmdp_agents.run.evaluate import evaluate_policy

    archive = None if not job.archive else Path(job.archive) / job.file
    found = read_json_record(Path(job.out) / job.file, archive)
    if found is not None:
        res = ReferenceRecord.from_dict(found[0], str(found[1]))
        if res.fingerprint != job.fingerprint:
            raise ValueError(f"{found[1]} was written for another model, env or problem set than the config now "
                             f"gives (fingerprint {res.fingerprint} vs {job.fingerprint}); remove it")
        return res
    env = make_env(EnvConfig(**{**job.env, "constraint": "none", "budget": None, "constraint_kwargs": {}}), job.split)
    policy = LLMPolicy.from_pretrained(job.model, device=job.device, value_head=False)
    ev = evaluate_policy(policy, env, job.n, batch_size=job.batch_size, per_problem=True)
    res = ReferenceRecord(method=job.name, split=job.split, n=job.n, accuracy=ev["accuracy"],
                          mean_cost=ev["mean_cost"], mean_length=ev["mean_length"],
                          per_problem=PerProblem.from_dict(ev["per_problem"]), fingerprint=job.fingerprint)
    write_record(res, Path(job.out) / job.file, archive)
    return res


def _stop_workers() -> None:
    """Pass a stop request on to the worker processes (each in its own process group: a terminal's Ctrl-C reaches
    only this process, which forwards it once): their trainers finish the update they are in and stop."""
    import multiprocessing as mp
    import signal

    for child in mp.active_children():
        try:
            os.kill(child.pid, signal.SIGINT)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass


def _run_all(jobs: list[Any], fn: Any, workers: int, progress: bool, desc: str) -> list[Any]:
    """Run ``fn`` on every job (in ``workers`` processes when more than one), in order of completion; a Ctrl-C or
    SIGTERM lets the runs in progress stop (nothing of them is recorded), keeps every finished one and raises
    :class:`SweepInterrupted`."""
    from tqdm import tqdm

    from llm_cmdp_env.common.interrupts import GracefulInterrupt

    out: list[Any] = []
    bar = tqdm(total=len(jobs), disable=not progress, desc=desc, dynamic_ncols=True)

    def finished(res: Any) -> None:
        out.append(res)
        bar.update(1)
        bar.set_postfix(method=str(res.method)[:18], acc=f"{res.accuracy:.2f}")

    message = "interrupted: stopping the runs in progress (finished runs are kept; again to stop at once)"
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp
            from concurrent.futures import as_completed
            from concurrent.futures.process import BrokenProcessPool

            with GracefulInterrupt(message, out=tqdm.write, on_request=_stop_workers) as stop, \
                    ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=os.setpgrp) as pool:
                futures = [pool.submit(fn, job) for job in jobs]
                try:
                    for fut in as_completed(futures):
                        if stop.requested:
                            for f in futures:
                                f.cancel()
                        try:
                            finished(fut.result())
                        except (RunStopped, KeyboardInterrupt, BrokenProcessPool):
                            if not stop.requested:
                                raise
                        except CancelledError:
                            pass
                finally:
                    if stop.requested:
                        for f in futures:
                            f.cancel()
                if stop.requested:
                    raise SweepInterrupted(desc, len(out), len(jobs))
        else:
            import torch

            saved = torch.get_num_threads()
            try:
                with GracefulInterrupt(message, out=tqdm.write) as stop:
                    for job in jobs:
                        try:
                            finished(fn(job))
                        except RunStopped:
                            stop.requested = True
                        if stop.requested:
                            raise SweepInterrupted(desc, len(out), len(jobs))
            finally:
                torch.set_num_threads(saved)
    finally:
        bar.close()
    return out


def print_binding(result: dict[str, Any], progress: bool = True) -> None:
    """One line per validation budget: does it bind (the unconstrained method's violations, mean cost) without
    collapse (the constrained methods' accuracy against the student's)?"""
    if not progress:
        return

    def verdict(d: float, passes: bool) -> str:
        return "test" if passes else "tested anyway (exploratory)" if d in result["test_budgets"] else "dropped"

    for d, row in result["budgets"].items():
        u = row["unconstrained"]
        accs = ", ".join(f"{n} {c['accuracy']:.3f}" for n, c in row["constrained"].items())
        print(f"budget {d}: unconstrained violates {u['violation']:.0%} of episodes (mean cost {u['mean_cost']:.1f}); "
              f"{accs} vs student {row['student_accuracy']:.3f} -> {verdict(float(d), row['passes'])}")


# ---------------------------------------------------------------------------------------------- the driver
def _part(jobs: list[Job], part: str | None) -> list[Job]:
    if not part:
        return jobs
    m = re.fullmatch(r"(\d+)/(\d+)", part)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--part must be K/N with 1 <= K <= N, got {part!r}")
    k, n = int(m.group(1)), int(m.group(2))
    return jobs[k - 1:: n]


def run_compare(config: str | Path | dict[str, Any], out_dir: str | Path | None = None, progress: bool = True,
                phase: str = "all", part: str | None = None, force: bool = False,
                config_file: str | None = None) -> dict[str, Any]:
    """Run ``phase`` of the protocol (see the module docstring). Returns the report (``paths``, ``markdown``, ...)
    when the report was written, else ``{"phase", "runs"}`` (``{"phase": "status", "status"}`` for ``status``).

    The output folder and the archive have one writer each: the phases that write hold both folders' locks
    (:class:`~llm_cmdp_agents.run.lock.RunLock`; a second sweep on either gets
    :class:`~llm_cmdp_agents.run.lock.RunLockedError` naming the folder and its owner and writes nothing; ``force``
    takes over a lock left by another host). ``config_file``: also write the resolved config under that name in
    the output folder (``llm-cmdp bench``: ``bench_config.json``). A Ctrl-C or SIGTERM stops the runs in progress
    and raises :class:`SweepInterrupted` (finished runs are kept: the same call continues)."""
    import contextlib

    from llm_cmdp_agents.algos.config import TrainConfig
    from llm_cmdp_agents.run.lock import RunLock

    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    cfg = load_config(config)
    TrainConfig.from_dict(cfg.get("train", {}))  # validate early
    out = Path(out_dir or cfg.get("out", "runs/compare"))
    if phase == "status":  # read only: what is finished, of the validation phase (and of the test phase once planned)
        from llm_cmdp_agents.experiments.report import status

        views = [status(cfg, out, "validation")] if "validation" in cfg else []
        if all(v["finished"] == v["planned"] for v in views) and ("binding" not in cfg
                                                                  or (out / "binding.json").is_file()):
            views.append(status(cfg, out, "test"))  # the test plan exists once validation has chosen
        return {"phase": "status", "status": views}
    with contextlib.ExitStack() as locks:
        locks.enter_context(RunLock(out, force=force, what="comparison folder"))
        if cfg.get("archive"):
            locks.enter_context(RunLock(cfg["archive"], force=force, what="archive folder"))
        if config_file is not None:
            write_json_atomic(out / config_file, cfg)
        return _run_phases(cfg, out, progress, phase, part)


def _run_phases(cfg: dict[str, Any], out: Path, progress: bool, phase: str, part: str | None) -> dict[str, Any]:
    workers = int(cfg.get("workers", 1))
    cfg.setdefault("threads", 1 if workers > 1 else max(1, os.cpu_count() or 1))
    env = settings(cfg, {"constraint": "none"}, 0, None)["env"]
    model = merge({"model": "zoo:student"}, cfg.get("policy"))["model"]

    def reference(name: str, spec: str, split: str | None = None, n: int | None = None) -> ReferenceJob:
        test = cfg["eval"].get("split", "test")
        return ReferenceJob(name=name, model=spec, env=env, split=split or test, n=n or cfg["eval"]["n"],
                            out=str(out), archive=cfg.get("archive"), test_split=test,
                            batch_size=cfg["eval"].get("batch_size", 64), threads=cfg["threads"],
                            device=merge(cfg.get("policy")).get("device", "auto"))

    done: list[RunRecord] = []
    for ph in (("validation", "test") if phase == "all" else (phase,) if phase != "report" else ()):
        if ph == "test" and "binding" in cfg:  # which budgets bind without collapse, on validation
            val = cfg["validation"]
            student = _run_all([reference("student", model, val.get("split", "validation"), val["n"])], _reference,
                               1, False, "references")[0]
            print_binding(check_binding(cfg, out, student), progress)
        jobs = _part(plan_jobs(cfg, ph, out), part)
        done += _run_all(jobs, run_job, workers, progress, ph)
    if phase not in ("all", "report"):
        return {"phase": phase, "runs": done}
    refs = []
    if cfg.get("references", True):
        refs = _run_all([reference("student", model), reference("teacher", env["teacher"])], _reference, 1, False,
                        "references")
    from llm_cmdp_agents.experiments.report import write_report

    return write_report(cfg, out, refs)
