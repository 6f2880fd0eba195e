"""``llm-cmdp bench``: an outside constrained-RL algorithm under the protocol of ``llm-cmdp compare``.

The algorithm is named ``package.module:function`` and becomes one more method of a compare config (the key
``"outside"``), so it runs on the same splits, budgets and seeds, is evaluated on the same test problems, scored
by the same metrics and compared with paired bootstrap intervals, and gets a row in the same table and plot
(:mod:`llm_cmdp_agents.experiments.report`). docs/benchmark.md states the protocol.

The function is called once per (budget, seed) as::

    policy = function(make_env, budget=d, seed=s, limit=ComputeLimit(episodes=..., max_new_tokens=...), **options)

``make_env()`` builds a fresh training env (the protocol's training split, divergence and constraint stack,
``MathDistill-v0`` underneath; every reward and cost comes from it). ``limit`` is the training budget every
built-in method gets (``updates x prompts_per_update x group_size`` episodes); the episodes the algorithm
actually ran are counted and recorded beside it. ``options`` are the method's grid point's ``"options"``.
It returns one of: an :class:`~llm_cmdp_agents.engine.policy.LLMPolicy` (evaluated exactly like the built-in methods),
an object with ``predict(obs, deterministic=True) -> (action, state)`` (stable-baselines3), or a callable
``obs -> action``. The last two are evaluated by stepping the evaluation env greedily through every test
problem, so their reward, cost and length are the env's.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:
    from llm_cmdp_agents.experiments.records import Job, RunRecord

__all__ = ["ComputeLimit", "EpisodeCounter", "bench_config", "evaluate_callable", "resolve_algo", "run_outside_job"]


@dataclasses.dataclass(frozen=True)
class ComputeLimit:
    """The training budget of one run: ``episodes`` (what every built-in method trains on) of at most
    ``max_new_tokens`` tokens each."""

    episodes: int
    max_new_tokens: int

    @property
    def tokens(self) -> int:
        """An upper bound on the env steps: ``episodes x max_new_tokens``."""
        return self.episodes * self.max_new_tokens


def resolve_algo(spec: str) -> Callable[..., Any]:
    """The function named ``package.module:function``; a clear error for any other form."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"--algo must be 'package.module:function', got {spec!r}")
    module, name = spec.split(":")
    if os.getcwd() not in sys.path:  # like uvicorn/gunicorn: a module beside you (examples/..., a file of yours)
        sys.path.append(os.getcwd())
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"--algo {spec}: cannot import module {module!r} ({e})") from None
    fn = mod
    for part in name.split("."):
        if not hasattr(fn, part):
            raise ValueError(f"--algo {spec}: module {module!r} has no attribute {name!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise TypeError(f"--algo {spec}: {name!r} is a {type(fn).__name__}, not a function")
    return fn


def bench_config(config: str | Path | dict[str, Any], algo: str, name: str | None = None,
                 constraint: str = "none", options: dict[str, Any] | None = None,
                 time_limit_minutes: float | None = None) -> dict[str, Any]:
    """A compare config with the outside algorithm added as a method (validated: the function must exist);
    ``time_limit_minutes``: the wall time one of its runs may take (None: no limit)."""
    from llm_cmdp_agents.experiments.plan import load_config

    resolve_algo(algo)
    cfg = load_config(config)
    name = name or algo.split(":")[1]
    if any(m["name"] == name for m in cfg["methods"]):
        raise ValueError(f"a method named {name!r} is already in the config: pass --name")
    method = {"name": name, "constraint": constraint, "outside": algo, "grid": [{"options": dict(options or {})}]}
    if time_limit_minutes is not None:
        if not time_limit_minutes > 0:
            raise ValueError(f"--time-limit must be > 0 minutes, got {time_limit_minutes!r}")
        method["time_limit_minutes"] = float(time_limit_minutes)
    cfg["methods"] = [*cfg["methods"], method]
    return load_config(cfg)


class EpisodeCounter(gym.Wrapper):
    """Counts the episodes and steps of the envs an outside algorithm made (its compute, for the record)."""

    def __init__(self, env: gym.Env, tally: dict[str, int]) -> None:
        super().__init__(env)
        self.tally = tally

    def reset(self, **kwargs: Any) -> Any:
        self.tally["resets"] += 1
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.tally["steps"] += 1
        self.tally["episodes"] += int(bool(out[2] or out[3]))
        return out


def evaluate_callable(act: Callable[[Any], Any], env: gym.Env, n: int) -> dict[str, Any]:
    """Step ``env`` through problems ``0 .. n-1`` with ``act(obs) -> action``; the ``per_problem`` outcomes and
    means in the format of :func:`~llm_cmdp_agents.run.evaluate.evaluate_policy` (the numbers are the env's)."""
    from llm_cmdp_agents.run.evaluate import check_eval_size

    check_eval_size(env, n)
    correct, cost, length = [], [], []
    for i in range(n):
        obs, _ = env.reset(seed=0, options={"problem": i})
        total, steps, done, info = 0.0, 0, False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            total += float(info["cost"])
            steps += 1
            done = terminated or truncated
        correct.append(float(bool(info.get("correct", False))))
        cost.append(total)
        length.append(steps)
    mean = lambda xs: float(sum(xs) / len(xs))  # noqa: E731
    return {"accuracy": mean(correct), "mean_cost": mean(cost), "mean_length": mean(length), "n": n,
            "per_problem": {"correct": correct, "cost": cost, "length": length}}


def _actor(policy: Any, spec: str) -> Callable[[Any], Any] | None:
    """``obs -> action`` of a returned policy (None for an LLMPolicy, which is evaluated like the built-ins)."""
    from llm_cmdp_agents.engine.policy import LLMPolicy

    if isinstance(policy, LLMPolicy):
        return None
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=True)[0]
    if callable(policy):
        return policy
    raise TypeError(f"--algo {spec} returned a {type(policy).__name__}: return an LLMPolicy, an object with "
                    "predict(obs, deterministic=True), or a callable obs -> action")


