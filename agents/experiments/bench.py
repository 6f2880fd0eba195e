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

import dataclasses
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from llm_cmdp_env.common.atomic_io import write_json_atomic

if TYPE_CHECKING:
    from llm_cmdp_agents.experiments.records import Job, RunRecord

__all__ = ["ComputeLimit", "EpisodeCounter", "bench_config", "evaluate_callable", "resolve_algo", "run_outside_job",
           "write_bench_config"]


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
                 constraint: str = "none", options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A compare config with the outside algorithm added as a method (validated: the function must exist)."""
    from llm_cmdp_agents.experiments.plan import load_config

    resolve_algo(algo)
    cfg = load_config(config)
    name = name or algo.split(":")[1]
    if any(m["name"] == name for m in cfg["methods"]):
        raise ValueError(f"a method named {name!r} is already in the config: pass --name")
    cfg["methods"] = [*cfg["methods"], {"name": name, "constraint": constraint, "outside": algo,
                                        "grid": [{"options": dict(options or {})}]}]
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
    """Train and evaluate one run of an outside method (called by :func:`llm_cmdp_agents.experiments.compare.run_job`);
    writes and returns its ``eval.json`` record."""
    import torch

    from llm_cmdp_agents.experiments.plan import code_version, machine, resolved
    from llm_cmdp_agents.experiments.records import PerProblem, RunRecord, write_record
    from llm_cmdp_agents.run.build import make_env, make_eval_env
    from llm_cmdp_agents.run.config import EnvConfig, EvalConfig, RunConfig, TrainConfig
    from llm_cmdp_agents.run.evaluate import evaluate_policy

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
    if act is None:
        ev = evaluate_policy(policy, eval_env, job.n, batch_size=job.batch_size, per_problem=True)
    else:
        ev = evaluate_callable(act, eval_env, job.n)
    res = RunRecord(**job.key(), train_seconds=round(seconds, 2),
                    accuracy=ev["accuracy"], mean_cost=ev["mean_cost"], mean_length=ev["mean_length"],
                    per_problem=PerProblem.from_dict(ev["per_problem"]),
                    train_last={"episodes": tally["episodes"], "steps": tally["steps"],
                                "limit_episodes": limit.episodes},
                    outside=spec, eval_task=repr(eval_env.unwrapped.setup.task), fingerprint=job.fingerprint,
                    machine=machine(), code=code_version(), resolved=resolved(job))
    write_record(res, Path(job.run_dir) / "eval.json", job.archive)
    return res


def write_bench_config(cfg: dict[str, Any], out: Path) -> Path:
    """The config the benchmark ran (the compare config plus the outside method), beside its results."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench_config.json"
    write_json_atomic(path, cfg)
    return path
