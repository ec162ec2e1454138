"""LoRA fine-tuning throughput: LendSafe's training step beside a plain peft step, same batches, same run,
with the benchmark method (``benchmarks/method.py``).

Both train the same LoRA (r=16, alpha=32, dropout 0.05 on every projection) of the bundled base in
bfloat16 on the same length-grouped batches of ``data/sft/train.jsonl`` (each contender's n-th step takes
the n-th batch). The contenders take turns, step for step, in rounds, so machine load falls on both alike:

* ``lendsafe``: the step `lendsafe finetune` runs (``lendsafe.train.trainstep.training_step``: fused
  projections and blocked causal attention on Granite bases, LM head and chunked cross-entropy on
  target positions only, fp32 master weights with fused AdamW);
* ``plain_peft``: the textbook loop (``model(**batch, labels=...)`` over every position,
  ``nn.Dropout``, ``torch.optim.AdamW`` on the bfloat16 LoRA weights).

glibc malloc is told to keep freed memory (``keep_freed_memory``, as `lendsafe finetune` does) for the
whole process, so both contenders run with it. Throughput counts every non-padding token of a batch
(prompt + target), as the training log does: tokens/s is the timed steps' tokens over their seconds.

Target (issue 18): >= 350 training tokens/s.
Run: ``python benchmarks/bench_finetune.py [--quick] [--steps 4] [--max-rounds 5] [--batch-size 4] [--force]``.
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402
from lendsafe.train.finetune import (FinetuneSettings, collate, encode_all, length_grouped_batches,  # noqa: E402
                                     lora_config, read_examples)
from lendsafe.train.trainstep import MasterWeightOptimizer, keep_freed_memory, training_step  # noqa: E402

TARGET_TOKENS_PER_S = 350.0
WARMUP = 2                       # untimed steps of each contender first
ROUNDS = {"default": {"steps": 4, "min_rounds": 3, "max_rounds": 5},
          "quick": {"steps": 1, "min_rounds": 2, "max_rounds": 2}}


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


class Steps:
    """A contender stepping on the next batch each call, keeping each step's token count."""

    def __init__(self, step, batches: list[dict]):
        self.step, self.batches, self.tokens = step, iter(batches), []

    def __call__(self) -> None:
        batch = next(self.batches)
        self.step(batch)
        self.tokens.append(int(batch["attention_mask"].sum()))


def throughput(timing: method.Timing, contender: Steps) -> dict:
    """Tokens/s of the timed steps (the untimed warm-up steps left out)."""
    tokens, seconds = sum(contender.tokens[WARMUP:]), sum(timing.samples) / 1000
    return {"steps": len(timing.samples), "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def readme_row(figures: dict, goal: dict) -> dict[str, str]:
    ours, plain = figures["lendsafe"], figures["plain_peft"]
    return {"what": f"LoRA fine-tuning step (r=16, batch {figures['settings']['batch_size']}, bf16), training "
                    f"tokens/s over {ours['steps']} steps",
            "measured": f"{ours['tokens_per_s']:,.0f} tokens/s, step p50 {ours['p50_ms'] / 1000:.2f} s "
                        f"({figures['speedup_vs_plain_peft']}x; target >= {TARGET_TOKENS_PER_S:g}: "
                        f"{'met' if goal['met'] else 'NOT met'})",
            "baseline": f"plain peft loop on the same batches {plain['tokens_per_s']:,.0f} tokens/s, step p50 "
                        f"{plain['p50_ms'] / 1000:.2f} s"}


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 step per round, 2 rounds (a check that it runs)")
    parser.add_argument("--steps", type=int, help="steps of each contender per round (default 4)")
    parser.add_argument("--max-rounds", type=int, help="round limit (default 5)")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    rounds = dict(ROUNDS["quick" if args.quick else "default"])
    rounds.update({k: v for k, v in (("steps", args.steps), ("max_rounds", args.max_rounds)) if v})
    rounds["min_rounds"] = min(rounds["min_rounds"], rounds["max_rounds"])
    run = method.Run("finetune", "torch", "transformers", "peft")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    malloc_tuned = keep_freed_memory()
    settings = FinetuneSettings(batch_size=args.batch_size)
    batches = benchmark_batches(settings, WARMUP + rounds["steps"] * rounds["max_rounds"])
    steps = {"lendsafe": lendsafe_contender(settings), "plain_peft": plain_peft_contender(settings)}
    contenders = {name: Steps(step, batches) for name, step in steps.items()}
    timings = method.interleave(contenders, calls=rounds["steps"], min_rounds=rounds["min_rounds"],
                                max_rounds=rounds["max_rounds"], warmup=WARMUP)
    figures = method.summaries(timings, baseline="plain_peft")
    for name, contender in contenders.items():
        figures[name].update(throughput(timings[name], contender))
    figures["speedup_vs_plain_peft"] = round(figures["lendsafe"]["tokens_per_s"] / figures["plain_peft"]["tokens_per_s"], 2)
    figures["settings"] = {"batch_size": settings.batch_size, "max_length": settings.max_length,
                           "lora_r": settings.lora_r, "lendsafe_step": steps["lendsafe"].kind,
                           "malloc_keeps_freed_memory": malloc_tuned, "torch_threads": torch.get_num_threads()}
    goals = {"tokens_per_s": method.target(figures["lendsafe"]["tokens_per_s"], TARGET_TOKENS_PER_S, at_most=False)}
    for name in steps:
        row = figures[name]
        print(f"{name:>10}: {row['tokens_per_s']:7.1f} tokens/s, step p50 {row['p50_ms'] / 1000:.2f} s over "
              f"{row['steps']} steps")
    print(f"speed-up vs plain peft: {figures['speedup_vs_plain_peft']}x")
    method.print_targets(goals)
    run.finish(figures, [readme_row(figures, goals["tokens_per_s"])], {k: t.spread() for k, t in timings.items()},
               force=args.force, targets=goals, rounds=rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
