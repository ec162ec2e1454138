#!/usr/bin/env bash
# The recorded fine-tuning runs, in the background at low priority, each with its log under var/:
#   scripts/finetune_practice.sh sweep        LoRA sweep of data/sweep/lora.toml -> models/adapters/lendsafe-smollm2/sweep.{json,png}
#   scripts/finetune_practice.sh preference   DPO round of data/sweep/preference.toml -> .../preference.json
# Both resume: a sweep skips the runs its record already holds; a preference round reuses samples drawn
# with the same settings and adapter. The PID is printed; follow the log with `tail -f`.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A FLAGS=([sweep]="--sweep data/sweep/lora.toml" [preference]="--preference data/sweep/preference.toml")
RUN=${1:?usage: $0 sweep|preference}
[[ -n "${FLAGS[$RUN]:-}" ]] || { echo "expected 'sweep' or 'preference'; got '$RUN'" >&2; exit 2; }
mkdir -p var
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nohup nice -n 5 .venv/bin/lendsafe finetune ${FLAGS[$RUN]} > "var/$RUN.log" 2>&1 &
echo "$RUN running in the background: pid $!, log var/$RUN.log"
