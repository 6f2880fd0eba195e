"""Samples per second of data-parallel training: 1 process vs N processes (torchrun, gloo on CPU).

Trains the shipped pair (PPO, learned Lagrangian, 32 prompts per update) for a few updates in each setting
and reads the seconds per update from the run's ``progress.csv`` (the first update is a warm-up and not
counted). On the 2-core CPU the honest comparison is 1 process x 2 threads against 2 processes x 1 thread: the
same cores, split differently. On a GPU machine the same script measures one GPU per process
(``--device cuda``).

    python benchmarks/distributed_scaling.py --json bench_out/distributed_scaling.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llm_cmdp_env.common.atomic_io import write_result_json

ROOT = Path(__file__).resolve().parents[1]
_PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run(procs: int, threads: int, updates: int, prompts: int, device: str, parallel: str = "ddp") -> dict:
    """One training run; samples/s over the updates after the first."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["train", "--constraint", "learned-lagrangian", "--budget", "15", "--algo", "ppo", "--updates",
                str(updates), "--prompts-per-update", str(prompts), "--lr", "3e-5", "--eval-n", "0", "--threads",
                str(threads), "--no-progress", "--checkpoint-every", "0", "--device", device, "--env-device",
                "cuda" if device == "cuda" else "cpu", "--parallel", parallel, "--out", str(out)]
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)] if procs > 1
                    else [sys.executable])
        env = {**os.environ, "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        t0 = time.perf_counter()
        # a fresh parent per run, so its children's peak RSS is this run's largest process (KiB)
        measured = subprocess.run([sys.executable, "-c", _PEAK_RSS, *launcher, "-m", "llm_cmdp_env.cli", *args],
                                  env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = int(measured.stdout.strip().splitlines()[-1])
        rows = list(csv.DictReader((out / "progress.csv").open()))
        per_rank = json.loads((out / "results.json").read_text())["student_parameters_per_rank"]
    seconds = [float(r["seconds"]) for r in rows[1:]]
    return {"processes": procs, "parallel": parallel if procs > 1 else "none", "threads_per_process": threads,
            "student_parameters_per_rank": per_rank, "episodes_per_update": prompts,
            "seconds_per_update": statistics.median(seconds), "samples_per_s": prompts / statistics.median(seconds),
            "wall_seconds": wall, "updates_timed": len(seconds),
            "peak_rss_gib_largest_process": peak / 2**20}


def _label(row: dict) -> str:
    """``"2"`` for DDP (and one process), ``"2-fsdp"`` for FSDP."""
    return str(row["processes"]) + ("" if row["parallel"] in ("none", "ddp") else f"-{row['parallel']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", default="1,2", help="process counts to compare (default: 1,2)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="CPU cores to split among the processes")
    p.add_argument("--updates", type=int, default=6, help="updates per run, the first not timed (default: 6)")
    p.add_argument("--prompts", type=int, default=32, help="prompts (episodes) per update (default: 32)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for one GPU per process")
    p.add_argument("--parallel", default="ddp", help="data-parallel modes to run for more than one process, "
                   "comma-separated (default: ddp; ddp,fsdp compares both)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    rows = []
    for n in (int(x) for x in args.processes.split(",")):
        for mode in (args.parallel.split(",") if n > 1 else ["ddp"]):
            row = run(n, max(1, args.cores // n), args.updates, args.prompts, args.device, mode)
            rows.append(row)
            print(f"{n} process(es) x {row['threads_per_process']} thread(s) [{row['parallel']}]: "
                  f"{row['seconds_per_update']:.2f} s/update, {row['samples_per_s']:.1f} samples/s, "
                  f"{row['student_parameters_per_rank']:,} student parameter values per rank", flush=True)
    base = rows[0]["samples_per_s"]
    out = {"rows": rows, "speedup": {_label(r): r["samples_per_s"] / base for r in rows},
           "cpu_count": os.cpu_count(), "device": args.device}
    print("speed-up over 1 process:", {k: round(v, 2) for k, v in out["speedup"].items()})
    write_result_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
