"""The agent's ``llm-cmdp`` commands: ``train``, ``eval``, ``compare``, ``bench`` and ``plot``.

The command line itself lives in the env package (:mod:`llm_cmdp_env.cli`, with ``demo``, ``zoo`` and ``data``),
which imports nothing of this package: it finds :func:`add_commands` through the ``llm_cmdp_env.commands`` entry
point of pyproject.toml and calls it to add these subcommands. Every option has help text showing its default
(``llm-cmdp train --help``); the heavy imports (torch, the models) happen inside the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from llm_cmdp_agents.cli.options import (
    OPTION_FLAGS,
    add_options,
    config_overrides,
    env_options,
    eval_options,
    merge,
    policy_options,
    train_options,
)
from llm_cmdp_env.cli import commands as env_commands
from llm_cmdp_env.cli.commands import print_result, threads_option

__all__ = ["add_commands", "bench", "compare", "evaluate", "plot", "train"]


def _run_defaults() -> dict:
    from llm_cmdp_agents.run.config import RunConfig

    return RunConfig().to_dict()


def _thread_count(text: str) -> int | str:
    if text == "adaptive":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count >= 0 or 'adaptive', got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def add_commands(sub: argparse._SubParsersAction, formatter: type) -> None:
    """Add ``train``, ``eval``, ``compare``, ``bench`` and ``plot`` to the ``llm-cmdp`` parser (the entry point
    :mod:`llm_cmdp_env.cli` calls)."""
    from llm_cmdp_env.divergences import DIVERGENCES
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS

    divs, cons = sorted(DIVERGENCES), list(CONSTRAINTS)
    defaults = _run_defaults()

    def parser(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=formatter)

    run_opts = [*env_options(divs, cons), *policy_options(), *train_options(), *eval_options("eval-")]
    t = parser("train", "train a student with a registered algorithm (--algo) under a constraint; writes a run folder "
               "(docs/agent.md)")
    add_options(t, run_opts, defaults)
    t.add_argument("--config", metavar="FILE", default=None,
                   help="JSON with env/policy/train/eval sections (the format of a run's config.json and of "
                        "`compare`); flags given on the command line override it")
    t.add_argument("--print-config", action="store_true", help="print the resolved settings as JSON and exit")
    t.add_argument("--out", default=None, help="run folder (default: runs/<constraint>-<algo>-<time>)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest intact checkpoint, with its stored settings "
                        "(--updates may be raised; --eval-* may change, then 'before' is re-evaluated)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print one JSON line with before/after evaluations")
    t.add_argument("--wandb", nargs="?", const="llm-cmdp", default=None, metavar="PROJECT",
                   help="also log to Weights & Biases under PROJECT (bare --wandb: llm-cmdp; needs pip install "
                        "wandb; --resume continues the same W&B run) (default: off)")
    t.add_argument("--threads", type=_thread_count, default=0, metavar="N",
                   help="torch CPU threads, fixed for the whole run and recorded in config.json (--resume reuses "
                        "the recorded count, so a resumed run is bit for bit the uninterrupted one). 0: the cores "
                        "other processes leave free at start; 'adaptive': re-fitted to the load before every "
                        "update (faster on a shared machine, not reproducible; docs/reliability.md) (default: 0)")
    t.add_argument("--force", action="store_true",
                   help="take over a run folder whose lock was left by a process on another host (default: off)")
    t.set_defaults(func=train, run_options=run_opts, own_threads=True)

    e = parser("eval", "evaluate a run folder (with its own settings) or a model on test problems")
    e.add_argument("target", metavar="RUN_OR_MODEL",
                   help="a run folder, a model folder, zoo:student/zoo:teacher, or a Hugging Face id in the cache")
    eval_opts = [*env_options(divs, cons), *eval_options("")]
    add_options(e, eval_opts, defaults)
    e.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default: 0)")
    e.add_argument("--temperature", type=float, default=0.0, help="0: greedy decoding (default: 0)")
    e.add_argument("--device", default="auto", help="device of the policy (default: auto)")
    e.add_argument("--json", action="store_true", help="print one JSON line")
    threads_option(e)
    e.set_defaults(func=evaluate, run_options=eval_opts)

    c = parser("compare", "the method comparison protocol: grids chosen on validation, seeds x budgets on test, "
               "records, tables with bootstrap intervals, a Pareto plot")
    c.add_argument("--config", required=True, help="JSON config (see benchmarks/compare_shortcut.json and "
                   "llm_cmdp_agents/compare.py)")
    c.add_argument("--out", default=None, help="output folder (default: the config's out)")
    c.add_argument("--phase", default="all", choices=("validation", "test", "report", "all", "status"),
                   help="which phase to run (default: all, in order; finished runs are skipped; status: what is "
                        "finished so far, training nothing)")
    c.add_argument("--part", default=None, metavar="K/N",
                   help="run only every N-th job of the phase, from the K-th (split a phase into shorter pieces)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument("--force", action="store_true", help="take over an output or archive folder whose lock was left "
                   "by a process on another host (default: off)")
    threads_option(c)
    c.set_defaults(func=compare)

    b = parser("bench", "an outside algorithm (package.module:function) under the compare protocol: the same "
               "splits, budgets, seeds, evaluation and paired intervals, one more row in the table and plot "
               "(docs/benchmark.md)")
    b.add_argument("--config", required=True, help="the compare config (see benchmarks/compare_shortcut.json)")
    b.add_argument("--algo", required=True, metavar="MODULE:FUNCTION",
                   help="function(make_env, budget=, seed=, limit=, **options) returning a policy (docs/benchmark.md)")
    b.add_argument("--name", default=None, help="the method's name in the table (default: the function's name)")
    b.add_argument("--constraint", default="none", choices=cons,
                   help="the wrapper stack of the env make_env() builds (default: none: raw reward, cost in "
                        "info['cost'])")
    b.add_argument("--options", default=None, metavar="JSON", help="JSON object of keyword arguments for the "
                   "function (default: none)")
    b.add_argument("--out", default=None, help="output folder (default: the config's out)")
    b.add_argument("--phase", default="all", choices=("validation", "test", "report", "all", "status"),
                   help="which phase to run (default: all; finished runs are skipped; status: what is finished so "
                        "far, training nothing)")
    b.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="stop a run of the algorithm that takes longer, with an error (finished runs are kept) "
                        "(default: none)")
    b.add_argument("--part", default=None, metavar="K/N", help="run only every N-th job of the phase")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--force", action="store_true", help="take over an output or archive folder whose lock was left "
                   "by a process on another host (default: off)")
    threads_option(b)
    b.set_defaults(func=bench)

    pl = parser("plot", "draw training curves of a run folder (or overlay several runs) as a PNG")
    pl.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) written by `llm-cmdp train`")
    pl.add_argument("--out", default=None, metavar="FILE",
                    help="PNG to write (default: RUN/curves.png for one run, curves.png here for several)")
    pl.add_argument("--smooth", type=int, default=1, metavar="N",
                    help="moving-average window over updates (default: 1, raw curves)")
    pl.add_argument("--title", default=None, help="figure title (default: the run's folder and settings)")
    pl.set_defaults(func=plot)



def _check_constraint_options(env: dict[str, Any]) -> None:
    """The options the constraint's rule needs are given, and a flag of a rule's option (``--lam``) is given only
    with a constraint whose rule takes it (read from the registry, :attr:`ConstraintSpec.needs`); ``env`` is the
    settings' ``env`` section, before it is built into a config."""
    from llm_cmdp_env.wrappers import REGISTRY, constraint_spec

    name, given = env.get("constraint", "none"), env.get("constraint_kwargs") or {}
    needs = constraint_spec(name).needs
    for key in needs:
        if key not in given:
            flag = OPTION_FLAGS.get(key, f"{key!r} in --constraint-kwargs")
            raise SystemExit(f"--constraint {name} needs {flag}")
    for key, flag in OPTION_FLAGS.items():
        if key in given and key not in needs:
            users = [n for n, spec in REGISTRY.items() if key in spec.needs]
            raise SystemExit(f"{flag} applies to --constraint {' / '.join(users)} only")


