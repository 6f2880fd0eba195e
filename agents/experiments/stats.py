"""Statistics of a method comparison: per-problem outcomes of every run scored at a budget, and paired bootstrap
confidence intervals of means and of differences between methods.

A method's test results at a budget ``d`` form a ``[seeds, problems]`` array per metric (1 if the problem was
solved / its episode cost was <= d / both). Every method is evaluated on the same test problems with the same
seeds, so two methods' arrays are *paired* on both axes: the bootstrap resamples seeds and problems with
replacement, the same draws for both methods, and reads the 2.5 / 97.5 percentiles of the mean difference.
Resampling both axes counts both sources of noise (training randomness across seeds, which problems were
drawn); resampling problems alone would understate it when seeds disagree. A second, more conservative view
treats each seed as one observation: the per-seed paired t-interval (:func:`paired_t`, ``S - 1`` degrees of
freedom), which is wide with few seeds.

Two notions of satisfying the constraint are scored: *per episode* (``satisfaction``: the share of episodes
with summed cost <= d, what the budget reward and Sauté enforce) and *in expectation* (the mean episode cost
<= d, what a Lagrangian method constrains; :func:`expected_cost_verdict`). "Comparable accuracy" is decided
against a margin stated before the numbers (:func:`equivalence_verdict`, two one-sided tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["METRICS", "Scored", "agree", "bootstrap_ci", "claim_verdict", "equivalence_verdict",
           "expected_cost_verdict", "metric_arrays", "paired_difference", "paired_t", "summary_row", "t_quantile"]

METRICS = ("accuracy", "satisfaction", "safe_accuracy", "cost")
"""What is compared: solved, episode cost <= d, both (solved within budget), and the episode cost itself."""


class Scored(Protocol):
    """A run's outcomes as :func:`metric_arrays` reads them (every record of
    :mod:`llm_cmdp_agents.experiments.records` is one): its seed (None: a reference, one run) and per-problem
    ``correct`` and ``cost``."""

    seed: int | None
    per_problem: Any


def metric_arrays(runs: Sequence[Scored], budget: float) -> dict[str, np.ndarray]:
    """``{metric: [seeds, problems]}`` of ``runs`` (one per seed, sorted by seed) scored at ``budget``.

    Every run must hold ``per_problem`` outcomes of the same problems (same count)."""
    if not runs:
        raise ValueError("no runs to score")
    runs = sorted(runs, key=lambda r: r.seed or 0)
    if len({len(r.per_problem.correct) for r in runs} | {len(r.per_problem.cost) for r in runs}) != 1:
        raise ValueError("runs hold per-problem outcomes of different lengths: not the same test problems")
    correct = np.array([r.per_problem.correct for r in runs], dtype=float)
    cost = np.array([r.per_problem.cost for r in runs], dtype=float)
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


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (via the incomplete beta function)."""
    import math

    x = df / (df + t * t)
    a, b = df / 2.0, 0.5
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    ib = front * _betacf(a, b, x) / a if x < (a + 1.0) / (a + b + 2.0) else 1.0 - front * _betacf(b, a, 1.0 - x) / b
    return 1.0 - 0.5 * ib if t > 0 else 0.5 * ib


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` >= 1 degrees of freedom (bisection on the CDF; no scipy)."""
    if not 0.0 < q < 1.0 or df < 1:
        raise ValueError(f"need 0 < q < 1 and df >= 1, got q={q}, df={df}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_cdf(mid, df) < q else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def paired_t(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float | None]:
    """The per-seed paired t-interval of the mean of ``a - b`` (both ``[seeds, problems]``): each seed's mean
    difference is one observation, ``S - 1`` degrees of freedom. ``low``/``high`` are None with one seed."""
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape} (same seeds and problems needed)")
    per_seed = (a - b).mean(axis=1)
    n = len(per_seed)
    mean = float(per_seed.mean())
    if n < 2:
        return {"diff": mean, "low": None, "high": None, "df": 0}
    half = t_quantile(0.5 + level / 2.0, n - 1) * float(per_seed.std(ddof=1)) / np.sqrt(n)
    return {"diff": mean, "low": mean - half, "high": mean + half, "df": n - 1}


def _excludes_zero(ci: Mapping[str, Any]) -> int:
    """+1 / -1 when an interval lies above / below 0, else 0 (an interval that was not computed: 0)."""
    if ci.get("low") is None:
        return 0
    return 1 if ci["low"] > 0 else -1 if ci["high"] < 0 else 0


def equivalence_verdict(a: np.ndarray, b: np.ndarray, margin: float, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Whether the means of ``a`` and ``b`` (paired ``[seeds, problems]``) are *comparable* within ``±margin``:
    two one-sided tests at 5% each, on both intervals, i.e. the 90% paired-bootstrap interval over seeds x problems
    *and* the 90% per-seed t-interval of ``a - b`` lie inside ``(-margin, margin)`` (with one seed the t-interval
    does not exist and the bootstrap decides alone). *Different* when both 95% intervals exclude 0 on the same
    side; else *inconclusive* (the data show neither equivalence nor a difference)."""
    ci90 = paired_difference(a, b, reps, seed, level=0.90)
    t90 = paired_t(a, b, level=0.90)
    inside = [ci for ci in (ci90, t90) if ci["low"] is not None]
    if all(-margin < ci["low"] and ci["high"] < margin for ci in inside):
        verdict = "comparable"
    elif agree(paired_difference(a, b, reps, seed, level=0.95), paired_t(a, b, level=0.95)) != 0:
        verdict = "different"
    else:
        verdict = "inconclusive"
    return {"verdict": verdict, "margin": margin, "low90": ci90["low"], "high90": ci90["high"],
            "t_low90": t90["low"], "t_high90": t90["high"]}


def agree(boot: Mapping[str, Any], t: Mapping[str, Any]) -> int:
    """+1 / -1 when the bootstrap interval and the per-seed t-interval (where it exists) both lie above / below 0,
    else 0: a difference is shown only when both intervals show it."""
    sides = {_excludes_zero(boot)} | ({_excludes_zero(t)} if t.get("low") is not None else set())
    return sides.pop() if len(sides) == 1 else 0


def claim_verdict(contrast: Mapping[str, Any]) -> str:
    """The paper's claim for one contrast ``a - b`` at one budget (docs/results.md, stated before the numbers):
    ``a`` *beats* ``b`` when their accuracy is comparable and the per-episode satisfaction difference is above 0
    on both 95% intervals; *loses* when it is below 0 on both; *no difference shown* otherwise; and *not at
    comparable accuracy* when the accuracy verdict is not "comparable" (then the share solved within the budget,
    in the table, says which sits better on the frontier)."""
    if contrast["accuracy"].get("equivalence", {}).get("verdict") != "comparable":
        return "not at comparable accuracy"
    side = agree(contrast["satisfaction"], contrast["satisfaction"]["t"])
    return {1: "beats", -1: "loses", 0: "no difference shown"}[side]


def expected_cost_verdict(cost: Mapping[str, Any], budget: float) -> str:
    """Whether a method satisfies the constraint *in expectation* (mean episode cost <= d), from its mean cost
    with the 95% interval (:func:`summary_row`'s ``cost``): ``satisfied`` (the whole interval <= d),
    ``violated`` (the whole interval > d), else ``undetermined``."""
    if cost["high"] <= budget:
        return "satisfied"
    if cost["low"] > budget:
        return "violated"
    return "undetermined"
