"""Seconds per training update when the machine is shared: torch threads x OpenMP wait policy x busy processes.

A newcomer's laptop always runs other things. This measures the main job's update (PPO, 32 prompts, the shipped
pair) in a fresh process per setting, with 0, 1 or 2 single-threaded busy-loop processes beside it, started
before the run or (``--mid-run``) after its first update:

- ``threads``: 1, 2 (torch's default on 2 cores), and ``auto`` (``llm-cmdp train``'s default: the cores other
  processes leave free, re-checked before every update by :class:`llm_cmdp_env.common.threads.AdaptiveThreads`);
- ``OMP_WAIT_POLICY``: ``active`` (threads spin while waiting for each other; libgomp's behaviour when the
  variable is unset, and what ``llm-cmdp`` keeps) or ``passive`` (they sleep).

Run ``python benchmarks/shared_cpu.py --json bench_out/shared_cpu.json`` (~6 minutes on 2 cores); prints a table
and writes JSON with the median seconds per update of each setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from llm_cmdp_env.common.atomic_io import write_result_json

_CHILD = r"""
import json, subprocess, sys, time
import torch
from llm_cmdp_env.common.threads import AdaptiveThreads
threads, updates, busy_before, busy_during = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy_before)]
try:
    time.sleep(1.0 if busy_before else 0.0)
    adaptive = AdaptiveThreads() if threads == "auto" else None
    if adaptive is None:
        torch.set_num_threads(int(threads))
    from llm_cmdp_agents.run.config import EnvConfig, PolicyConfig, TrainConfig
    from llm_cmdp_agents.run.build import make_env, make_policy
    from llm_cmdp_agents.run.trainer import Trainer
    from llm_cmdp_env.common.threads import free_cores
    from llm_cmdp_env.judge.verify import prewarm
    prewarm(wait=True)
    if adaptive is not None:
        torch.set_num_threads(free_cores())
        adaptive.adjust()
    env = make_env(EnvConfig(constraint="learned-lagrangian", budget=2.0, constraint_kwargs={"lr": 0.01}))
    cfg = TrainConfig(algo="ppo", prompts_per_update=32, lr=3e-5, updates=updates + 1, checkpoint_every=0)
    policy = make_policy(PolicyConfig(device="cpu"), "ppo", "learned-lagrangian")
    trainer = Trainer(env, policy, cfg, progress=False, adaptive_threads=adaptive is not None)
    trainer.step()  # warm-up
    hogs += [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy_during)]
    times, used = [], []
    for _ in range(updates):
        t0 = time.perf_counter()
        trainer.step()
        times.append(time.perf_counter() - t0)
        used.append(torch.get_num_threads())
    print(json.dumps({"times": times, "threads_used": used}))
finally:
    for h in hogs:
        h.kill()
        h.wait()
"""


def measure(threads: str, wait: str, busy: int, updates: int, mid_run: bool) -> dict:
    """Seconds per update of one setting with ``busy`` busy-loop processes beside it (from the start, or from the
    second update with ``mid_run``)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": wait.upper()}
    args = [threads, str(updates), str(0 if mid_run else busy), str(busy if mid_run else 0)]
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True,
                         check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return {"threads": threads, "wait": wait, "busy": busy, "mid_run": mid_run,
            "seconds_per_update": statistics.median(res["times"]), **res}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=4, help="timed updates per setting (default: 4)")
    p.add_argument("--busy", default="0,1,2", help="busy processes beside the run (default: 0,1,2)")
    p.add_argument("--waits", default="active,passive", help="OMP_WAIT_POLICY values (default: active,passive)")
    p.add_argument("--mid-run", action="store_true", help="also start the busy processes after the first update")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    rows = []
    starts = (False, True) if args.mid_run else (False,)
    for mid, busy, threads, wait in itertools.product(starts, [int(b) for b in args.busy.split(",")],
                                                      ("1", "2", "auto"), args.waits.split(",")):
        if mid and busy == 0:
            continue
        row = measure(threads, wait, busy, args.updates, mid)
        rows.append(row)
        print(f"busy {busy}{' (from update 2)' if mid else '':<16} threads {threads:>4} {row['threads_used']}  "
              f"OMP_WAIT_POLICY={wait:<7}  {row['seconds_per_update']:.2f} s/update", flush=True)
    out = {"rows": rows, "cpu_count": os.cpu_count(), "updates": args.updates}
    write_result_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