def run_outside_job(job: Job) -> RunRecord:
    """Train and evaluate one run of an outside method (called by :func:`llm_cmdp_agents.experiments.compare.run_job`)
    in a process of its own, and return its ``eval.json`` record.

    Its own process, so that nothing the algorithm does can pass for a result: a ``sys.exit``, a crash or an
    exception of the algorithm is an error naming the run (nothing recorded), and with a time limit
    (``job.time_limit_s``, ``llm-cmdp bench --time-limit``) a run still going at the limit is stopped, with an
    error; the finished runs are kept either way. A Ctrl-C or SIGTERM stops it too
    (:class:`~llm_cmdp_agents.experiments.stops.RunStopped`)."""
    import multiprocessing as mp
    import tempfile

    from llm_cmdp_agents.experiments.records import RunRecord, read_json_record
    from llm_cmdp_env.common.interrupts import stop_requested

    where = f"{job.method} (seed {job.seed}, budget {job.budget})"
    with tempfile.TemporaryDirectory(prefix="llm-cmdp-bench-") as tmp:
        outcome = Path(tmp) / "outcome.json"
        proc = mp.get_context("spawn").Process(target=_outside_child, args=(job, str(outcome)), daemon=True)
        t0 = time.monotonic()
        proc.start()
        while proc.is_alive():
            proc.join(0.5)
            over = job.time_limit_s is not None and time.monotonic() - t0 > job.time_limit_s
            if over or stop_requested():
                proc.terminate()
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                if over:
                    raise RuntimeError(f"outside method {where} ran past its time limit of {job.time_limit_s:g} s "
                                       "and was stopped: nothing recorded for it (the finished runs are kept)")
                from llm_cmdp_agents.experiments.stops import RunStopped

                raise RunStopped(f"{job.run_dir}: stopped (interrupted); nothing recorded")
        found = read_json_record(outcome) if outcome.is_file() else None
    if found is None or "error" not in found[0] and "record" not in found[0]:
        raise RuntimeError(f"outside method {where} ended its process (exit code {proc.exitcode}, e.g. sys.exit) "
                           "before returning a policy: nothing recorded for it")
    if "error" in found[0]:
        kind = found[0]["kind"]
        error = getattr(builtins, kind, None)
        if not (isinstance(error, type) and issubclass(error, Exception)):
            error = RuntimeError
        raise error(f"outside method {where}: {found[0]['error']}")
    return RunRecord.from_dict(found[0]["record"], str(job.run_dir))


def _outside_child(job: Job, outcome: str) -> None:
    """The body of an outside run, in its own process: what it gives (the record, or the error) goes to
    ``outcome``; ``sys.exit`` by the algorithm leaves nothing there."""
    from llm_cmdp_env.common.atomic_io import write_json_atomic

    try:
        res = _train_and_evaluate_outside(job)
    except Exception as e:  # the algorithm's failure, reported by the parent as one error naming the run
        write_json_atomic(outcome, {"error": str(e), "kind": type(e).__name__})
        raise
    write_json_atomic(outcome, {"record": res.to_dict()})


def _train_and_evaluate_outside(job: Job) -> RunRecord:
    import torch

    from llm_cmdp_agents.experiments.plan import code_version, machine, resolved
    from llm_cmdp_agents.experiments.records import PerProblem, RunRecord, write_record
    from llm_cmdp_agents.run.build import make_env, make_eval_env
    from llm_cmdp_agents.run.config import EnvConfig, EvalConfig, RunConfig, TrainConfig
    from llm_cmdp_agents.run.evaluate import evaluate_policy

    torch.set_num_threads(job.threads)
    st = job.settings
    spec = st["outside"]["algo"]
    fn = resolve_algo(spec)
    train = TrainConfig.from_dict({**st["train"], "seed": job.seed})
    run = RunConfig(EnvConfig(**st["env"]), train=train,
                    eval=EvalConfig(n=job.n, split=job.split, batch_size=job.batch_size))
    limit = ComputeLimit(train.updates * train.episodes_per_update, run.env.max_new_tokens)
    tally = {"resets": 0, "steps": 0, "episodes": 0}
    torch.manual_seed(job.seed)
    t0 = time.perf_counter()
    policy = fn(lambda: EpisodeCounter(make_env(run.env, run.env.split), tally), budget=job.budget,
                seed=job.seed, limit=limit, **st["outside"].get("options", {}))
    seconds = time.perf_counter() - t0
    act = _actor(policy, spec)
    eval_env = make_eval_env(run)
    t1 = time.perf_counter()
    if act is None:
        ev = evaluate_policy(policy, eval_env, job.n, batch_size=job.batch_size, per_problem=True)
    else:
        ev = evaluate_callable(act, eval_env, job.n)
    res = RunRecord(**job.key(), train_seconds=round(seconds, 2), eval_seconds=round(time.perf_counter() - t1, 2),
                    accuracy=ev["accuracy"], mean_cost=ev["mean_cost"], mean_length=ev["mean_length"],
                    per_problem=PerProblem.from_dict(ev["per_problem"]),
                    train_last={"episodes": tally["episodes"], "steps": tally["steps"],
                                "limit_episodes": limit.episodes, "over_limit": tally["episodes"] > limit.episodes},
                    outside=spec, eval_task=repr(eval_env.unwrapped.setup.task), fingerprint=job.fingerprint,
                    machine=machine(), code=code_version(), resolved=resolved(job))
    write_record(res, Path(job.run_dir) / "eval.json", job.archive)
    return res
