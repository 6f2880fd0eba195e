"""The ``llm-cmdp`` command line.

The env's own commands, ``demo`` (roll the shipped student out), ``zoo eval``/``zoo train`` (the shipped pair) and
``data`` (datasets by name), and the commands of the packages installed on top, found through the
``llm_cmdp_env.commands`` entry point group: each entry point is a function ``add_commands(subparsers,
formatter)``. The agent (``llm_cmdp_agents.cli``) adds ``train``, ``eval``, ``compare``, ``bench`` and ``plot``
that way, so this package imports nothing of it. Every option has help text showing its default.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points

from llm_cmdp_env.cli import commands
from llm_cmdp_env.cli.commands import threads_option

__all__ = ["COMMANDS_GROUP", "build_parser", "command_plugins", "main", "run"]

#: The entry point group of packages that add ``llm-cmdp`` subcommands.
COMMANDS_GROUP = "llm_cmdp_env.commands"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help with wider columns (option help already states its default)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=110)


def command_plugins() -> list[Callable[[argparse._SubParsersAction, type], None]]:
    """The ``add_commands`` functions of the installed packages that add subcommands (entry point group
    :data:`COMMANDS_GROUP`), by entry point name. One that fails to load is left out with a warning."""
    out = []
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            out.append(ep.load())
        except ImportError as e:
            warnings.warn(f"llm-cmdp: the commands of {ep.value} are unavailable ({e})", stacklevel=2)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand: the env's and those the installed packages add (:func:`command_plugins`)."""
    from llm_cmdp_env.divergences import DIVERGENCES

    divs = sorted(DIVERGENCES)
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
    threads_option(demo)
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
    threads_option(ev)
    ev.set_defaults(func=commands.zoo_eval)
    tr = zsub.add_parser("train", help="retrain the shipped pair (arguments go to llm_cmdp_env.zoo.train; see "
                                       "`llm-cmdp zoo train --help`)", formatter_class=_Formatter, add_help=False)
    tr.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments of python -m llm_cmdp_env.zoo.train")
    tr.set_defaults(func=commands.zoo_train)

    for add_commands in command_plugins():
        add_commands(sub, _Formatter)

    commands.add_data_parser(sub, _Formatter)
    return p


_NEGATIVE = re.compile(r"^-(?:inf(?:inity)?|nan|\d|\.\d)", re.IGNORECASE)


def join_negative_values(argv: list[str]) -> list[str]:
    """``--budget -inf`` as ``--budget=-inf``: argparse takes a value that starts with ``-`` (``-inf``, ``-1e3``) for
    an option and fails with "expected one argument"; joined, the value reaches the option's own check."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and out[-1] != "--" and _NEGATIVE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llm-cmdp`` console script."""
    argv = join_negative_values(sys.argv[1:] if argv is None else list(argv))
    command = next((a for a in argv if not a.startswith("-")), None)
    if command != "data":  # models and datasets never download by surprise; `data fetch` is the one way. Set
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub (read at import)
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None) is not None and not getattr(args, "own_threads", False):
        commands.set_threads(args.threads)  # `train` sets its own (recorded in its run folder)
    return int(args.func(args) or 0)


def run() -> None:
    """The console script ``llm-cmdp``: :func:`main`, with a bad setting, a missing file, a full disk, a folder in use
    or a failed step reported as one ``llm-cmdp: error: ...`` line (exit status 2) instead of a traceback
    (``LLM_CMDP_TRACEBACK=1`` shows it). A reader that closes the output early (``llm-cmdp ... | head``) ends the
    command quietly with exit status 1 (Python's recommended handling of a broken pipe: stdout is pointed at
    /dev/null so that the exit's final flush cannot fail too)."""
    try:
        code = main()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except (ValueError, TypeError, OSError, IndexError, RuntimeError) as e:
        if os.environ.get("LLM_CMDP_TRACEBACK", "").strip() not in ("", "0"):
            raise
        print(f"llm-cmdp: error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    run()
