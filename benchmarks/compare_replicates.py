"""Do repeated runs give the same numbers? Compares the per-run records of two ``llm-cmdp compare`` archives
(or run folders): every run whose fingerprint (settings, seed, split, n) appears in both is a replicate, and its
per-problem outcomes (correct, cost, length) and training trace (everything but wall time) must be equal.

    python benchmarks/compare_replicates.py docs/data/compare_binding docs/data/compare_binding_matched_lr \
        --out runs/replicates_nll.json

Prints one line per replicate and a summary, writes them as JSON with ``--out``; exits 1 when a replicate
differs (so it can gate a sweep), 2 when the archives share no run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def records(root: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """``{fingerprint: (path, record)}`` of every finished run under ``root`` (archive ``*.json`` or ``eval.json``),
    read as the sweep reads them (:func:`~llm_cmdp_agents.compare_plan.read_record`): a file that is not a JSON
    object raises, never counts as "not run". A run folder's ``eval.json`` and an archive copy of the same run
    under one root must agree."""
    from llm_cmdp_agents.compare_plan import read_record

    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for p in sorted(root.rglob("*.json")):
        r, _ = read_record(p)
        if "fingerprint" not in r or "per_problem" not in r:
            continue  # not a run record (selection.json, binding.json, results.json, ...)
        f = r["fingerprint"]
        if f in out and out[f][1] != r:
            raise ValueError(f"{out[f][0]} and {p} are one run (fingerprint {f}) with different records under {root}")
        out[f] = (p, r)
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Where two records of one run differ: per-problem fields, then the training trace without wall time."""
    diffs = [f"per_problem.{k}" for k in sorted(set(a["per_problem"]) | set(b["per_problem"]))
             if a["per_problem"].get(k) != b["per_problem"].get(k)]
    ta, tb = a.get("train_trace", {}), b.get("train_trace", {})
    diffs += [f"train_trace.{k}" for k in sorted(set(ta) | set(tb)) if k != "seconds" and ta.get(k) != tb.get(k)]
    cost_a, cost_b = a["per_problem"]["cost"], b["per_problem"]["cost"]
    return {"method": a["method"], "budget": a.get("budget"), "seed": a["seed"], "identical": not diffs,
            "differs_in": diffs, "accuracy": [a["accuracy"], b["accuracy"]],
            "max_abs_cost_diff": max((abs(x - y) for x, y in zip(cost_a, cost_b)), default=0.0)
            if len(cost_a) == len(cost_b) else None,
            "train_seconds": [a.get("train_seconds"), b.get("train_seconds")]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = ap.parse_args(argv)
    a, b = records(args.first), records(args.second)
    shared = sorted(set(a) & set(b), key=lambda f: (a[f][1]["method"], a[f][1].get("budget") or 0, a[f][1]["seed"]))
    rows = [compare(a[f][1], b[f][1]) | {"fingerprint": f, "first": str(a[f][0]), "second": str(b[f][0])}
            for f in shared]
    for r in rows:
        print(f"{r['method']:>24}  d={r['budget']}  seed {r['seed']}: "
              f"{'identical' if r['identical'] else 'DIFFERS in ' + ', '.join(r['differs_in'])}  "
              f"(accuracy {r['accuracy'][0]:.3f} / {r['accuracy'][1]:.3f}, train s {r['train_seconds']})")
    summary = {"first": str(args.first), "second": str(args.second), "replicates": len(rows),
               "identical": sum(r["identical"] for r in rows), "rows": rows}
    print(f"{summary['identical']} of {summary['replicates']} replicated runs identical")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    if not rows:
        return 2
    return 0 if summary["identical"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
