"""The ``llm-cmdp`` command line: ``demo`` (roll the shipped student out) and ``zoo eval``/``zoo train``."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _zoo_eval(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.eval import evaluate

    result = evaluate(n=args.n, device=args.device, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    return 0


def _zoo_train(args: argparse.Namespace) -> int:
    from llm_cmdp_env.zoo.train import main as train_main

    return train_main(args.train_args)


def _demo(args: argparse.Namespace) -> int:
    from llm_cmdp_env.demo import run_demo

    run_demo(episodes=args.episodes, seed=args.seed, divergence=args.divergence,
             temperature=args.temperature, max_new_tokens=args.max_new_tokens, device=args.device)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from llm_cmdp_env.divergences import DIVERGENCES

    p = argparse.ArgumentParser(prog="llm-cmdp", description="LLM distillation as a constrained MDP")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="roll the shipped student out in MathDistill-v0 and print each episode")
    demo.add_argument("--episodes", type=int, default=5)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--divergence", choices=sorted(DIVERGENCES), default="teacher_nll")
    demo.add_argument("--temperature", type=float, default=0.7)
    demo.add_argument("--max-new-tokens", type=int, default=96)
    demo.add_argument("--device", default="cpu")
    demo.set_defaults(func=_demo)

    zoo = sub.add_parser("zoo", help="the shipped teacher/student pair")
    zsub = zoo.add_subparsers(dest="zoo_command", required=True)
    ev = zsub.add_parser("eval", help="greedy accuracy of the shipped teacher and student on held-out problems")
    ev.add_argument("--n", type=int, default=500, help="number of held-out test-split problems")
    ev.add_argument("--json", action="store_true", help="print one JSON line")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--max-new-tokens", type=int, default=128)
    ev.set_defaults(func=_zoo_eval)
    tr = zsub.add_parser("train", help="retrain the shipped pair (arguments go to llm_cmdp_env.zoo.train)")
    tr.add_argument("train_args", nargs=argparse.REMAINDER)
    tr.set_defaults(func=_zoo_train)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``llm-cmdp`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
