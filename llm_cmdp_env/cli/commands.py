"""What the env's own ``llm-cmdp`` subcommands do (``demo``, ``zoo``, ``data``; parsers in :mod:`llm_cmdp_env.cli`),
and the thread and printing helpers that commands added by a package on top (the agent's) share."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["add_data_parser", "data", "default_threads", "demo", "print_result", "set_threads", "threads_option",
           "zoo_eval", "zoo_train"]


def default_threads() -> int:
    """The torch threads to use when none is asked for: the cores other processes leave free
    (:func:`llm_cmdp_env.common.threads.free_cores`), shared among the ranks ``torchrun`` started on this machine."""
    from llm_cmdp_env.common.threads import free_cores

    return max(1, free_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_threads(n: int) -> None:
    """Set torch's intra-op threads: ``n`` > 0 as given, 0 for :func:`default_threads`."""
    if n < 0:
        raise SystemExit(f"--threads must be >= 0, got {n}")
    import torch

    torch.set_num_threads(n or default_threads())


def threads_option(p: argparse.ArgumentParser) -> None:
    """The ``--threads N`` option of a command that runs models (set by :func:`llm_cmdp_env.cli.main`)."""
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads (default 0: the cores other processes leave free at start; "
                        "see docs/performance.md)")


def print_result(result: dict[str, Any], as_json: bool, width: int) -> None:
    """One JSON line (``--json``), or one right-aligned ``key: value`` line per entry."""
    if as_json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>{width}}: {v}")


# ---------------------------------------------------------------------------------------- env commands


def demo(args: argparse.Namespace) -> int:
    from llm_cmdp_env.cli.demo import run_demo

    run_demo(episodes=args.episodes, seed=args.seed, divergence=args.divergence,
             temperature=args.temperature, max_new_tokens=args.max_new_tokens, device=args.device)
    return 0


def zoo_eval(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.eval import evaluate as zoo_evaluate

    result = zoo_evaluate(n=args.n, device=args.device, batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens)
    print_result(result, args.json, width=20)
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
    except BrokenPipeError:  # the reader went away (| head): the command line ends quietly
        raise
    except (datasets.FetchError, OSError, ValueError) as e:  # OSError: FileNotFoundError, FileExistsError, ...
        print(f"llm-cmdp data {args.data_command}: {e}", file=sys.stderr)
        return 1
    for f in files:
        print(f"{f.status:>9}: {f.path} ({f.lines} lines)")
    return 0


def add_data_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    """The ``data`` subcommand's parser."""
    from llm_cmdp_env.data.folders import DATA_DIR_ENV, data_dir
    from llm_cmdp_env.data.registry import REGISTRY

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
