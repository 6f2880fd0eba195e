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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_cmdp_agents.experiments.records import RunRecord


def records(root: Path) -> dict[str, tuple[Path, RunRecord]]:
    """``{fingerprint: (path, record)}`` of every finished run under ``root`` (archive ``*.json`` or ``eval.json``),
    read as the sweep reads them (:func:`~llm_cmdp_agents.experiments.records.read_json_record`): a file that is not
    a JSON object raises, never counts as "not run". A run folder's ``eval.json`` and an archive copy of the same
    run under one root must agree."""
    from llm_cmdp_agents.experiments.records import RunRecord, read_json_record

    out: dict[str, tuple[Path, RunRecord]] = {}
    for p in sorted(root.rglob("*.json")):
        found = read_json_record(p)
        assert found is not None
        raw = found[0]
        if "fingerprint" not in raw or "per_problem" not in raw or "phase" not in raw:
            continue  # not a run record (selection.json, binding.json, results.json, a reference, ...)
        r = RunRecord.from_dict(raw, str(p))
        if r.fingerprint in out and out[r.fingerprint][1] != r:
            raise ValueError(f"{out[r.fingerprint][0]} and {p} are one run (fingerprint {r.fingerprint}) with "
                             f"different records under {root}")
        out[r.fingerprint] = (p, r)
    return out


def compare(a: RunRecord, b: RunRecord) -> dict[str, Any]:
    """Where two records of one run differ: per-problem fields, then the training trace without wall time."""
    pa, pb = a.per_problem.to_dict(), b.per_problem.to_dict()
    diffs = [f"per_problem.{k}" for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    ta, tb = a.train_trace or {}, b.train_trace or {}
    diffs += [f"train_trace.{k}" for k in sorted(set(ta) | set(tb)) if k != "seconds" and ta.get(k) != tb.get(k)]
    cost_a, cost_b = a.per_problem.cost, b.per_problem.cost
    return {"method": a.method, "budget": a.budget, "seed": a.seed, "identical": not diffs,
            "differs_in": diffs, "accuracy": [a.accuracy, b.accuracy],
            "max_abs_cost_diff": max((abs(x - y) for x, y in zip(cost_a, cost_b)), default=0.0)
            if len(cost_a) == len(cost_b) else None,
            "train_seconds": [a.train_seconds, b.train_seconds]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--out", type=Path, help="write the comparison as JSON here")
    args = ap.parse_args(argv)
    a, b = records(args.first), records(args.second)
    shared = sorted(set(a) & set(b), key=lambda f: (a[f][1].method, a[f][1].budget or 0, a[f][1].seed))
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
