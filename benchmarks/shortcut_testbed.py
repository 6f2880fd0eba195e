"""The second testbed's two properties, measured (docs/zoo.md): task-only RL raises the shortcut student's greedy
test accuracy, and in doing so moves it away from the teacher (mean cost up).

    python benchmarks/shortcut_testbed.py --minutes 20 --json docs/data/shortcut_testbed.json

Before and after task-only GRPO (reward = the answer check, no constraint) it measures on the same test problems:
greedy accuracy, the mean episode cost (teacher NLL, summed over the episode), the share of solutions written
in the shortcut style, and the accuracy when the solution is forced to start in that style. Training runs
until ``--minutes`` of wall time (or ``--updates``) and shows a progress bar; its run folder keeps checkpoints,
so a stopped run continues where it stopped when started again with the same ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from llm_cmdp_env.common.atomic_io import write_json_atomic, write_result_json

STUDENT = "zoo:shortcut-student"
MAX_NEW_TOKENS = 224  # shortcut-style solutions take up to ~200 tokens


def measure(policy: Any, env: Any, tokenizer: Any, n: int, batch_size: int) -> dict[str, Any]:
    """Greedy accuracy, mean cost and style figures of ``policy`` on test problems ``0 .. n-1``."""
    from llm_cmdp_agents.run.evaluate import evaluate_policy
    from llm_cmdp_env.tasks.arithmetic import SPLIT_MARKER
    from llm_cmdp_env.zoo.eval import accuracy

    ev = evaluate_policy(policy, env, n, batch_size=batch_size)
    problems = [env.unwrapped.setup.task[i] for i in range(n)]
    styles = accuracy(policy.lm, tokenizer, problems, batch_size, MAX_NEW_TOKENS)
    forced = accuracy(policy.lm, tokenizer, problems, batch_size, MAX_NEW_TOKENS, prefix=" " + SPLIT_MARKER + "\n")
    return {"accuracy": ev["accuracy"], "mean_cost": ev["mean_cost"], "mean_length": ev["mean_length"],
            "shortcut_style": styles["split_style"], "accuracy_forced_shortcut": forced["accuracy"],
            "accuracy_check": styles["accuracy"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default=STUDENT)
    p.add_argument("--n", type=int, default=500, help="test problems (default: 500)")
    p.add_argument("--minutes", type=float, default=20.0, help="training wall-time limit (default: 20)")
    p.add_argument("--updates", type=int, default=1000, help="at most this many updates (default: 1000)")
    p.add_argument("--prompts", type=int, default=16, help="prompts per update (default: 16)")
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("runs/shortcut_testbed"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from llm_cmdp_agents.run.build import make_env, make_policy
    from llm_cmdp_agents.run.config import EnvConfig, PolicyConfig, TrainConfig
    from llm_cmdp_agents.run.trainer import Trainer
    from llm_cmdp_env.judge.verify import prewarm
    from llm_cmdp_env.models.loading import load_tokenizer

    prewarm(wait=True)
    env_cfg = EnvConfig(max_new_tokens=MAX_NEW_TOKENS)
    train_env, test_env = make_env(env_cfg, "train"), make_env(env_cfg, "test")
    cfg = TrainConfig(algo="grpo", updates=args.updates, prompts_per_update=args.prompts, group_size=args.group_size,
                      minibatch_size=args.prompts * args.group_size // 2, lr=args.lr, seed=args.seed,
                      checkpoint_every=10)
    torch.manual_seed(args.seed)
    policy = make_policy(PolicyConfig(model=args.student, device="cpu"), "grpo", "none")
    tokenizer = load_tokenizer(args.student)
    before_path = args.out / "before.json"
    if before_path.is_file():
        before = json.loads(before_path.read_text())
    else:
        before = measure(policy, test_env, tokenizer, args.n, 100)
        write_json_atomic(before_path, before)
    print("before:", json.dumps(before))
    trainer = Trainer(train_env, policy, cfg, run_dir=args.out, progress=True, tensorboard=False)
    latest = args.out / "checkpoints" / "latest.pt"
    if latest.is_file():
        trainer.load(latest)
    t0 = time.perf_counter()
    spent = trainer.train_seconds
    while trainer.update_idx < args.updates and spent + (time.perf_counter() - t0) < args.minutes * 60:
        trainer.train(min(args.updates, trainer.update_idx + 20))  # the time limit is checked every 20 updates
        if trainer.interrupted:
            return 130
    trainer.save()
    after = measure(policy, test_env, tokenizer, args.n, 100)
    print("after: ", json.dumps(after))
    out = {"student": args.student, "n": args.n, "max_new_tokens": MAX_NEW_TOKENS, "train": cfg.to_dict(),
           "updates": trainer.update_idx, "train_seconds": round(trainer.train_seconds, 1),
           "episodes": trainer.update_idx * cfg.episodes_per_update, "before": before, "after": after,
           "history": [{k: row.get(k) for k in ("update", "accuracy", "cost", "length", "seconds")}
                       for row in trainer.history]}
    write_result_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
