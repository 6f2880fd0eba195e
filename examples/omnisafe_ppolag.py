"""OmniSafe's own constrained-RL algorithms (PPOLag, PPOSaute, CPO, ...) train the shipped student on MathDistill-v0.

    pip install -e ".[omnisafe]" && pip install --no-deps omnisafe==0.5.0     # docs/interop.md says why
    python examples/omnisafe_ppolag.py [--algos PPOLag PPOSaute] [--steps 512] [--budget 12]

The env is OmniSafe's ``CMDP`` (``llm_cmdp_env.interop.omnisafe_env``), the actor the student LM as a categorical policy
(``llm_cmdp_agents.interop.omnisafe_actor``), the critics OmniSafe's MLPs; the per-token cost is the env's teacher NLL.
Each epoch prints OmniSafe's own figures from its ``progress.csv``: episode return (reward), episode cost against
the budget, and the Lagrange multiplier (PPOLag) or the remaining Sauté budget (PPOSaute).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

try:
    import llm_cmdp_env.interop.omnisafe_env  # noqa: F401  (first: registers the env, lets omnisafe import)
    from llm_cmdp_agents.interop.omnisafe_actor import make_agent
except ImportError as e:
    raise SystemExit(f"this example needs OmniSafe (docs/interop.md): {e}") from None

SHOWN = {"Metrics/LagrangeMultiplier": "lambda", "Metrics/EpBudget": "saute_z", "Misc/Nu_star": "nu"}


def config(algo: str, steps: int, steps_per_epoch: int, budget: float, max_new_tokens: int, threads: int,
           log_dir: str, seed: int) -> dict:
    """OmniSafe ``custom_cfgs`` for ``algo`` on MathDistill-v0 (raw token ids in, no observation normalisation)."""
    cfgs: dict = {
        "seed": seed,
        "train_cfgs": {"device": "cpu", "torch_threads": threads, "vector_env_nums": 1, "parallel": 1,
                       "total_steps": steps},
        "algo_cfgs": {"steps_per_epoch": steps_per_epoch, "update_iters": 2, "batch_size": 64,
                      "obs_normalize": False},
        "logger_cfgs": {"use_wandb": False, "use_tensorboard": False, "save_model_freq": 10**6, "log_dir": log_dir},
        "model_cfgs": {"actor": {"lr": 1e-5}, "linear_lr_decay": False},
        "env_cfgs": {"divergence": "teacher_nll", "max_new_tokens": max_new_tokens, "max_prompt_tokens": 160},
    }
    if algo.endswith("Saute"):
        cfgs["algo_cfgs"].update(safety_budget=budget, max_ep_len=max_new_tokens, saute_gamma=0.999,
                                 unsafe_reward=-0.1)
    elif algo.endswith("CPO"):  # CPO, PCPO
        cfgs["algo_cfgs"].update(cost_limit=budget, cg_iters=5)
    else:
        cfgs["lagrange_cfgs"] = {"cost_limit": budget}
    return cfgs


def train(algo: str, args: argparse.Namespace, log_root: str) -> list[dict]:
    """Train ``algo`` and return OmniSafe's per-epoch rows (``progress.csv``)."""
    t0 = time.perf_counter()
    agent = make_agent(algo, config(algo, args.steps, args.steps_per_epoch, args.budget, args.max_new_tokens,
                                    args.threads, log_root, args.seed), model="zoo:student")
    agent.learn()
    seconds = time.perf_counter() - t0
    with open(Path(agent.agent.logger.log_dir) / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"\n== {algo}: {args.steps} env steps in {seconds:.1f} s ({args.steps / seconds:.1f} steps/s)")
    for r in rows:
        extra = " ".join(f"{name} {float(r[k]):.3f}" for k, name in SHOWN.items() if k in r)
        print(f"epoch {int(float(r['Train/Epoch']))}: EpRet {float(r['Metrics/EpRet']):.3f}  "
              f"EpCost {float(r['Metrics/EpCost']):.2f} (budget {args.budget:g})  "
              f"EpLen {float(r['Metrics/EpLen']):.1f}  {extra}")
    return rows


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
    args = p.parse_args()
    if args.steps < args.steps_per_epoch or args.steps_per_epoch < 2 * args.max_new_tokens:
        p.error("need --steps >= --steps-per-epoch >= 2 * --max-new-tokens (every epoch must finish an episode)")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="omnisafe-") as log_root:
        for algo in args.algos:
            train(algo, args, log_root)


if __name__ == "__main__":
    main()