def _run_config(args: argparse.Namespace) -> Any:
    """The settings of ``llm-cmdp train``: defaults, then ``--config FILE``, then the flags given."""
    from llm_cmdp_agents.run.config import RunConfig

    base = RunConfig.defaults()  # dependent defaults (GRPO's group size) are applied after every setting is read
    if args.config:
        try:
            file_cfg = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"--config {args.config}: {e}") from None
        base = merge(base, {k: v for k, v in file_cfg.items() if k in RunConfig.SECTIONS})
        unknown = RunConfig.unknown_sections(file_cfg)
        if unknown:
            raise SystemExit(f"--config {args.config}: unknown sections {unknown}; "
                             f"accepted: {list(RunConfig.SECTIONS)}")
    given = config_overrides(args, args.run_options)
    merged = merge(base, given)
    _check_train_options(merged["train"].get("algo", "ppo"), given.get("train", {}))
    _check_constraint_options(merged["env"])
    return RunConfig.from_dict(merged)


def _check_train_options(algo: str, given: dict[str, Any]) -> None:
    """A flag of an algorithm's option (``--vf-coef``) is given only with an algorithm that has it (read from the
    registry)."""
    from dataclasses import fields

    from llm_cmdp_agents.algos.config import owners
    from llm_cmdp_agents.algos.registry import get_algorithm

    own = {f.name for f in fields(get_algorithm(algo).config)}
    for key in given:
        if key not in own:
            flag = "--" + key.replace("_", "-")
            raise SystemExit(f"{flag} applies to --algo {' / '.join(owners(key))} only (not {algo})")


