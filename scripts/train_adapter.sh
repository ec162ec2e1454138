#!/usr/bin/env bash
# Train the shipped LoRA adapter (models/adapters/lendsafe-smollm2) on data/sft in the background.
# The log goes to models/adapters/lendsafe-smollm2.train.log; the PID is printed. Extra flags are
# passed to `lendsafe finetune` (e.g. --max-steps 50 for a short run). About 25-40 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-models/adapters/lendsafe-smollm2}
LOG=${LOG:-$OUT.train.log}
EPOCHS=${EPOCHS:-1}
mkdir -p "$(dirname "$OUT")"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nohup .venv/bin/python -m lendsafe.commands.finetune --base-model smollm2-135m --data-dir data/sft --out "$OUT" \
    --epochs "$EPOCHS" --batch-size 4 --lr 2e-4 --max-length 720 --seed 0 "$@" > "$LOG" 2>&1 &
echo "training in the background: pid $! , log $LOG"
