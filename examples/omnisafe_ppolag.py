"""OmniSafe's own constrained-RL algorithms (PPOLag, PPOSaute, CPO, ...) train the shipped student on MathDistill-v0.

    pip install -e ".[omnisafe]" && pip install --no-deps omnisafe==0.5.0     # docs/interop.md says why
    python examples/omnisafe_ppolag.py [--algos PPOLag PPOSaute] [--steps 512] [--budget 12]

The env is OmniSafe's ``CMDP`` (``llm_cmdp_env.interop.omnisafe_env``), the actor the student LM as a categorical policy
(``llm_cmdp_agents.interop.omnisafe_actor``), the critics OmniSafe's MLPs; the per-token cost is the env's teacher NLL.

What it prints, last, per algorithm and epoch: the episodes that ended in that epoch (their number, mean return,
mean summed cost against the budget, share within the budget, mean length: the env's own numbers, from the CMDP's
episode log) and PPOLag's Lagrange multiplier after the epoch's update. OmniSafe's own ``Metrics/EpCost`` is a
running mean over its last 50 episodes, not the epoch's; its tables go to ``omnisafe.log`` in the log folder
(``--log-dir``, else a temporary one). What to look for: PPOLag's λ rises while the epochs' mean cost is over the
budget.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import tempfile
import time
from pathlib import Path

import torch

try:
    import llm_cmdp_env.interop.omnisafe_env  # noqa: F401  (first: registers the env, lets omnisafe import)
    from llm_cmdp_agents.interop.omnisafe_actor import make_agent
except ImportError as e:
    raise SystemExit(f"this example needs OmniSafe (docs/interop.md): {e}") from None



def config(algo: str, steps: int, steps_per_epoch: int, budget: float, max_new_tokens: int, threads: int,
           log_dir: str, seed: int, episode_log: str | None = None) -> dict:
    """OmniSafe ``custom_cfgs`` for ``algo`` on MathDistill-v0 (raw token ids in, no observation normalisation)."""
    cfgs: dict = {
        "seed": seed,
        "train_cfgs": {"device": "cpu", "torch_threads": threads, "vector_env_nums": 1, "parallel": 1,
                       "total_steps": steps},
        "algo_cfgs": {"steps_per_epoch": steps_per_epoch, "update_iters": 2, "batch_size": 64,
                      "obs_normalize": False},
        "logger_cfgs": {"use_wandb": False, "use_tensorboard": False, "save_model_freq": 10**6, "log_dir": log_dir},
        "model_cfgs": {"actor": {"lr": 1e-5}, "linear_lr_decay": False},
        "env_cfgs": {"divergence": "teacher_nll", "max_new_tokens": max_new_tokens, "max_prompt_tokens": 160,
                     "episode_log": episode_log},
    }
    if algo.endswith("Saute"):
        cfgs["algo_cfgs"].update(safety_budget=budget, max_ep_len=max_new_tokens, saute_gamma=0.999,
                                 unsafe_reward=-0.1)
    elif algo.endswith("CPO"):  # CPO, PCPO
        cfgs["algo_cfgs"].update(cost_limit=budget, cg_iters=5)
    else:
        cfgs["lagrange_cfgs"] = {"cost_limit": budget}
    return cfgs


def train(algo: str, args: argparse.Namespace, log_root: str) -> list[str]:
    """Train ``algo`` (OmniSafe's output into ``log_root/omnisafe.log``); return the summary lines to print."""
    import contextlib

    log = Path(log_root) / f"{algo}_episodes.jsonl"
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open(Path(log_root) / "omnisafe.log", "a") as quiet, contextlib.redirect_stdout(quiet):
        agent = make_agent(algo, config(algo, args.steps, args.steps_per_epoch, args.budget, args.max_new_tokens,
                                        args.threads, log_root, args.seed, str(log)), model="zoo:student")
        agent.learn()
    seconds = time.perf_counter() - t0
    with open(Path(agent.agent.logger.log_dir) / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    episodes = [json.loads(line) for line in log.read_text().splitlines()]
    lines = [f"== {algo}: {args.steps} env steps in {seconds:.1f} s ({args.steps / seconds:.1f} steps/s), "
             f"budget {args.budget:g}"]
    for epoch, row in enumerate(rows):
        lo, hi = epoch * args.steps_per_epoch, (epoch + 1) * args.steps_per_epoch
        mine = [e for e in episodes if lo < e["steps"] <= hi]
        if not mine:
            lines.append(f"epoch {epoch}: no episode ended")
            continue
        cost, n = [e["cost"] for e in mine], len(mine)
        lam = f"   lambda after the update {float(row['Metrics/LagrangeMultiplier']):.3f}" \
            if "Metrics/LagrangeMultiplier" in row else ""
        lines.append(f"epoch {epoch}: {n} episodes, mean return {sum(e['return'] for e in mine) / n:.3f}, "
                     f"mean cost {sum(cost) / n:.2f}, within budget {sum(c <= args.budget for c in cost)}/{n}, "
                     f"mean length {sum(e['length'] for e in mine) / n:.1f}{lam}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=["PPOLag", "PPOSaute"],
                   help="OmniSafe on-policy algorithms (default: PPOLag PPOSaute; CPO works but its Fisher-vector "
                        "products through the LM take minutes per epoch on a CPU)")
    p.add_argument("--steps", type=int, default=512, help="env steps (tokens) per algorithm (default: 512)")
    p.add_argument("--steps-per-epoch", type=int, default=256, help="rollout length per update (default: 256)")
    p.add_argument("--budget", type=float, default=12.0, help="episode cost budget d (default: 12)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="episode length limit (default: 128)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-dir", default=None, help="keep OmniSafe's logs and tables here (default: a temporary folder)")
    args = p.parse_args()
    if args.steps < args.steps_per_epoch or args.steps_per_epoch < 2 * args.max_new_tokens:
        p.error("need --steps >= --steps-per-epoch >= 2 * --max-new-tokens (every epoch must finish an episode)")
    torch.set_num_threads(args.threads)
    with contextlib.ExitStack() as stack:
        log_root = args.log_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="omnisafe-"))
        Path(log_root).mkdir(parents=True, exist_ok=True)
        summary = [line for algo in args.algos for line in train(algo, args, log_root)]
    print("\n".join(summary))


if __name__ == "__main__":
    main()
