"""benchmarks/throughput.py and benchmarks/gpu_summary.py: the plumbing a GPU session relies on, checked on the CPU
(smoke sizes: the figures mean nothing, the structure, the per-stage saving and the verdicts do); and
benchmarks/compare_replicates.py, the check that repeated compare runs give the same numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput():
    return _load("throughput")


@pytest.fixture(scope="module")
def gpu_summary():
    return _load("gpu_summary")


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


@pytest.mark.usefixtures("one_thread")
def test_smoke_run_writes_every_stage_and_the_summary_reads_it(throughput, gpu_summary, tmp_path, capsys):
    out = tmp_path / "throughput_smoke.json"
    assert throughput.main(["--smoke", "--models", "shipped", "--decode-modes", "static", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["complete"] and data["smoke"] and data["decode_modes"] == ["static"]
    m = data["models"]["shipped"]
    assert list(m["stage_seconds"]) == list(throughput.STAGES)
    assert set(m["env_vs_raw"]) == {"1", "2"} and m["fast_vs_raw"] > 0
    assert set(m["sampler"]["ours_tokens_per_s"]) == {"eager", "static"}
    assert m["sampler_vs_generate"]["eager"] > 0 and m["sampler_vs_generate"]["compiled"] is None
    assert set(m["compiled_vs_eager"]["env_step"]) == set(m["compiled_vs_eager"]["sampler"]) == {"static"}
    assert all(math.isfinite(x) and x >= 0 for x in _numbers(m))
    capsys.readouterr()
    lines = gpu_summary.summary(tmp_path)
    text = "\n".join(lines)
    assert "smoke run: its figures mean nothing" in text
    for target in ("1. fast path", "2. env / eager raw step batch 1", "3. env step / eager raw step, static",
                   "4. sampler / generate() eager", "5. peak GiB not measured", "6. both Qwen2 shapes measured: no",
                   "train_ppo: no result"):
        assert target in text, target


@pytest.mark.usefixtures("one_thread")
def test_a_run_stopped_mid_way_keeps_the_stages_it_finished(throughput, tmp_path, monkeypatch):
    out = tmp_path / "throughput.json"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(throughput, "naive_vs_ours", stop)
    with pytest.raises(KeyboardInterrupt):
        throughput.main(["--smoke", "--models", "shipped", "--decode-modes", "static", "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["complete"] is False
    m = data["models"]["shipped"]
    assert list(m["stage_seconds"]) == ["env_step", "fast_path", "sampler", "modes"]
    assert "naive" not in m and m["fast_vs_raw"] > 0


def test_bad_arguments_are_refused(throughput, capsys):
    for argv, message in ((["--decode-modes", "cudagraph", "--device", "cpu"], "needs a CUDA device"),
                          (["--decode-modes", "turbo"], "decode must be one of"),
                          (["--stages", "fast_path,warp"], "unknown stages"),
                          (["--models", "gpt5"], "unknown model")):
        with pytest.raises(SystemExit) as e:
            throughput.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err


def _write(folder: Path, name: str, models: dict, complete: bool = True) -> None:
    (folder / name).write_text(json.dumps({"complete": complete, "models": models, "machine": {"cuda": "H200"}}))


def test_summary_verdicts_merge_runs_and_survive_missing_or_broken_files(gpu_summary, tmp_path):
    assert "no throughput figures" in "\n".join(gpu_summary.summary(tmp_path))
    _write(tmp_path, "throughput_qwen.json", {"qwen2-0.5b-shape": {
        "fast_vs_raw": 0.95, "env_vs_raw": {"8": 0.91, "64": 0.85, "256": 0.8996},
        "fast_path": {"beyond_scoring_us_per_token": {"side_by_side": 1.25, "one_by_one": 6.5}},
        "sampler": {"batch": 64}, "env_step_modes": {"batch": 64},
        "sampler_vs_generate": {"eager": 1.2, "compiled": None, "cudagraph": None},
        "compiled_vs_eager": {"sampler": {"cudagraph": 5.0}, "env_step": {"cudagraph": 3.5}},
        "weight_bandwidth_fraction": {"env_step_modes": {"cudagraph": 0.25}},
        "peak_mem_gib": {"fast_path": 2.5, "sampler": None}, "env_memory_growth_gib": {"8": 0.0}}})
    _write(tmp_path, "throughput_qwen_compiled.json", {"qwen2-0.5b-shape": {
        "sampler": {"batch": 64}, "sampler_vs_generate": {"eager": 1.1, "compiled": 0.8, "cudagraph": 1.4},
        "compiled_vs_eager": {"sampler": {"compiled": 4.5}}}}, complete=False)
    (tmp_path / "throughput_broken.json").write_text("{not json")
    (tmp_path / "train_ppo.txt").write_text('noise\n{"before": {"accuracy": 0.5}, "after": {"accuracy": 0.52}, '
                                            '"train_seconds": 33, "updates": 10}\n')
    text = "\n".join(gpu_summary.summary(tmp_path))
    assert "throughput_broken.json: unreadable" in text
    assert "throughput_qwen_compiled.json (incomplete: stopped before its end)" in text
    assert "1. fast path / raw full forward 0.950 (met" in text
    assert "stepping beyond the scoring side_by_side 1.25 us/token, one_by_one 6.50 us/token" in text
    assert "batch 256: 0.900 (MISSED" in text  # shown to 3 places, judged unrounded
    assert "batch 8: 0.910 (met" in text and "batch 64: 0.850 (MISSED" in text
    assert "env step / eager raw step, cudagraph (batch 64): 3.500 (MISSED, target >= 4), 25.0% of the" in text
    assert "sampler / our eager sampler, cudagraph (batch 64): 5.000 (met" in text
    assert "sampler / our eager sampler, compiled (batch 64): 4.500 (met" in text  # merged from the second run
    assert "eager: 1.100 (met" in text and "compiled: 0.800 (MISSED" in text and "cudagraph: 1.400 (met" in text
    assert "peak GiB fast_path 2.50; growth over 4 episodes GiB batch 8: +0.000" in text
    assert "6. both Qwen2 shapes measured: no" in text
    assert "train_ppo: accuracy 0.500 -> 0.520, 33 s for 10 updates" in text


def test_compare_replicates_finds_equal_and_differing_repeats_of_a_run(tmp_path, capsys):
    """Two archives holding one run each twice: identical repeats pass; a changed per-problem cost or trace value
    (not the wall time) fails with exit 1 and names the field; archives that share no run exit 2."""
    rep = _load("compare_replicates")
    src = ROOT / "docs" / "data" / "compare_binding" / "test" / "budget-reward" / "g0_d400"
    r0, r1 = (json.loads((src / f"seed_{s}.json").read_text()) for s in (0, 1))
    for root in ("a", "b"):
        for r in (r0, r1):
            path = tmp_path / root / "test" / f"seed_{r['seed']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r))
    again = dict(r1, train_seconds=r1["train_seconds"] + 99.0)  # only the wall time differs: still identical
    again["train_trace"] = dict(r1["train_trace"], seconds=[0.0] * len(r1["train_trace"]["seconds"]))
    (tmp_path / "b" / "test" / "seed_1.json").write_text(json.dumps(again))
    assert rep.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["identical"] == 2
    changed = json.loads(json.dumps(r0))
    changed["per_problem"]["cost"][3] += 0.5
    changed["train_trace"]["lambda"] = [1.0] * len(r0["train_trace"]["update"])
    (tmp_path / "b" / "test" / "seed_0.json").write_text(json.dumps(changed))
    assert rep.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS in per_problem.cost, train_trace.lambda" in out and "1 of 2 replicated runs identical" in out
    (tmp_path / "c").mkdir()
    assert rep.main([str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    (tmp_path / "c" / "seed_9.json").write_text('{"fingerprint": ')  # a truncated record is an error, not skipped
    with pytest.raises(ValueError, match="not valid JSON"):
        rep.main([str(tmp_path / "a"), str(tmp_path / "c")])
    (tmp_path / "c" / "seed_9.json").write_text(json.dumps(changed))  # one run, two different records in a root
    (tmp_path / "c" / "copy.json").write_text(json.dumps(r0))
    with pytest.raises(ValueError, match="one run .* with different records"):
        rep.main([str(tmp_path / "a"), str(tmp_path / "c")])
