"""benchmarks/interop_throughput.py --smoke on the tiny models: every interop path runs, counts the episodes it
finished and writes its figures (smoke sizes: the figures mean nothing, the structure does). The OmniSafe row is
a skip with the reason when OmniSafe is not installed."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_interop_throughput",
                                                  ROOT / "benchmarks" / "interop_throughput.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")
def test_smoke_run_times_every_path_side_by_side(bench, tiny_dir, tmp_path, capsys):
    pytest.importorskip("stable_baselines3", reason='the SB3 path needs stable-baselines3 (pip install -e ".[sb3]")')
    out = tmp_path / "interop_smoke.json"
    assert bench.main(["--smoke", "--teacher", str(tiny_dir / "teacher"), "--student", str(tiny_dir / "student"),
                       "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["smoke"] and data["episodes"] == 2 and data["max_new_tokens"] == 8 and data["torch_threads"] == 1
    paths = data["paths"]
    assert list(paths) == list(bench.PATHS)
    omnisafe_installed = importlib.util.find_spec("omnisafe") is not None
    if not omnisafe_installed:
        assert "OmniSafe not installed" in paths.pop("omnisafe")["skipped"]
    assert paths["ours"]["episodes"] == 2  # exactly N episodes
    for name, row in paths.items():
        assert "skipped" not in row, name
        # the step-based paths collect N x M steps: at least N finished episodes, each at most M steps
        if name != "ours":
            assert row["env_steps"] == 2 * 8 and row["episodes"] >= 2, name
        assert 0 < row["collect_s"] <= row["collect_update_s"], name
        assert row["collect_episodes_per_s"] == pytest.approx(row["episodes"] / row["collect_s"], rel=1e-2), name
        for key in ("collect_episodes_per_s", "collect_update_episodes_per_s", "ours_over_this_collect"):
            assert math.isfinite(row[key]) and row[key] > 0, (name, key)
    assert paths["ours"]["ours_over_this_collect"] == 1.0
    text = capsys.readouterr().out
    assert "coll+upd s" in text and all(line in text for line in data["table"])


def test_step_counter_counts_episode_ends_and_restores_step(bench, tiny_env_kwargs):
    import gymnasium as gym

    from llm_cmdp_env.envs.math_distill import MathDistillEnv

    original = MathDistillEnv.step
    env = gym.make("MathDistill-v0", **tiny_env_kwargs)
    with bench.counting_steps() as counts:
        env.reset(seed=0)
        ends = 0
        for _ in range(30):
            *_, term, trunc, _ = env.step(5)
            if term or trunc:
                ends += 1
                env.reset()
    assert counts == {"steps": 30, "episodes": ends} and ends >= 2  # 12-token episodes
    assert MathDistillEnv.step is original
