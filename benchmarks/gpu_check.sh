#!/usr/bin/env bash
# GPU check: short runs on one CUDA device (bf16), under 6 minutes on an H100/H200: the step limits add up to 6
# minutes, a step that reaches its limit is cut and the next one starts. Each step writes its JSON into one folder
# (the throughput JSON after every stage, so a cut step keeps the stages it finished), and the script ends with
# one summary line per target of issue 11 (benchmarks/gpu_summary.py).
#
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]      (default runs/gpu_check)
# On a machine without gymnasium/math-verify/stable-baselines3 (the GPU machine): run benchmarks/gpu_wheels.sh
# where PyPI answers and carry .whl/ with the tree; benchmarks/gpu_env.sh installs them and puts the package on
# PYTHONPATH (no pip install of the package needed).
# GPU_CHECK_DRY=1: the same steps on the CPU at smoke sizes, to try the script's plumbing where no GPU is.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-runs/gpu_check}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
export PYTHON="$PY"
. benchmarks/gpu_env.sh

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

if [ "${GPU_CHECK_DRY:-0}" = 1 ]; then
  DEV=cpu; SIZE=--smoke; MODELS=shipped; MODES=static; COMPILED_MODES=static; DTYPE=float32; UPDATES=1; N=8
else
  DEV=cuda; SIZE=--quick; MODELS=qwen2-0.5b-shape,qwen2-1.5b-shape; MODES=cudagraph
  COMPILED_MODES=compiled,cudagraph; DTYPE=bfloat16; UPDATES=3; N=64
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" || exit 1
fi
TP=(benchmarks/throughput.py "$SIZE" --device "$DEV" --dtype "$DTYPE")

# 1. CUDA parity: the env on the device, bf16, the compiled and graph-replayed decode against eager
step tests_cuda 75 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_cuda_graph.py
# 2. env / fast path / sampler / graph-replayed decode against the raw forward, both Qwen2.5 shapes (no compiling)
step throughput_qwen 135 "$PY" "${TP[@]}" --models "$MODELS" --decode-modes "$MODES" \
  --json "$OUT/throughput_qwen.json"
# 3. torch.compile'd decode (Inductor + CUDA graphs) on the 0.5B shape: the env step (one compile), then the
#    sampler against a compiled generate() (two compiles), each in its own step so one slow compile loses only it
step throughput_qwen_compiled_env 45 "$PY" "${TP[@]}" --models "${MODELS%%,*}" --decode-modes "$COMPILED_MODES" \
  --stages modes --json "$OUT/throughput_qwen_compiled_env.json"
step throughput_qwen_compiled_sampler 75 "$PY" "${TP[@]}" --models "${MODELS%%,*}" \
  --decode-modes "$COMPILED_MODES" --stages sampler --json "$OUT/throughput_qwen_compiled_sampler.json"
# 4. a short PPO training on the shipped pair on the device
step train_ppo 30 "$PY" -m llm_cmdp_env.cli train --constraint learned-lagrangian --budget 15 --algo ppo \
  --updates "$UPDATES" --prompts-per-update "$N" --minibatch-size $((N / 2)) --lr 3e-5 --device "$DEV" \
  --env-device "$DEV" --env-dtype "$DTYPE" --eval-n $((N * 2)) --checkpoint-every 0 --out "$OUT/train_ppo" \
  --no-progress --json

"$PY" benchmarks/gpu_summary.py "$OUT" | tee "$OUT/summary.txt"
