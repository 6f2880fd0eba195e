"""Episodes per second of each interop path on the same teacher/student pair, side by side in one run.

Paths (all on the same env settings: teacher-NLL cost, ``--max-new-tokens`` M, the same student, 1 torch thread):

- ``ours``      the project's agent: :class:`llm_cmdp_agents.run.trainer.Trainer` (PPO), batched KV-cached sampling and
                one teacher forward per batch through the fast path; collects exactly N episodes per update
- ``sb3``       stable-baselines3's PPO with the bridge policy (:mod:`llm_cmdp_agents.interop.sb3_policy`), stepping
                ``gym.make("MathDistill-v0")`` token by token
- ``omnisafe``  OmniSafe 0.5.0's PPOLag through the CMDP adapter (:mod:`llm_cmdp_env.interop.omnisafe_env`)
- ``cleanrl``   the CleanRL-style PPO-Lagrangian of ``examples/cleanrl_ppo_lagrangian.py`` on the 6-tuple view

The step-based paths (sb3, omnisafe, cleanrl) collect a fixed number of env steps, N x M: every episode is at most
M steps, so each finishes at least N episodes (counted by wrapping ``MathDistillEnv.step``; the steps of the one
unfinished episode are timed but not counted). Every path then does one update pass over what it collected
(1 epoch; minibatches of 64 steps, or 8 episodes for ours). ``collect`` is the collection alone, ``collect+update``
one whole iteration; episodes/s of each, and ours' episodes/s over each path's. Model loading is not timed; the
answer checker is started before any timing, and ours runs one untimed warm-up collection (the step-based paths
amortise their first-call costs over N x M steps).

    python benchmarks/interop_throughput.py [--episodes 32] [--max-new-tokens 64] [--json PATH]
    python benchmarks/interop_throughput.py --smoke --teacher DIR --student DIR --json PATH   # plumbing only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

import llm_cmdp_env  # noqa: E402, F401  (registers MathDistill-v0)
from llm_cmdp_env.common.atomic_io import write_result_json  # noqa: E402
from llm_cmdp_env.envs.math_distill import MathDistillEnv  # noqa: E402
from llm_cmdp_env.judge.verify import prewarm  # noqa: E402
from llm_cmdp_env.models.loading import resolve_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PATHS = ("ours", "sb3", "omnisafe", "cleanrl")
DEFAULT_JSON = ROOT / "docs" / "data" / "interop_throughput_cpu.json"


@contextlib.contextmanager
def counting_steps() -> Iterator[dict[str, int]]:
    """Count env steps and finished episodes of every ``MathDistillEnv`` while inside (the step-based paths build
    their env themselves)."""
    counts = {"steps": 0, "episodes": 0}
    original = MathDistillEnv.step

    def step(self: MathDistillEnv, action: Any):
        out = original(self, action)
        counts["steps"] += 1
        counts["episodes"] += int(bool(out[2] or out[3]))
        return out

    MathDistillEnv.step = step  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        MathDistillEnv.step = original  # type: ignore[method-assign]


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"teacher": args.teacher, "divergence": "teacher_nll", "max_new_tokens": args.max_new_tokens,
            "max_prompt_tokens": 160}


def _row(episodes: int, steps: int, collect_s: float, update_s: float | None, total_s: float | None = None,
         **extra: Any) -> dict[str, Any]:
    total = total_s if total_s is not None else (collect_s + update_s if update_s is not None else None)
    return {"episodes": episodes, "env_steps": steps, "collect_s": round(collect_s, 6),
            "collect_episodes_per_s": round(episodes / collect_s, 3),
            "collect_tokens_per_s": round(steps / collect_s, 1),
            "collect_update_s": round(total, 6) if total is not None else None,
            "collect_update_episodes_per_s": round(episodes / total, 3) if total else None, **extra}


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    from llm_cmdp_agents.engine.policy import LLMPolicy
    from llm_cmdp_agents.run.trainer import TrainConfig, Trainer

    env = gym.make("MathDistill-v0", **_env_kwargs(args))
    policy = LLMPolicy(args.student, value_head=True, device="cpu")
    cfg = TrainConfig(algo="ppo", updates=1, prompts_per_update=args.episodes, epochs=1, minibatch_size=8,
                      lr=1e-5, seed=args.seed, checkpoint_every=0)
    trainer = Trainer(env, policy, cfg, progress=False, tensorboard=False)
    trainer.collect()  # untimed warm-up: first-call costs (allocator, kernels) must not land in a timing
    collect, timed = trainer.collect, {}

    def timed_collect() -> Any:  # the collection inside the timed step: its time is part of the step's, by construction
        t = time.perf_counter()
        timed["batch"] = collect()
        timed["s"] = time.perf_counter() - t
        return timed["batch"]

    trainer.collect = timed_collect
    t0 = time.perf_counter()
    trainer.step()  # one batch: collection + update
    total_s = time.perf_counter() - t0
    batch, collect_s = timed["batch"], timed["s"]
    steps = sum(len(c) for c in batch.completions)
    return _row(len(batch), steps, collect_s, None, total_s=total_s,
                mean_episode_cost=float(batch.episode_costs.mean()))


def run_sb3(args: argparse.Namespace) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    from llm_cmdp_agents.interop.sb3_policy import HFCausalLMPolicy

    class RolloutClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.start = self.end = 0.0

        def _on_rollout_start(self) -> None:
            self.start = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.end = time.perf_counter()

        def _on_step(self) -> bool:
            return True

    steps = args.episodes * args.max_new_tokens
    env = Monitor(gym.make("MathDistill-v0", **_env_kwargs(args)))
    model = PPO(HFCausalLMPolicy, env, n_steps=steps, batch_size=min(64, steps), n_epochs=1, learning_rate=1e-5,
                policy_kwargs={"model": args.student}, device="cpu", verbose=0, seed=args.seed)
    clock = RolloutClock()
    with counting_steps() as counts:
        t0 = time.perf_counter()
        model.learn(steps, callback=clock)
        total_s = time.perf_counter() - t0
    return _row(counts["episodes"], counts["steps"], clock.end - clock.start, None, total_s=total_s)


def run_omnisafe(args: argparse.Namespace) -> dict[str, Any]:
    import csv

    try:
        import llm_cmdp_env.interop.omnisafe_env  # noqa: F401  (first: lets omnisafe import)
        from llm_cmdp_agents.interop.omnisafe_actor import make_agent
    except ImportError as e:
        return {"skipped": f"OmniSafe not installed ({e}); docs/interop.md has the install"}
    steps = args.episodes * args.max_new_tokens
    with tempfile.TemporaryDirectory(prefix="omnisafe-bench-") as log_dir:
        cfgs = {
            "seed": args.seed,
            "train_cfgs": {"device": "cpu", "torch_threads": 1, "vector_env_nums": 1, "parallel": 1,
                           "total_steps": steps},
            "algo_cfgs": {"steps_per_epoch": steps, "update_iters": 1, "batch_size": min(64, steps),
                          "obs_normalize": False},
            "logger_cfgs": {"use_wandb": False, "use_tensorboard": False, "save_model_freq": 10**6,
                            "log_dir": log_dir},
            "model_cfgs": {"actor": {"lr": 1e-5}, "linear_lr_decay": False},
            "lagrange_cfgs": {"cost_limit": 12.0},
            "env_cfgs": _env_kwargs(args),
        }
        agent = make_agent("PPOLag", cfgs, model=args.student)
        with counting_steps() as counts:
            t0 = time.perf_counter()
            agent.learn()
            total_s = time.perf_counter() - t0
        with open(Path(agent.agent.logger.log_dir) / "progress.csv", newline="") as f:
            row = list(csv.DictReader(f))[-1]
    torch.set_num_threads(1)  # OmniSafe set it from train_cfgs; keep the next path on the same setting
    return _row(counts["episodes"], counts["steps"], float(row["Time/Rollout"]), float(row["Time/Update"]),
                learn_s=round(total_s, 3), mean_episode_cost=float(row["Metrics/EpCost"]))


def run_cleanrl(args: argparse.Namespace) -> dict[str, Any]:
    from llm_cmdp_env.wrappers import SafetyGymnasiumStepWrapper

    path = ROOT / "examples" / "cleanrl_ppo_lagrangian.py"
    spec = importlib.util.spec_from_file_location("cleanrl_ppo_lagrangian", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    steps = args.episodes * args.max_new_tokens
    env = SafetyGymnasiumStepWrapper(gym.make("MathDistill-v0", **_env_kwargs(args)))
    cl_args = module.Args(total_steps=steps, num_steps=steps, update_epochs=1, minibatch_size=min(64, steps),
                          seed=args.seed)
    with counting_steps() as counts:
        _, _, res = module.train(env, args.student, cl_args, log=False)
    h = res.history[0]
    assert counts["episodes"] == len(res.episode_costs) and counts["steps"] == steps
    return _row(counts["episodes"], counts["steps"], h["rollout_s"], h["update_s"],
                mean_episode_cost=h["ep_cost"])


RUNNERS = {"ours": run_ours, "sb3": run_sb3, "omnisafe": run_omnisafe, "cleanrl": run_cleanrl}


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The printed table: episodes/s of collection and of collection + update, and ours over each path's."""
    ours = rows.get("ours", {})
    lines = [f"{'path':<10}{'episodes':>9}{'tokens':>8}{'collect s':>11}{'ep/s':>8}{'ours x':>8}"
             f"{'coll+upd s':>12}{'ep/s':>8}{'ours x':>8}"]
    for name, r in rows.items():
        if "skipped" in r:
            lines.append(f"{name:<10}skipped: {r['skipped']}")
            continue
        x1 = ours["collect_episodes_per_s"] / r["collect_episodes_per_s"] if ours else float("nan")
        tot = r["collect_update_episodes_per_s"]
        x2 = ours["collect_update_episodes_per_s"] / tot if ours and tot else float("nan")
        lines.append(f"{name:<10}{r['episodes']:>9}{r['env_steps']:>8}{r['collect_s']:>11.2f}"
                     f"{r['collect_episodes_per_s']:>8.2f}{x1:>8.1f}{r['collect_update_s']:>12.2f}{tot:>8.2f}{x2:>8.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=32, help="N: episodes per path (default: 32)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="M: episode length limit (default: 64)")
    p.add_argument("--teacher", default="zoo:teacher")
    p.add_argument("--student", default="zoo:student")
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (2 episodes of 8 tokens): plumbing only")
    p.add_argument("--json", default=None, help=f"where to write the figures (default: {DEFAULT_JSON}; "
                                                "none with --smoke unless given)")
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.max_new_tokens = 2, 8
    if args.episodes < 1 or args.max_new_tokens < 1:
        p.error("--episodes and --max-new-tokens must be >= 1")
    out = args.json if args.json is not None else (None if args.smoke else DEFAULT_JSON)
    args.teacher, args.student = resolve_model(args.teacher), resolve_model(args.student)
    torch.set_num_threads(1)
    prewarm(wait=True)  # the answer checker's one-time start-up (a core for ~2 s) must not land in a timing
    rows: dict[str, dict[str, Any]] = {}
    for name in args.paths:
        t0 = time.perf_counter()
        rows[name] = RUNNERS[name](args)
        print(f"{name}: done in {time.perf_counter() - t0:.1f} s (model loading included)", flush=True)
    lines = table(rows)
    print("\n".join(lines))
    ours = rows.get("ours")
    for r in rows.values():
        if ours and "skipped" not in r:
            r["ours_over_this_collect"] = round(ours["collect_episodes_per_s"] / r["collect_episodes_per_s"], 2)
            r["ours_over_this_collect_update"] = round(
                ours["collect_update_episodes_per_s"] / r["collect_update_episodes_per_s"], 2)
    write_result_json(out, {
        "date": datetime.date.today().isoformat(), "smoke": args.smoke, "episodes": args.episodes,
        "max_new_tokens": args.max_new_tokens, "torch_threads": torch.get_num_threads(),
        "teacher": str(args.teacher), "student": str(args.student), "python": platform.python_version(),
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "load_average_at_end": list(os.getloadavg()),
        "paths": rows, "table": lines,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
