"""LoRA fine-tuning throughput: LendSafe's training step beside a plain peft step, same batches, same run.

Both train the same LoRA (r=16, alpha=32, dropout 0.05 on every projection) of the bundled base in
bfloat16 on the same length-grouped batches of ``data/sft/train.jsonl``. The contenders take turns,
step for step, so machine load falls on both alike:

* ``lendsafe``: the step `lendsafe finetune` runs (``lendsafe.train.trainstep.training_step``: fused
  projections and blocked causal attention on Granite bases, LM head and chunked cross-entropy on
  target positions only, fp32 master weights with fused AdamW);
* ``plain_peft``: the textbook loop (``model(**batch, labels=...)`` over every position,
  ``nn.Dropout``, ``torch.optim.AdamW`` on the bfloat16 LoRA weights).

glibc malloc is told to keep freed memory (``keep_freed_memory``, as `lendsafe finetune` does) for the
whole process, so both contenders run with it. Throughput counts every non-padding token of a batch
(prompt + target), as the training log does.

    .venv/bin/python benchmarks/bench_finetune.py [--steps 12] [--warmup 2] [--batch-size 4]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lendsafe.train.finetune import (FinetuneSettings, collate, encode_all, length_grouped_batches,  # noqa: E402
                               lora_config, read_examples)
from lendsafe.train.trainstep import MasterWeightOptimizer, keep_freed_memory, training_step  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "finetune.json"
TARGET_TOKENS_PER_S = 350


def lendsafe_contender(settings: FinetuneSettings):
    """The step function of LendSafe's own training step."""
    trainer = training_step(_peft_model(settings), settings.lora_dropout, settings.seed)
    optimizer = MasterWeightOptimizer(trainer.model.parameters(), settings.lr)

    def step(batch):
        trainer.loss(batch).backward()
        optimizer.step(settings.lr)
    step.kind = type(trainer).__name__
    return step


def plain_peft_contender(settings: FinetuneSettings):
    """The textbook step: full-sequence LM loss, ``nn.Dropout``, AdamW on the bfloat16 LoRA weights."""
    import torch

    model = _peft_model(settings)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.lr, weight_decay=0.0)

    def step(batch):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def _peft_model(settings: FinetuneSettings):
    import torch
    from peft import get_peft_model

    from lendsafe.lm.basemodel import load_base_model
    from lendsafe.config import Settings

    torch.manual_seed(settings.seed)
    model, _ = load_base_model(Settings(base_model=settings.base_model), dtype=torch.bfloat16)
    model.config.use_cache = False
    model = get_peft_model(model, lora_config(settings), autocast_adapter_dtype=False)
    model.train()
    return model


def benchmark_batches(settings: FinetuneSettings, count: int) -> list[dict]:
    from transformers import AutoTokenizer

    from lendsafe.lm.basemodel import ensure_base_model
    from lendsafe.config import Settings

    tokenizer = AutoTokenizer.from_pretrained(ensure_base_model(Settings(base_model=settings.base_model)))
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    examples, _ = encode_all(tokenizer, read_examples(settings.data_dir / "train.jsonl"), settings.max_length)
    batches = length_grouped_batches(examples, settings.batch_size, random.Random(settings.seed))
    return [collate(batch, tokenizer.pad_token_id) for batch in batches[:count]]


def take_turns(contenders: dict, batches: list[dict], warmup: int) -> dict:
    """Seconds per step of each contender, alternating on each batch; the first ``warmup`` are not timed."""
    seconds = {name: [] for name in contenders}
    for index, batch in enumerate(batches):
        for name, step in contenders.items():
            started = time.perf_counter()
            step(batch)
            if index >= warmup:
                seconds[name].append(time.perf_counter() - started)
    return seconds


def summarize(seconds: list[float], batches: list[dict]) -> dict:
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    return {"steps": len(seconds), "tokens": tokens, "seconds": round(sum(seconds), 2),
            "step_p50_s": round(statistics.median(seconds), 3), "tokens_per_s": round(tokens / sum(seconds), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    malloc_tuned = keep_freed_memory()
    settings = FinetuneSettings(batch_size=args.batch_size)
    batches = benchmark_batches(settings, args.warmup + args.steps)
    contenders = {"lendsafe": lendsafe_contender(settings), "plain_peft": plain_peft_contender(settings)}
    seconds = take_turns(contenders, batches, args.warmup)
    timed = batches[args.warmup:]
    report = {name: summarize(values, timed) for name, values in seconds.items()}
    report["speedup_vs_plain_peft"] = round(report["lendsafe"]["tokens_per_s"] / report["plain_peft"]["tokens_per_s"], 2)
    report["target"] = {"tokens_per_s": f">= {TARGET_TOKENS_PER_S}",
                        "met": report["lendsafe"]["tokens_per_s"] >= TARGET_TOKENS_PER_S}
    report["settings"] = {"batch_size": settings.batch_size, "max_length": settings.max_length, "lora_r": settings.lora_r,
                          "lendsafe_step": contenders["lendsafe"].kind, "malloc_keeps_freed_memory": malloc_tuned}
    report["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                         "load_average": list(os.getloadavg()), "torch": torch.__version__}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for name in contenders:
        row = report[name]
        print(f"{name:>10}: {row['tokens_per_s']:7.1f} tokens/s, step p50 {row['step_p50_s']} s over {row['steps']} steps")
    print(f"speed-up vs plain peft: {report['speedup_vs_plain_peft']}x; target >= {TARGET_TOKENS_PER_S} tokens/s "
          f"{'met' if report['target']['met'] else 'NOT met'}; results in {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
