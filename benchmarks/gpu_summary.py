"""One line per GPU throughput target (docs/performance.md) from the JSON that ``benchmarks/gpu_check.sh`` leaves
in its folder.

``python benchmarks/gpu_summary.py OUT_DIR`` reads every ``throughput*.json`` there (a model's figures may come
from several runs: one per group of decode modes) and ``train_ppo.txt``, and prints for each model whether each
target is met, missed, or not measured (a stage that a time limit stopped, a file that is missing). It never
fails on missing figures: a GPU session must see what it got.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FAST_MIN = 0.9
ENV_MIN = 0.9
GRAPH_MIN = 4.0
GRAPH_MODES = ("compiled", "cudagraph")
SAMPLER_MIN = 1.0


def load_runs(folder: Path) -> tuple[list[dict], list[str]]:
    """The throughput JSON files of ``folder``, and a line for each unreadable one (skipped)."""
    runs, notes = [], []
    for path in sorted(folder.glob("throughput*.json")):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            notes.append(f"{path.name}: unreadable ({e})")
            continue
        run["_file"] = path.name
        runs.append(run)
    return runs, notes


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return f"{value:.3f} ({'met' if value >= target else 'MISSED'}, target >= {target:g})"


def _merge(runs: list[dict], model: str) -> dict:
    """One model's figures from every run that measured it; per-mode dicts are merged, later files win."""
    merged: dict = {"_files": []}
    for run in runs:
        m = run.get("models", {}).get(model)
        if not m:
            continue
        merged = _merge_dicts(merged, m)
        note = "".join([" (smoke run: its figures mean nothing)" if run.get("smoke") else "",
                        "" if run.get("complete") else " (incomplete: stopped before its end)"])
        merged["_files"].append(run["_file"] + note)
    return merged


def _merge_dicts(a: dict, b: dict) -> dict:
    """``b`` over ``a``, recursively; a figure ``b`` has as None (not measured there) keeps ``a``'s."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else (
            v if v is not None else out.get(k))
    return out


def model_lines(name: str, m: dict) -> list[str]:
    """The target lines of one model's merged figures."""
    lines = [f"{name}: from {', '.join(m['_files'])}"]
    beyond = ((m.get("fast_path") or {}).get("beyond_scoring_us_per_token") or {})
    detail = "; stepping beyond the scoring " + ", ".join(f"{k} {v:.2f} us/token" for k, v in beyond.items()) \
        if beyond else ""
    lines.append(f"{name}: 1. fast path / raw full forward {_verdict(m.get('fast_vs_raw'), FAST_MIN)}{detail}")
    env = m.get("env_vs_raw") or {}
    lines.append(f"{name}: 2. env / eager raw step " + ("; ".join(
        f"batch {b}: {_verdict(r, ENV_MIN)}" for b, r in env.items()) or "not measured"))
    ce = m.get("compiled_vs_eager") or {}
    frac = m.get("weight_bandwidth_fraction") or {}
    batches = {"env_step": (m.get("env_step_modes") or {}).get("batch"),
               "sampler": (m.get("sampler") or {}).get("batch")}
    for part, label in (("env_step", "env step / eager raw step"), ("sampler", "sampler / our eager sampler")):
        modes = ce.get(part) or {}
        if not modes:
            lines.append(f"{name}: 3. {label}, graph modes: not measured")
        for mode, ratio in modes.items():
            f = (frac.get("env_step_modes" if part == "env_step" else "sampler") or {}).get(mode)
            bw = f", {f:.1%} of the weight-bandwidth limit" if f is not None else ""
            verdict = _verdict(ratio, GRAPH_MIN) if mode in GRAPH_MODES else f"{ratio:.2f} (no target)"
            lines.append(f"{name}: 3. {label}, {mode} (batch {batches[part]}): {verdict}{bw}")
    vs = m.get("sampler_vs_generate") or {}
    lines.append(f"{name}: 4. sampler / generate() " + "; ".join(
        f"{k}: {_verdict(v, SAMPLER_MIN)}" for k, v in vs.items()) if vs else f"{name}: 4. not measured")
    peak = {k: v for k, v in (m.get("peak_mem_gib") or {}).items() if v is not None}
    growth = m.get("env_memory_growth_gib") or {}
    lines.append(f"{name}: 5. peak GiB " + (", ".join(f"{k} {v:.2f}" for k, v in peak.items()) or "not measured")
                 + "; growth over 4 episodes GiB " + (", ".join(f"batch {b}: {g:+.3f}" for b, g in growth.items())
                                                      or "not measured"))
    return lines


def summary(folder: Path) -> list[str]:
    """Every line: per model of every run, then the training run."""
    runs, notes = load_runs(folder)
    lines = ["== summary (GPU throughput targets) ==", *notes]
    names: list[str] = []
    for run in runs:
        names += [n for n in run.get("models", {}) if n not in names]
    if not names:
        lines.append(f"no throughput figures in {folder}")
    machine = next((r["machine"] for r in runs if r.get("machine")), None)
    if machine:
        lines.append(f"machine: {machine.get('cuda') or machine.get('processor')}, torch {machine.get('torch')}, "
                     f"transformers {machine.get('transformers')}, dtype {machine.get('dtype')}")
    for name in names:
        lines += model_lines(name, _merge(runs, name))
    both = all(n in names for n in ("qwen2-0.5b-shape", "qwen2-1.5b-shape"))
    lines.append(f"6. both Qwen2 shapes measured: {'yes' if both else 'no'}")
    try:
        t = json.loads((folder / "train_ppo.txt").read_text().strip().splitlines()[-1])
        lines.append(f"train_ppo: accuracy {t['before']['accuracy']:.3f} -> {t['after']['accuracy']:.3f}, "
                     f"{t['train_seconds']:.0f} s for {t['updates']} updates")
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        lines.append("train_ppo: no result (see train_ppo.txt)")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "runs/gpu_check")
    print("\n".join(summary(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
