"""Explanation generation: latency at batch 1 and throughput at batch 8-16, beside baselines from the same run.

Baselines: plain ``generate`` of the base model without the adapter or the generator's machinery, and a
memory-bandwidth bound (a large numpy copy gives GB/s; decoding one token reads every weight once).
Prompts are the SFT test set's (held-out decisions, realistic length); if no trained adapter exists, a
freshly initialised LoRA adapter (identity: B = 0) is used and the JSON says so.

Draft-verified decoding: each held-out prompt is timed without and with its decision's composer text
as draft, one after the other (same machine state); the texts must agree (counted, not assumed). The
pipeline section runs whole decisions (``Pipeline.run``) with and without drafts and counts how many
explanations passed verification at the first attempt.

    .venv/bin/python benchmarks/bench_explain.py [--prompts 16] [--batch-sizes 8,16] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lendsafe.config import Settings  # noqa: E402
from lendsafe.evaluation.writers import Uncached  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "explain.json"
MAX_NEW_TOKENS = 360          # the longest explanation with its rights part is about 300 tokens
FALLBACK_PROMPT = [{"role": "system", "content": "You write the explanation paragraph of a credit decision notice."},
                   {"role": "user", "content": "Decision: denied\nPrincipal reasons, most important first:\n"
                                               "1. Debt-to-income ratio too high (0.45)\n2. Delinquent credit obligations\n"
                                               "Write the explanation."}]


def load_rows(count: int) -> list[dict]:
    """SFT test rows (messages, the composer's target, the application), denials first; or a fallback."""
    path = ROOT / "data" / "sft" / "test.jsonl"
    if not path.is_file():
        return [{"messages": FALLBACK_PROMPT, "target": None}] * count
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda row: row.get("decision") != "deny")
    return rows[:count]


