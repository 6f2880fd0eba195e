"""Statistics of a method comparison: per-problem outcomes of every run scored at a budget, and paired bootstrap
confidence intervals of means and of differences between methods.

A method's test results at a budget ``d`` form a ``[seeds, problems]`` array per metric (1 if the problem was
solved / its episode cost was <= d / both). Every method is evaluated on the same test problems with the same
seeds, so two methods' arrays are *paired* on both axes: the bootstrap resamples seeds and problems with
replacement, the same draws for both methods, and reads the 2.5 / 97.5 percentiles of the mean difference.
Resampling both axes counts both sources of noise (training randomness across seeds, which problems were
drawn); resampling problems alone would understate it when seeds disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["METRICS", "bootstrap_ci", "metric_arrays", "paired_difference", "summary_row"]

METRICS = ("accuracy", "satisfaction", "safe_accuracy", "cost")
"""What is compared: solved, episode cost <= d, both (solved within budget), and the episode cost itself."""


def metric_arrays(runs: Sequence[Mapping[str, Any]], budget: float) -> dict[str, np.ndarray]:
    """``{metric: [seeds, problems]}`` of ``runs`` (one per seed, sorted by seed) scored at ``budget``.

    Every run must hold ``per_problem`` outcomes of the same problems (same count)."""
    if not runs:
        raise ValueError("no runs to score")
    runs = sorted(runs, key=lambda r: r["seed"])
    if len({len(r["per_problem"]["correct"]) for r in runs} | {len(r["per_problem"]["cost"]) for r in runs}) != 1:
        raise ValueError("runs hold per-problem outcomes of different lengths: not the same test problems")
    correct = np.array([r["per_problem"]["correct"] for r in runs], dtype=float)
    cost = np.array([r["per_problem"]["cost"] for r in runs], dtype=float)
    sat = (cost <= budget).astype(float)
    return {"accuracy": correct, "satisfaction": sat, "safe_accuracy": correct * sat, "cost": cost}


def _draws(n_seeds: int, n_problems: int, reps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap weights: how often each seed and each problem is drawn in every replicate."""
    seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=reps).astype(float)
    probs = rng.multinomial(n_problems, np.full(n_problems, 1.0 / n_problems), size=reps).astype(float)
    return seeds, probs


def _replicates(x: np.ndarray, seeds: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The mean of ``x [S, P]`` in every replicate (weights ``seeds [R, S]``, ``probs [R, P]``)."""
    return np.einsum("rs,sp,rp->r", seeds, x, probs) / (x.shape[0] * x.shape[1])


def bootstrap_ci(x: np.ndarray, reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``x [seeds, problems]`` and its bootstrap percentile interval."""
    rng = np.random.default_rng(seed)
    seeds, probs = _draws(*x.shape, reps, rng)
    r = _replicates(x, seeds, probs)
    a = (1.0 - level) / 2.0
    return float(x.mean()), float(np.quantile(r, a)), float(np.quantile(r, 1.0 - a))


def paired_difference(a: np.ndarray, b: np.ndarray, reps: int = 2000, seed: int = 0,
                      level: float = 0.95) -> dict[str, float]:
    """Mean of ``a - b`` (both ``[seeds, problems]``, paired) with its paired bootstrap interval and the share of
    replicates on the other side of 0 (``p_sign``, a two-sided bootstrap p-value: ``2 min(P(d <= 0), P(d >= 0))``)."""
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape} (same seeds and problems needed)")
    rng = np.random.default_rng(seed)
    seeds, probs = _draws(*a.shape, reps, rng)
    d = _replicates(a - b, seeds, probs)
    lo_q = (1.0 - level) / 2.0
    p = 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0)))
    return {"diff": float((a - b).mean()), "low": float(np.quantile(d, lo_q)), "high": float(np.quantile(d, 1 - lo_q)),
            "p_sign": min(1.0, p)}


def summary_row(arrays: Mapping[str, np.ndarray], reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean, 95% interval and the per-seed values (with their sample std, ddof=1) of every metric."""
    row: dict[str, Any] = {"seeds": int(next(iter(arrays.values())).shape[0])}
    for k, x in arrays.items():
        mean, lo, hi = bootstrap_ci(x, reps, seed)
        per_seed = x.mean(axis=1)
        row[k] = {"mean": mean, "low": lo, "high": hi, "per_seed": per_seed.round(6).tolist(),
                  "seed_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0}
    return row
