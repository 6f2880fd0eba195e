#!/usr/bin/env bash
# GPU check: short runs on a CUDA device (bf16), for a machine with a GPU. Under 5 minutes on one H100.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]      (default runs/gpu_check; JSON results land there)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-runs/gpu_check}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
PY="${PYTHON:-python}"

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print('device:', torch.cuda.get_device_name(0))"

# --- env throughput vs the teacher's own forward (shipped teacher and a 12x768 GPT-2), bf16 on the GPU.
echo "== throughput (bf16, CUDA) =="
timeout 200 "$PY" benchmarks/throughput.py --quick --device cuda --dtype bfloat16 --json "$OUT/throughput.json" \
  | tee "$OUT/throughput.txt"

# --- agent: a short PPO training on the shipped pair, policy on CUDA with bf16 autocast, teacher in bf16.
# Prints one JSON line with test accuracy / constraint satisfaction before and after, and the training time.
echo "== agent training step (PPO, budget reward, CUDA) =="
timeout 240 "$PY" -m llm_cmdp_env.cli train --constraint budget --budget 2 --algo ppo --updates 20 \
  --prompts-per-update 64 --minibatch-size 32 --lr 2e-5 --device cuda --env-device cuda --env-dtype bfloat16 \
  --eval-n 256 --checkpoint-every 10 --out "$OUT/train_ppo_budget" --no-progress --json \
  | tee "$OUT/train_ppo_budget.json"

echo "== agent training step (GRPO, learned lambda, CUDA, LoRA + gradient checkpointing) =="
timeout 180 "$PY" -m llm_cmdp_env.cli train --constraint learned-lagrangian --budget 2 --algo grpo \
  --group-size 8 --prompts-per-update 16 --minibatch-size 32 --lr 2e-4 --lora-r 8 --gradient-checkpointing \
  --updates 10 --device cuda --env-device cuda --env-dtype bfloat16 --eval-n 128 --checkpoint-every 0 \
  --out "$OUT/train_grpo_lagrangian_lora" --no-progress --json | tee "$OUT/train_grpo_lagrangian_lora.json"

echo "== eval of the PPO run =="
"$PY" -m llm_cmdp_env.cli eval "$OUT/train_ppo_budget" --n 256 --device cuda --env-device cuda --json \
  | tee "$OUT/eval_ppo_budget.json"
tail -n 3 "$OUT/train_ppo_budget/progress.csv"
