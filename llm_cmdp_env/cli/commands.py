"""What each ``llm-cmdp`` subcommand does (parsers in :mod:`llm_cmdp_env.cli`). The agent's commands import
``llm_cmdp_agents`` lazily, so ``demo``, ``zoo`` and ``data`` stay light."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from llm_cmdp_env.cli.run_options import OPTION_FLAGS, config_overrides, merge

__all__ = ["add_data_parser", "bench", "compare", "data", "default_threads", "demo", "evaluate", "plot", "set_threads",
           "train", "zoo_eval", "zoo_train"]


def default_threads() -> int:
    """The torch threads to use when none is asked for: the cores other processes leave free
    (:func:`llm_cmdp_env.threads.free_cores`), shared among the ranks ``torchrun`` started on this machine."""
    from llm_cmdp_env.threads import free_cores

    return max(1, free_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_threads(n: int) -> None:
    """Set torch's intra-op threads: ``n`` > 0 as given, 0 for :func:`default_threads`."""
    if n < 0:
        raise SystemExit(f"--threads must be >= 0, got {n}")
    import torch

    torch.set_num_threads(n or default_threads())


def _print_result(result: dict[str, Any], as_json: bool, width: int) -> None:
    """One JSON line (``--json``), or one right-aligned ``key: value`` line per entry."""
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>{width}}: {v}")


# ---------------------------------------------------------------------------------------- env commands


def demo(args: argparse.Namespace) -> int:
    from llm_cmdp_env.demo import run_demo

    run_demo(episodes=args.episodes, seed=args.seed, divergence=args.divergence,
             temperature=args.temperature, max_new_tokens=args.max_new_tokens, device=args.device)
    return 0


