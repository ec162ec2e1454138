"""Evaluation benchmark: what the harness costs beside the work it measures, in the same run.

* text metrics: BERTScore (MiniLM, layer 6) and ROUGE over held-out reference pairs, beside plain
  MiniLM sentence embeddings of the same texts;
* harness overhead: the explanation section for the template writer (records, verification of first
  and final text, notice checks) beside bare ``Pipeline.run_many`` on the same applications;
* LoRA writer (when the adapter exists): the harness's LoRA run beside bare ``generate`` of the same
  first-attempt prompts, so the ratio shows retries plus bookkeeping over pure generation.

Writes ``benchmarks/results/evaluation.json``. Run: ``python benchmarks/bench_evaluation.py [--decisions 16]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lendsafe.config import PROJECT_ROOT, Settings  # noqa: E402
from lendsafe.evaluation.config import EvaluationConfig  # noqa: E402
from lendsafe.evaluation.run import held_out_sample, run_evaluation  # noqa: E402
from lendsafe.evaluation.writers import Uncached  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "evaluation.json"


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def bench_text_metrics(references: list[str]) -> dict:
    from lendsafe.knowledge.embeddings import embed
    from lendsafe.evaluation.text import bert_scorer, bertscore, rouge

    candidates = references[1:] + references[:1]
    bert_scorer(), embed(references[:2])                          # load both models first
    _, bert_s = timed(bertscore, candidates, references)
    _, rouge_s = timed(rouge, candidates, references)
    _, embed_s = timed(embed, candidates + references)
    return {"pairs": len(references), "bertscore_s": round(bert_s, 3), "rouge_s": round(rouge_s, 3),
            "minilm_embed_s": round(embed_s, 3), "bertscore_vs_embed": round(bert_s / embed_s, 2),
            "bertscore_pairs_per_s": round(len(references) / bert_s, 1)}


def _section(config: EvaluationConfig) -> float:
    results = run_evaluation(config, bar=False)
    return sum(results.timing["explanations"].values())


def bench_harness(examples: list[dict], folder: Path, settings: Settings) -> dict:
    from lendsafe.explain.pipeline import Pipeline

    groups: dict[tuple, list] = {}
    for e in examples:
        groups.setdefault((e["dataset"], e["reference"]), []).append(e["application"])
    pipelines = {d: Pipeline(settings, dataset=d, writer="template") for d in {e["dataset"] for e in examples}}
    for (dataset, reference), apps in groups.items():
        pipelines[dataset].run_many(apps[:1], reference)          # warm-up: models and index
    _, bare_s = timed(lambda: [pipelines[d].run_many(a, r) for (d, r), a in groups.items()])
    config = EvaluationConfig(out=folder / "template.json", limit=len(examples), writers=("template",),
                              sections=("explanations", "notices"), batch1_sample=0, plots=False, fresh=True)
    harness_s = _section(config)
    return {"decisions": len(examples), "bare_run_many_s": round(bare_s, 3), "harness_s": round(harness_s, 3),
            "harness_vs_bare": round(harness_s / bare_s, 2)}


def bench_lora(examples: list[dict], folder: Path, settings: Settings) -> dict:
    from lendsafe.explain.generation import LoraGenerator

    generator = LoraGenerator(settings)
    generator.generate([examples[0]["messages"]], use_cache=False)    # warm-up
    _, bare_s = timed(generator.generate, [e["messages"] for e in examples], use_cache=False)
    config = EvaluationConfig(out=folder / "lora.json", limit=len(examples), writers=("lora",),
                              sections=("explanations",), batch1_sample=0, plots=False, fresh=True)
    results = run_evaluation(config, generators={"lora": Uncached(generator, drafts=False)}, bar=False)
    harness_s = results.timing["explanations"]["lora"]
    writer = results.writers["lora"].to_dict()
    return {"decisions": len(examples), "bare_generate_s": round(bare_s, 2), "harness_s": round(harness_s, 2),
            "harness_vs_bare_generate": round(harness_s / bare_s, 2), "first_pass_rate": writer["first_pass_rate"],
            "passed_on_retry_rate": writer["passed_on_retry_rate"], "fallback_rate": writer["fallback_rate"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=16, help="held-out decisions per measurement")
    args = parser.parse_args()
    settings = Settings()
    config = EvaluationConfig(limit=args.decisions)
    examples, _ = held_out_sample(config, settings)
    all_examples, _ = held_out_sample(EvaluationConfig(limit=None), settings)
    report = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "load_average": os.getloadavg()},
              "text_metrics": bench_text_metrics([e["target"] for e in all_examples])}
    with tempfile.TemporaryDirectory() as folder:
        report["harness_template"] = bench_harness(examples, Path(folder), settings)
        if (settings.adapter_dir / "adapter_model.safetensors").is_file():
            report["harness_lora"] = bench_lora(examples, Path(folder), settings)
        else:
            report["harness_lora"] = f"skipped: no adapter at {settings.adapter_dir}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
