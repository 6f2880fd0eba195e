"""How many updates a method of a compare config needs to move: its greedy accuracy and mean cost on the
validation split every ``--every`` updates, under exactly the training the config gives it (the protocol's
``settings``), from the untrained model to ``--updates``.

    python benchmarks/learning_curve.py --config benchmarks/compare_binding.json --method "task only" --grid 1 \
        --every 10 --json docs/data/learning_curve_task_only.json --plot docs/learning_curve_task_only.png

It answers the protocol's "long enough?" question: the run length of the comparison should exceed
the number of updates task-only RL needs to gain the accuracy the constrained methods are meant to trade
against cost. Shows a progress bar; the run folder (``--out``) keeps a checkpoint after every evaluation, so a
stopped run continues where it stopped when started again with the same ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from llm_cmdp_env.common.atomic_io import write_json_atomic, write_result_json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="a compare config (llm-cmdp compare)")
    p.add_argument("--method", default="task only", help="the method's name in the config")
    p.add_argument("--grid", type=int, default=0, help="its grid point (index)")
    p.add_argument("--budget", type=float, default=None, help="the training budget d (budget-reading methods)")
    p.add_argument("--updates", type=int, default=None, help="default: the config's train.updates")
    p.add_argument("--every", type=int, default=10, help="evaluate every this many updates (default 10)")
    p.add_argument("--n", type=int, default=None, help="validation problems (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="default: the config's first validation seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/learning_curve"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from llm_cmdp_agents.experiments.plan import budget_free, load_config, settings
    from llm_cmdp_agents.run.build import make_env, make_eval_env, make_policy
    from llm_cmdp_agents.run.config import EnvConfig, EvalConfig, PolicyConfig, RunConfig, TrainConfig
    from llm_cmdp_agents.run.evaluate import evaluate_policy
    from llm_cmdp_agents.run.trainer import Trainer

    cfg = load_config(args.config)
    method = next((m for m in cfg["methods"] if m["name"] == args.method), None)
    if method is None:
        raise SystemExit(f"no method {args.method!r} in {args.config}: {[m['name'] for m in cfg['methods']]}")
    if not budget_free(method) and args.budget is None:
        raise SystemExit(f"{args.method!r} trains at a budget: give --budget")
    val = cfg["validation"]
    seed = val["seeds"][0] if args.seed is None else args.seed
    n = val["n"] if args.n is None else args.n
    st = settings(cfg, method, args.grid, None if budget_free(method) else args.budget)
    train = TrainConfig.from_dict({**st["train"], "seed": seed, "checkpoint_every": 0})
    updates = train.updates if args.updates is None else args.updates
    run = RunConfig(EnvConfig(**st["env"]), PolicyConfig(**st["policy"]), train,
                    EvalConfig(n=n, split=val.get("split", "validation"), batch_size=cfg["eval"].get("batch_size", 64)))
    torch.manual_seed(seed)
    policy = make_policy(run.policy, run.train.algo, run.env.constraint)
    trainer = Trainer(make_env(run.env, run.env.split), policy, run.train, run_dir=args.out, progress=True,
                      tensorboard=False)
    points_path = args.out / "curve.json"
    points: list[dict[str, Any]] = json.loads(points_path.read_text()) if points_path.is_file() else []
    latest = args.out / "checkpoints" / "latest.pt"
    if latest.is_file():
        trainer.load(latest)
    eval_env = make_eval_env(run)

    def evaluate() -> None:
        ev = evaluate_policy(policy, eval_env, n, batch_size=run.eval.batch_size)
        points.append({"update": trainer.update_idx, "episodes": trainer.update_idx * train.episodes_per_update,
                       "train_seconds": round(trainer.train_seconds, 1), "accuracy": ev["accuracy"],
                       "mean_cost": ev["mean_cost"], "mean_length": ev["mean_length"]})
        print(json.dumps(points[-1]))
        trainer.save()
        write_json_atomic(points_path, points)

    if not points:
        evaluate()
    while trainer.update_idx < updates:
        trainer.train(min(updates, trainer.update_idx + args.every))
        if trainer.interrupted:
            return 130
        evaluate()
    base = points[0]["accuracy"]
    first_10 = next((q["update"] for q in points if q["accuracy"] >= base + 0.10), None)
    out = {"config": args.config, "method": args.method, "grid": args.grid, "budget": args.budget, "seed": seed,
           "n": n, "split": run.eval.split, "train": train.to_dict(), "points": points,
           "first_update_with_plus_10_points": first_10,
           "note": "greedy accuracy and mean episode cost on the validation problems 0..n-1 after every --every "
                   "updates; train_seconds: the updates' own wall time"}
    write_result_json(args.json, out)
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ups = [q["update"] for q in points]
        ax.plot(ups, [q["accuracy"] for q in points], "o-", color="tab:blue", label="greedy accuracy")
        ax.axhline(base + 0.10, color="tab:blue", ls=":", lw=1, label="untrained + 0.10")
        ax.set_xlabel("update")
        ax.set_ylabel("validation accuracy", color="tab:blue")
        bx = ax.twinx()
        bx.plot(ups, [q["mean_cost"] for q in points], "s--", color="tab:red", label="mean cost")
        bx.set_ylabel("mean episode cost", color="tab:red")
        ax.set_title(f"{args.method} (grid {args.grid}): {n} validation problems, seed {seed}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