def zoo_eval(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.eval import evaluate as zoo_evaluate

    result = zoo_evaluate(n=args.n, device=args.device, batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens)
    _print_result(result, args.json, width=20)
    return 0


def zoo_train(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.train import main as train_main

    return train_main(args.train_args)


def data(args: argparse.Namespace) -> int:
    """``llm-cmdp data list|fetch|import``: a clear message and exit status 1 on failure, never a traceback."""
    from llm_cmdp_env import data as datasets

    try:
        if args.data_command == "list":
            print("data folders searched, in order (fetch and import write into the first one):")
            for d, origin in datasets.search_dirs():
                print(f"  {d}   ({origin}){'' if d.is_dir() else '   [does not exist yet]'}")
            print("datasets:")
            for f in datasets.list_data():
                if f.path is None:
                    where = f"     missing  (llm-cmdp data fetch {f.name}, or llm-cmdp data import {f.name} PATH)"
                else:
                    where = f"{f.lines:>6} lines  {f.path}"
                print(f"  {f.name:<8} {f.split:<6} {where}")
            return 0
        if args.data_command == "fetch":
            files = datasets.fetch_dataset(args.name, split=args.split, force=args.force)
        else:
            files = datasets.import_dataset(args.name, args.path, split=args.split, force=args.force)
    except (datasets.FetchError, OSError, ValueError) as e:  # OSError: FileNotFoundError, FileExistsError, ...
        print(f"llm-cmdp data {args.data_command}: {e}", file=sys.stderr)
        return 1
    for f in files:
        print(f"{f.status:>9}: {f.path} ({f.lines} lines)")
    return 0


def add_data_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    """The ``data`` subcommand's parser."""
    from llm_cmdp_env.data import DATA_DIR_ENV, REGISTRY, data_dir

    names = sorted(REGISTRY)
    d = sub.add_parser("data", help="named datasets (gsm8k, math500, your own): where they are looked for, fetch, "
                                    "import",
                       description=f"Datasets by name live in <data dir>/<name>/<split>.jsonl. The data dir is "
                                   f"${DATA_DIR_ENV}, else the user cache folder (now: {data_dir()}).",
                       formatter_class=formatter)
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    dsub.add_parser("list", help="where datasets are looked for and which files exist, with line counts")
    f = dsub.add_parser("fetch", help="download a dataset from the Hugging Face Hub (needs network and `datasets`)")
    i = dsub.add_parser("import", help="copy a jsonl file or a folder of <split>.jsonl files into the data folder")
    f.add_argument("name", choices=names, help="dataset name")
    i.add_argument("name", metavar="NAME", help=f"{', '.join(names)}, or a name of your own (a local dataset, "
                                                "then usable as --dataset NAME)")
    i.add_argument("path", metavar="PATH", help="a .jsonl file (its split is its name, e.g. test.jsonl, or --split) "
                                                "or a folder holding <split>.jsonl files")
    f.add_argument("--split", default=None, help="only this split (default: every split of the dataset)")
    i.add_argument("--split", default=None, help="the split PATH is, or the one file of the folder PATH to import "
                                                 "(default: the file's name / every split file in the folder)")
    for q in (f, i):
        q.add_argument("--force", action="store_true",
                       help="replace an existing file whose content differs (default: refuse)")
    d.set_defaults(func=data)


# -------------------------------------------------------------------------------------- agent commands


def _check_constraint_options(cfg: Any) -> None:
    """The options the constraint's rule needs are given, and a flag of a rule's option (``--lam``) is given only
    with a constraint whose rule takes it (read from the registry, :attr:`ConstraintSpec.needs`)."""
    from llm_cmdp_env.wrappers import REGISTRY, constraint_spec

    name, given = cfg.env.constraint, cfg.env.constraint_kwargs
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
    from llm_cmdp_agents.config import RunConfig

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
    cfg = RunConfig.from_dict(merge(base, config_overrides(args, args.run_options)))
    _check_constraint_options(cfg)
    return cfg


def _train_threads(args: argparse.Namespace) -> int | str:
    """Set the run's torch threads once and return what config.json records: ``--threads N`` as given; the
    default 0 reuses a resumed run's recorded count, else the cores free now; ``adaptive`` follows the load."""
    import torch

    from llm_cmdp_agents.runs import recorded_threads

    asked = args.threads
    stored = recorded_threads(args.out) if args.resume else None
    if asked == 0 and stored is not None:
        asked = stored
    elif args.resume and stored is not None and asked != stored:
        print(f"note: {args.out} was trained with --threads {stored}; resuming with {asked} gives other rounding "
              "than the uninterrupted run", file=sys.stderr)
    torch.set_num_threads(default_threads() if asked in (0, "adaptive") else asked)
    return asked if asked == "adaptive" else torch.get_num_threads()


def train(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.distributed import init_world
    from llm_cmdp_agents.runs import resume_config, train_run

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
        from llm_cmdp_agents.run_log import require_wandb

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
    from llm_cmdp_agents.config import RunConfig
    from llm_cmdp_agents.distributed import init_world
    from llm_cmdp_agents.evaluate import check_eval_size, evaluate_policy
    from llm_cmdp_agents.policy import LLMPolicy
    from llm_cmdp_agents.runs import conditions_on_budget, is_run_dir, load_run_policy, make_eval_env, read_run_config

    world = init_world(args.device)  # torchrun: the batches are spread over the ranks, the result is the same
    given = config_overrides(args, args.run_options)
    if "dataset" in given.get("env", {}):  # --dataset: evaluate on it (not on a run's own evaluation dataset)
        given.setdefault("eval", {})["dataset"] = None
    if is_run_dir(args.target):  # the run's own env and evaluation settings, overridden by the flags given
        cfg = RunConfig.from_dict(merge(read_run_config(args.target).to_dict(), given))
        policy = load_run_policy(args.target, device=args.device)
    else:
        cfg = RunConfig.from_dict(merge(RunConfig.defaults(), given))
        _check_constraint_options(cfg)
        policy = LLMPolicy.from_pretrained(args.target, device=args.device, value_head=False,
                                           budget_conditioning=conditions_on_budget(cfg.policy, cfg.env.constraint))
    ev = cfg.eval
    env = make_eval_env(cfg)
    check_eval_size(env, ev.n, flag="--n")
    res = evaluate_policy(policy, env, ev.n, batch_size=ev.batch_size,
                          greedy=args.temperature == 0, temperature=args.temperature or 1.0, seed=args.seed,
                          world=world)
    res.update(budget=cfg.env.budget, constraint=cfg.env.constraint, split=ev.split,
               weights=getattr(policy, "weights_source", str(args.target)))
    if world.is_main:
        _print_result(res, args.json, width=24)
    return 0


def _print_compare(res: dict[str, Any], phase: str) -> int:
    """What ``compare`` and ``bench`` print: the runs done, or where the report went and its tables."""
    if "paths" not in res:
        print(f"{phase}: {len(res['runs'])} runs done")
        return 0
    paths = res["paths"]
    print(f"records: {paths['records']}\nresults: {paths['json']}\ntable:   {paths['markdown']}\n"
          f"plot:    {paths['plot']}")
    print(res["markdown"])
    return 0


def compare(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.compare import run_compare

    res = run_compare(args.config, out_dir=args.out, progress=not args.no_progress, phase=args.phase,
                      part=args.part)
    return _print_compare(res, args.phase)


def bench(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.bench import bench_config, write_bench_config
    from llm_cmdp_agents.compare import run_compare

    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--options is not valid JSON ({e})") from None
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON object, e.g. '{\"lr\": 0.01}'")
    cfg = bench_config(args.config, args.algo, name=args.name, constraint=args.constraint, options=options)
    out = Path(args.out or cfg.get("out", "runs/compare"))
    write_bench_config(cfg, out)
    res = run_compare(cfg, out_dir=out, progress=not args.no_progress, phase=args.phase, part=args.part)
    return _print_compare(res, args.phase)


def plot(args: argparse.Namespace) -> int:
    from llm_cmdp_agents.plots import plot_command

    return plot_command(args)