def memory_bandwidth_gbs(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes read + written per second by a large numpy copy."""
    import numpy as np

    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    np.copyto(target, source)
    started = time.perf_counter()
    for _ in range(repeats):
        np.copyto(target, source)
    return 2 * source.nbytes * repeats / (time.perf_counter() - started) / 1e9


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def adapter_for_benchmark(settings: Settings, workdir: Path, adapter_dir: Path | None) -> tuple[Path, str]:
    """The given (or configured) adapter when it is trained for this base; otherwise a fresh one."""
    from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model
    from lendsafe.lm.adapters import check_adapter_compatible
    from lendsafe.train.finetune import init_adapter

    adapter_dir = adapter_dir or settings.adapter_dir
    try:
        manifest = check_adapter_compatible(adapter_dir, base_model_sha256(ensure_base_model(settings)))
        if manifest.get("trained"):
            return adapter_dir, (f"trained adapter {adapter_dir} ({manifest.get('steps')} steps, final validation "
                                 f"loss {manifest.get('final_validation_loss')})")
    except Exception as exc:  # absent or foreign adapter: say so in the results
        print(f"no usable trained adapter ({exc}); using a freshly initialised one")
    fresh = workdir / "fresh-adapter"
    init_adapter(fresh)
    return fresh, "freshly initialised LoRA adapter (untrained, B = 0): no trained adapter was available"


def run_generator_batch1(generator, prompts) -> dict:
    results = [generator.generate([p], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0] for p in prompts]
    return summarize([r.latency_ms for r in results], [r.tokens for r in results])


def run_draft_pairs(generator, rows: list[dict]) -> dict:
    """Batch 1 without and with the composer's text as draft, prompt by prompt; texts compared."""
    plain, drafted = [], []
    for row in rows:
        plain += generator.generate([row["messages"]], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
        drafted += generator.generate([row["messages"]], max_new_tokens=MAX_NEW_TOKENS, use_cache=False,
                                      drafts=[row["target"]])
    differing = [i for i, (a, b) in enumerate(zip(plain, drafted)) if (a.text, a.tokens) != (b.text, b.tokens)]
    accepted = sum(r.draft_tokens_accepted for r in drafted)
    return {"without_draft": summarize([r.latency_ms for r in plain], [r.tokens for r in plain]),
            "with_composer_draft": summarize([r.latency_ms for r in drafted], [r.tokens for r in drafted]),
            "texts_differing_from_no_draft": len(differing), "prompts": len(rows),
            "draft_tokens_accepted_share": round(accepted / max(1, sum(r.tokens for r in drafted)), 3),
            "outputs_equal_to_composer_text": sum(r.text == row["target"] for r, row in zip(drafted, rows)),
            "p50_ratio_with_vs_without": round(statistics.median([r.latency_ms for r in drafted])
                                               / statistics.median([r.latency_ms for r in plain]), 3)}


def run_pipeline_pairs(generator, rows: list[dict]) -> dict:
    """Whole decisions (score, reasons, retrieval, explanation, verification) without and with drafts."""
    from lendsafe.explain.pipeline import Pipeline
    from lendsafe.knowledge.retrieval import KnowledgeBase

    settings, knowledge = Settings(), KnowledgeBase(Settings())
    runs = {}
    for name, drafts in (("without_draft", False), ("with_composer_draft", True)):
        writer = Uncached(generator, drafts=drafts, max_new_tokens=MAX_NEW_TOKENS)
        decisions = [Pipeline(settings, dataset=row["dataset"], reference=row["reference"], writer="auto",
                              generator=writer, knowledge=knowledge).run(row["application"]) for row in rows]
        runs[name] = decisions
    summary = {name: {"p50_ms": round(statistics.median(d.latency_ms for d in ds), 1),
                      "p95_ms": round(percentile([d.latency_ms for d in ds], 0.95), 1),
                      "lora_passed_first_attempt": sum(d.verification["attempts"][0]["passed"] for d in ds),
                      "writer_lora": sum(d.writer == "lora" for d in ds),
                      "all_issued_texts_pass_verification": all(d.verification["passed"] for d in ds)}
               for name, ds in runs.items()}
    same = sum(a.explanation == b.explanation for a, b in zip(runs["without_draft"], runs["with_composer_draft"]))
    return {"decisions": len(rows), **summary, "same_explanation_with_and_without_draft": same}


def run_plain_generate_batch1(model, tokenizer, prompts, threads: int) -> dict:
    """Baseline: the base model's own ``generate``, no adapter, no cleaning, no cache."""
    import torch

    torch.set_num_threads(threads)
    latencies, tokens = [], []
    with torch.inference_mode():
        for messages in prompts:
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
            started = time.perf_counter()
            output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            latencies.append((time.perf_counter() - started) * 1000)
            tokens.append(output.shape[1] - inputs["input_ids"].shape[1])
    return summarize(latencies, tokens)


def summarize(latencies_ms: list[float], tokens: list[int]) -> dict:
    total_s = sum(latencies_ms) / 1000
    return {"p50_ms": round(statistics.median(latencies_ms), 1), "p95_ms": round(percentile(latencies_ms, 0.95), 1),
            "mean_tokens": round(statistics.mean(tokens), 1), "tokens_per_s": round(sum(tokens) / total_s, 2),
            "ms_per_100_tokens": round(100 * 1000 * total_s / max(sum(tokens), 1), 1)}


def targets_met(row: dict) -> dict:
    return {"p50": row["p50_ms"] <= 2000, "p95": row["p95_ms"] <= 4000}


def run_throughput(generator, prompts, batch_size: int) -> dict:
    generator.batch_size = batch_size
    started = time.perf_counter()
    results = generator.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
    elapsed = time.perf_counter() - started
    tokens = sum(r.tokens for r in results)
    return {"batch_size": batch_size, "prompts": len(prompts), "seconds": round(elapsed, 2),
            "tokens_per_s": round(tokens / elapsed, 2), "explanations_per_min": round(60 * len(prompts) / elapsed, 2)}


def run_cache_hit(generator, prompts) -> dict:
    generator.generate(prompts[:1], max_new_tokens=MAX_NEW_TOKENS)
    hit = generator.generate(prompts[:1], max_new_tokens=MAX_NEW_TOKENS)[0]
    return {"cached": hit.cached, "latency_ms": hit.latency_ms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16, help="prompts timed one by one (batch 1)")
    parser.add_argument("--pipeline", type=int, default=8, help="held-out decisions run through the pipeline (0: skip)")
    parser.add_argument("--batch-sizes", default="8,16", help="batch sizes for the throughput runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the generator's)")
    parser.add_argument("--adapter-dir", type=Path, default=None, help="adapter to time (default: Settings().adapter_dir)")
    args = parser.parse_args(argv)

    from lendsafe.explain.generation import DEFAULT_THREADS, LoraGenerator

    settings = Settings()
    threads = args.threads or DEFAULT_THREADS
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory() as workdir:
        adapter_dir, adapter_note = adapter_for_benchmark(settings, Path(workdir), args.adapter_dir)
        rows = load_rows(max(args.prompts, *batch_sizes))
        prompts = [row["messages"] for row in rows]
        bandwidth = memory_bandwidth_gbs()
        plain_model = _plain_base(settings)
        weight_bytes = sum(p.numel() * p.element_size() for p in plain_model.parameters())
        bound_tokens_per_s = bandwidth / 2 * 1e9 / weight_bytes   # copy GB/s counts read + write; decoding reads
        plain = run_plain_generate_batch1(plain_model, _tokenizer(settings), prompts[:args.prompts], threads)
        del plain_model
        variants, drafts = {}, {}
        for dtype in ("bfloat16", "int8"):
            generator = LoraGenerator(settings, adapter_dir=adapter_dir, cache_dir=Path(workdir) / "cache",
                                      dtype=dtype, threads=threads)
            variants[dtype] = run_generator_batch1(generator, prompts[:args.prompts])
            if rows[0]["target"]:
                drafts[dtype] = run_draft_pairs(generator, rows[:args.prompts])
        generator.threads = 2
        variants["int8_2_threads"] = run_generator_batch1(generator, prompts[:args.prompts])
        if drafts:
            drafts["int8_2_threads"] = run_draft_pairs(generator, rows[:args.prompts])
        generator.threads = threads
        throughput = [run_throughput(generator, prompts[:size], size) for size in batch_sizes]
        pipeline = run_pipeline_pairs(generator, rows[:args.pipeline]) if args.pipeline and "application" in rows[0] else {}
        cache = run_cache_hit(generator, prompts)
    lora = variants["int8"]
    drafted = drafts.get("int8", {}).get("with_composer_draft")
    report = {
        "adapter": adapter_note, "generator": generator.describe(), "max_new_tokens": MAX_NEW_TOKENS,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
        "memory_bandwidth_gbs": round(bandwidth, 2), "bf16_weights_mb": round(weight_bytes / 1e6, 1),
        "bandwidth_bound_tokens_per_s_bf16": round(bound_tokens_per_s, 1),
        "batch1_plain_generate_base_bf16": plain,
        "batch1_lora_generator": variants,
        "batch1_draft_verified": drafts,
        "pipeline_batch1": pipeline,
        # narratives differ in length between base and adapter: compare time per 100 generated tokens
        "ratios": {**{f"lora_{name}_vs_plain_ms_per_100_tokens": round(row["ms_per_100_tokens"] / plain["ms_per_100_tokens"], 3)
                      for name, row in variants.items()},
                   "plain_tokens_per_s_vs_bf16_bandwidth_bound": round(plain["tokens_per_s"] / bound_tokens_per_s, 3),
                   "lora_int8_tokens_per_s_vs_bf16_bandwidth_bound": round(lora["tokens_per_s"] / bound_tokens_per_s, 3),
                   **{f"draft_{name}_p50_with_vs_without": row["p50_ratio_with_vs_without"] for name, row in drafts.items()},
                   **{f"batch{t['batch_size']}_vs_batch1_tokens_per_s": round(t["tokens_per_s"] / lora["tokens_per_s"], 2)
                      for t in throughput}},
        "throughput_int8": throughput, "cache_hit": cache,
        "targets": {"p50_ms": 2000, "p95_ms": 4000, "narrative_tokens": 100},
        "targets_met_batch1_int8": targets_met(lora),
        "targets_met_batch1_int8_with_draft": targets_met(drafted) if drafted else None,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    return 0


def _tokenizer(settings: Settings):
    from transformers import AutoTokenizer

    from lendsafe.lm.basemodel import ensure_base_model

    return AutoTokenizer.from_pretrained(ensure_base_model(settings))


def _plain_base(settings: Settings):
    from lendsafe.lm.basemodel import load_base_model

    return load_base_model(settings)[0]


def print_report(report: dict) -> None:
    plain = report["batch1_plain_generate_base_bf16"]
    print(f"adapter: {report['adapter']}")
    for name, row in [("plain generate (bf16)", plain), *report["batch1_lora_generator"].items()]:
        print(f"batch 1 {name:<22}: p50 {row['p50_ms']:.0f} ms  p95 {row['p95_ms']:.0f} ms  {row['tokens_per_s']:.1f} tok/s"
              f"  ({row['mean_tokens']:.0f} tokens, {row['ms_per_100_tokens']:.0f} ms/100 tokens)")
    print(f"ratios: {report['ratios']}")
    print(f"bandwidth {report['memory_bandwidth_gbs']} GB/s, {report['bf16_weights_mb']} MB bf16 weights -> bound "
          f"{report['bandwidth_bound_tokens_per_s_bf16']} tok/s (int8 decoding reads about half)")
    for name, row in report["batch1_draft_verified"].items():
        without, drafted = row["without_draft"], row["with_composer_draft"]
        print(f"batch 1 {name} draft-verified: p50 {drafted['p50_ms']:.0f} ms p95 {drafted['p95_ms']:.0f} ms beside "
              f"p50 {without['p50_ms']:.0f} ms p95 {without['p95_ms']:.0f} ms without (ratio {row['p50_ratio_with_vs_without']});"
              f" {row['draft_tokens_accepted_share']:.0%} of tokens from the draft; "
              f"{row['texts_differing_from_no_draft']}/{row['prompts']} texts differ")
    if report["pipeline_batch1"]:
        print(f"pipeline: {report['pipeline_batch1']}")
    print(f"targets met (int8, batch 1): {report['targets_met_batch1_int8']}; "
          f"with draft: {report['targets_met_batch1_int8_with_draft']}")
    for row in report["throughput_int8"]:
        print(f"batch {row['batch_size']:>2}: {row['tokens_per_s']:.1f} tok/s, {row['explanations_per_min']:.1f} explanations/min")
    print(f"cache hit: {report['cache_hit']['latency_ms']} ms; results in {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
