"""The ``llm-cmdp`` command line.

``demo`` (roll the shipped student out), ``zoo eval``/``zoo train`` (the shipped pair), ``data`` (datasets by
name), and the agent's ``train``, ``eval``, ``compare`` and ``plot`` (imported lazily from ``llm_cmdp_agents``).
Every option has help text showing its default (``llm-cmdp train --help``).
"""

from __future__ import annotations

import argparse
import os
import sys

from llm_cmdp_env.cli import commands
from llm_cmdp_env.cli.run_options import add_options, env_options, eval_options, policy_options, train_options

__all__ = ["build_parser", "main", "run"]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with wider columns (option help already states its default)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=110)


def _run_defaults() -> dict:
    from llm_cmdp_agents.config import RunConfig

    return RunConfig().to_dict()


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads (default 0: the cores other processes leave free at start; "
                        "see docs/performance.md)")


def _train_threads(text: str) -> int | str:
    if text == "adaptive":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count >= 0 or 'adaptive', got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    from llm_cmdp_env.divergences import DIVERGENCES
    from llm_cmdp_env.wrappers.factory import CONSTRAINTS

    divs, cons = sorted(DIVERGENCES), list(CONSTRAINTS)
    defaults = _run_defaults()
    p = argparse.ArgumentParser(prog="llm-cmdp", description="LLM distillation as a constrained MDP",
                                formatter_class=_Formatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def parser(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)

    demo = parser("demo", "roll the shipped student out in MathDistill-v0 and print each episode")
    demo.add_argument("--episodes", type=int, default=5, help="episodes to print (default: 5)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    demo.add_argument("--divergence", choices=divs, default="teacher_nll", help="per-token cost (default: teacher_nll)")
    demo.add_argument("--temperature", type=float, default=0.7, help="sampling temperature, 0 = greedy (default: 0.7)")
    demo.add_argument("--max-new-tokens", type=int, default=160,
                      help="episode length limit; the shipped task's solutions need up to ~130 (default: 160)")
    demo.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    _threads_option(demo)
    demo.set_defaults(func=commands.demo)

    zoo = parser("zoo", "the shipped teacher/student pair")
    zsub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    ev = zsub.add_parser("eval", help="greedy accuracy of the shipped teacher and student on held-out problems",
                         formatter_class=_Formatter)
    ev.add_argument("--n", type=int, default=500, help="number of held-out test-split problems (default: 500)")
    ev.add_argument("--json", action="store_true", help="print one JSON line")
    ev.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ev.add_argument("--batch-size", type=int, default=64, help="decoding batch size (default: 64)")
    ev.add_argument("--max-new-tokens", type=int, default=224,
                    help="per-completion token cap (default: 224; the shortcut student's solutions take up to ~200)")
    _threads_option(ev)
    ev.set_defaults(func=commands.zoo_eval)
    tr = zsub.add_parser("train", help="retrain the shipped pair (arguments go to llm_cmdp_env.zoo.train; see "
                                       "`llm-cmdp zoo train --help`)", formatter_class=_Formatter, add_help=False)
    tr.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments of python -m llm_cmdp_env.zoo.train")
    tr.set_defaults(func=commands.zoo_train)

    run_opts = [*env_options(divs, cons), *policy_options(), *train_options(), *eval_options("eval-")]
    t = parser("train", "train a student with PPO/GRPO under a constraint; writes a run folder (docs/agent.md)")
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
    t.add_argument("--threads", type=_train_threads, default=0, metavar="N",
                   help="torch CPU threads, fixed for the whole run and recorded in config.json (--resume reuses "
                        "the recorded count, so a resumed run is bit for bit the uninterrupted one). 0: the cores "
                        "other processes leave free at start; 'adaptive': re-fitted to the load before every "
                        "update (faster on a shared machine, not reproducible; docs/reliability.md) (default: 0)")
    t.add_argument("--force", action="store_true",
                   help="take over a run folder whose lock was left by a process on another host (default: off)")
    t.set_defaults(func=commands.train, run_options=run_opts, own_threads=True)

    e = parser("eval", "evaluate a run folder (with its own settings) or a model on test problems")
    e.add_argument("target", metavar="RUN_OR_MODEL",
                   help="a run folder, a model folder, zoo:student/zoo:teacher, or a Hugging Face id in the cache")
    eval_opts = [*env_options(divs, cons), *eval_options("")]
    add_options(e, eval_opts, defaults)
    e.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default: 0)")
    e.add_argument("--temperature", type=float, default=0.0, help="0: greedy decoding (default: 0)")
    e.add_argument("--device", default="auto", help="device of the policy (default: auto)")
    e.add_argument("--json", action="store_true", help="print one JSON line")
    _threads_option(e)
    e.set_defaults(func=commands.evaluate, run_options=eval_opts)

    c = parser("compare", "the method comparison protocol: grids chosen on validation, seeds x budgets on test, "
               "records, tables with bootstrap intervals, a Pareto plot")
    c.add_argument("--config", required=True, help="JSON config (see benchmarks/compare_shortcut.json and "
                   "llm_cmdp_agents/compare.py)")
    c.add_argument("--out", default=None, help="output folder (default: the config's out)")
    c.add_argument("--phase", default="all", choices=("validation", "test", "report", "all"),
                   help="which phase to run (default: all, in order; finished runs are skipped)")
    c.add_argument("--part", default=None, metavar="K/N",
                   help="run only every N-th job of the phase, from the K-th (split a phase into shorter pieces)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    _threads_option(c)
    c.set_defaults(func=commands.compare)

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
    b.add_argument("--phase", default="all", choices=("validation", "test", "report", "all"),
                   help="which phase to run (default: all; finished runs are skipped)")
    b.add_argument("--part", default=None, metavar="K/N", help="run only every N-th job of the phase")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    _threads_option(b)
    b.set_defaults(func=commands.bench)

    pl = parser("plot", "draw training curves of a run folder (or overlay several runs) as a PNG")
    pl.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) written by `llm-cmdp train`")
    pl.add_argument("--out", default=None, metavar="FILE",
                    help="PNG to write (default: RUN/curves.png for one run, curves.png here for several)")
    pl.add_argument("--smooth", type=int, default=1, metavar="N",
                    help="moving-average window over updates (default: 1, raw curves)")
    pl.add_argument("--title", default=None, help="figure title (default: the run's folder and settings)")
    pl.set_defaults(func=commands.plot)

    commands.add_data_parser(sub, _Formatter)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llm-cmdp`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command != "data":  # models and datasets never download by surprise; `data fetch` is the one way. Set
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub (read at import)
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None) is not None and not getattr(args, "own_threads", False):
        commands.set_threads(args.threads)  # `train` sets its own (recorded in its run folder)
    return int(args.func(args) or 0)


def run() -> None:
    """The console script ``llm-cmdp``: :func:`main`, with a bad setting, a missing file or an existing run folder
    reported as one ``llm-cmdp: error: ...`` line (exit status 2) instead of a traceback."""
    try:
        code = main()
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, IndexError) as e:
        print(f"llm-cmdp: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    run()
