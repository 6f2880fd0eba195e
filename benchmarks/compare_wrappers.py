"""The paper's table at our scale: train the shipped student under each constraint-handling method x seeds,
evaluate all runs on the same test problems with the same criterion, print the table, write JSON/Markdown/PNG.

    python benchmarks/compare_wrappers.py                      # full sweep (benchmarks/compare_wrappers.json)
    python benchmarks/compare_wrappers.py --quick              # 1 seed, fewer updates/test problems (smoke)
    python benchmarks/compare_wrappers.py --config FILE --out DIR

Equivalent to ``llm-cmdp compare --config benchmarks/compare_wrappers.json``. Finished runs are skipped when
restarted, so an interrupted sweep continues where it stopped. See docs/results.md for the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(HERE / "compare_wrappers.json"))
    p.add_argument("--out", default=None, help="output folder (default: the config's out, + '-quick' with --quick)")
    p.add_argument("--quick", action="store_true", help="1 seed, 10 updates, 50 test problems")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (default: the config's)")
    args = p.parse_args(argv)

    from llm_cmdp_agents.experiments.compare import load_config, run_compare

    cfg = copy.deepcopy(load_config(args.config))
    if args.quick:
        cfg["seeds"] = cfg["seeds"][:1]
        cfg["train"] = {**cfg.get("train", {}), "updates": min(10, cfg.get("train", {}).get("updates", 10))}
        cfg["eval"] = {**cfg["eval"], "n": min(50, cfg["eval"].get("n", 50))}
        cfg["out"] = cfg.get("out", "runs/compare") + "-quick"
    if args.workers:
        cfg["workers"] = args.workers
    res = run_compare(cfg, out_dir=args.out)
    print(res["markdown"])
    print(f"\nwall time {res['wall_seconds']:.0f} s; results in {Path(res['paths']['json']).parent}")
    print(json.dumps({"wall_seconds": res["wall_seconds"], "summary": res["summary"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