def _train_threads(args: argparse.Namespace) -> int | str:
    """Set the run's torch threads once and return what config.json records: ``--threads N`` as given; the
    default 0 reuses a resumed run's recorded count, else the cores free now; ``adaptive`` follows the load."""
    import torch

    from llm_cmdp_agents.run.folder import recorded_threads

    asked = args.threads
    stored = recorded_threads(args.out) if args.resume else None
    if asked == 0 and stored is not None:
        asked = stored
    elif args.resume and stored is not None and asked != stored:
        print(f"note: {args.out} was trained with --threads {stored}; resuming with {asked} gives other rounding "
              "than the uninterrupted run", file=sys.stderr)
    torch.set_num_threads(env_commands.default_threads() if asked in (0, "adaptive") else asked)
    return asked if asked == "adaptive" else torch.get_num_threads()


def train(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.engine.distributed import init_world
    from llm_cmdp_agents.run.folder import resume_config, train_run

    if args.resume:
        if not args.out:
            raise SystemExit("--resume needs --out RUN (the run folder to continue)")
        if args.config:
            raise SystemExit("--resume continues a run with its stored settings: drop --config")
        cfg = resume_config(args.out, config_overrides(args, args.run_options))
    else:
        cfg = _run_config(args)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    world = init_world(cfg.policy.device)  # a world of one unless started by torchrun
    out = args.out or os.path.join("runs", f"{cfg.env.constraint}-{cfg.train.algo}-{time.strftime('%Y%m%d-%H%M%S')}")
    out = world.broadcast(out)  # every rank writes (rank 0) and reads the same folder
    wandb: dict[str, Any] | bool = False
    if args.wandb is not None:
        from llm_cmdp_agents.run.log import require_wandb

        require_wandb()  # fail now, not after loading the models and the before-training evaluation
        wandb = {"project": args.wandb}
    threads = _train_threads(args)
    res = train_run(out, cfg, resume=args.resume, progress=not args.no_progress, wandb=wandb,
                    adaptive_threads=threads == "adaptive", world=world,
                    out=(lambda m: None) if args.json else print, force=args.force, threads=threads)
    if world.is_main:
        if args.json:
            print(json.dumps({k: res[k] for k in ("before", "after", "train_seconds", "updates", "run_dir")}))
        else:
            print(f"run folder: {out}   (curves: {Path(out) / 'curves.png'}; redraw or compare runs with "
                  "llm-cmdp plot)")
    return 130 if res["interrupted"] else 0


def evaluate(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.engine.distributed import init_world
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_agents.run.build import conditions_on_budget, make_eval_env
    from llm_cmdp_agents.run.config import RunConfig
    from llm_cmdp_agents.run.evaluate import check_eval_size, evaluate_policy
    from llm_cmdp_agents.run.folder import is_run_dir, load_run_policy, read_run_config

    world = init_world(args.device)  # torchrun: the batches are spread over the ranks, the result is the same
    given = config_overrides(args, args.run_options)
    if "dataset" in given.get("env", {}):  # --dataset: evaluate on it (not on a run's own evaluation dataset)
        given.setdefault("eval", {})["dataset"] = None
    if is_run_dir(args.target):  # the run's own env and evaluation settings, overridden by the flags given
        cfg = RunConfig.from_dict(merge(read_run_config(args.target).to_dict(), given))
        policy = load_run_policy(args.target, device=args.device)
    else:
        settings = merge(RunConfig.defaults(), given)
        _check_constraint_options(settings["env"])
        cfg = RunConfig.from_dict(settings)
        policy = LLMPolicy.from_pretrained(args.target, device=args.device, value_head=False,
                                           conditioning=conditions_on_budget(cfg.policy, cfg.env.constraint))
    ev = cfg.eval
    env = make_eval_env(cfg)
    check_eval_size(env, ev.n, flag="--n")
    res = evaluate_policy(policy, env, ev.n, batch_size=ev.batch_size,
                          greedy=args.temperature == 0, temperature=args.temperature or 1.0, seed=args.seed,
                          world=world)
    res.update(budget=cfg.env.budget, constraint=cfg.env.constraint, split=ev.split,
               weights=getattr(policy, "weights_source", str(args.target)))
    if world.is_main:
        print_result(res, args.json, width=24)
    return 0


def _print_compare(res: dict[str, Any], phase: str) -> int:
    """What ``compare`` and ``bench`` print: the runs done, or where the report went and its tables."""
    if "status" in res:
        from llm_cmdp_agents.experiments.report import status_text

        print("\n\n".join(status_text(st) for st in res["status"]))
        return 0
    if "paths" not in res:
        print(f"{phase}: {len(res['runs'])} runs done")
        return 0
    paths = res["paths"]
    print(f"records: {paths['records']}\nresults: {paths['json']}\ntable:   {paths['markdown']}\n"
          f"plot:    {paths['plot']}")
    print(res["markdown"])
    return 0


def _sweep(config: Any, args: argparse.Namespace, config_file: str | None = None) -> int:
    """Run a comparison (``compare``, ``bench``) and print what it gave; a Ctrl-C or SIGTERM ends it with one line
    saying what is kept, exit status 130."""
    from llm_cmdp_agents.experiments.compare import run_compare
    from llm_cmdp_agents.experiments.stops import SweepInterrupted

    try:
        res = run_compare(config, out_dir=args.out, progress=not args.no_progress, phase=args.phase, part=args.part,
                          force=getattr(args, "force", False), config_file=config_file)
    except SweepInterrupted as e:
        print(f"llm-cmdp {args.command}: {e}", file=sys.stderr)
        return 130
    return _print_compare(res, args.phase)


def compare(args: argparse.Namespace) -> int:
    return _sweep(args.config, args)


def bench(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.experiments.bench import bench_config

    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--options is not valid JSON ({e})") from None
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON object, e.g. '{\"lr\": 0.01}'")
    cfg = bench_config(args.config, args.algo, name=args.name, constraint=args.constraint, options=options,
                       time_limit_minutes=args.time_limit)
    return _sweep(cfg, args, config_file="bench_config.json")


def plot(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.run.plots import plot_command

    return plot_command(args)
