#!/usr/bin/env bash
# GPU check: short runs on one CUDA device (bf16), under 6 minutes on an H100/H200; every step has its own time
# limit, writes its JSON into one folder, and the script ends with one summary line per target of issue 11.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]      (default runs/gpu_check)
# A machine without gymnasium/math-verify/stable-baselines3: install them first (pip install --no-deps ...).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-runs/gpu_check}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
PY="${PYTHON:-python}"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, never stop the script
  local name="$1" limit="$2"
  shift 2
  echo "== $name (limit ${limit}s) =="
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.txt"
  echo "-- $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print('device:', torch.cuda.get_device_name(0))" || exit 1

step tests_cuda 90 "$PY" -m pytest -q tests/test_cuda.py tests/test_static_decode.py
# env / fast path / sampler against the raw forward, bf16: the shipped teacher and the Qwen2.5-0.5B shape
step throughput_small 90 "$PY" benchmarks/throughput.py --quick --device cuda --dtype bfloat16 \
  --models shipped --json "$OUT/throughput_small.json"
step throughput_qwen 150 "$PY" benchmarks/throughput.py --quick --device cuda --dtype bfloat16 \
  --models qwen2-0.5b-shape,qwen2-1.5b-shape --json "$OUT/throughput_qwen.json"
# a short PPO training on the shipped pair on the GPU
step train_ppo 90 "$PY" -m llm_cmdp_env.cli train --constraint learned-lagrangian --budget 15 --algo ppo \
  --updates 10 --prompts-per-update 64 --minibatch-size 32 --lr 3e-5 --device cuda --env-device cuda \
  --env-dtype bfloat16 --eval-n 256 --checkpoint-every 0 --out "$OUT/train_ppo" --no-progress --json

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def load(name):
    p = out / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None

print("== summary (targets of issue 11) ==")
q = load("throughput_qwen")
for name in ("qwen2-0.5b-shape", "qwen2-1.5b-shape"):
    m = (q or {}).get("models", {}).get(name)
    if m is None:
        print(f"{name}: not measured (see {out}/throughput_qwen.txt)")
        continue
    print(f"{name}: fast path / raw forward {m['fast_vs_raw']:.2f} (target >= 0.9)")
    print(f"{name}: env / raw step {', '.join(f'b{b} {r:.2f}' for b, r in m['env_vs_raw'].items())} (target >= 0.9)")
    print(f"{name}: compiled / eager sampler {m['compiled_vs_eager']} (target >= 4 at batch 64; env_step: no "
          "compiled path)")
    print(f"{name}: weight-bandwidth fraction {m.get('weight_bandwidth_fraction')}")
    print(f"{name}: sampler / generate() {m['sampler_vs_generate']} (target >= 1)")
    print(f"{name}: peak memory GiB {m['peak_mem_gib']}")
s = load("throughput_small")
if s:
    m = s["models"]["shipped"]
    print(f"shipped: fast path {m['fast_vs_raw']:.2f}, env/raw {m['env_vs_raw']}, sampler/generate {m['sampler_vs_generate']}")
try:
    t = json.loads((out / "train_ppo.txt").read_text().strip().splitlines()[-1])
except (OSError, ValueError, IndexError):
    t = None
print("train_ppo:", "failed" if t is None else f"accuracy {t['before']['accuracy']:.3f} -> {t['after']['accuracy']:.3f}, "
      f"{t['train_seconds']:.0f} s for {t['updates']} updates")
EOF
