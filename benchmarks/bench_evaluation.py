"""Evaluation benchmark: what the harness costs beside the work it measures, in the same run, with the
benchmark method (``benchmarks/method.py``).

* text metrics: BERTScore (MiniLM, layer 6) and ROUGE over held-out reference pairs, beside plain MiniLM
  sentence embeddings of the same texts, a slice of pairs per call, taking turns;
* harness overhead: the explanation section for the template writer (records, verification of first and
  final text) beside bare ``Pipeline.run_many`` on the same applications, taking turns; the harness is
  timed by its own section timing (what ``lendsafe evaluate`` reports), the bare call by the clock;
* LoRA writer (when the adapter exists): the harness's LoRA section beside bare ``generate`` of the same
  first-attempt prompts (generation cache off in both), so the ratio shows retries plus bookkeeping over
  pure generation.

Run: ``python benchmarks/bench_evaluation.py [--quick] [--decisions 8] [--lora-decisions 6] [--force]``.
"""
from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402
from lendsafe.config import Settings  # noqa: E402
from lendsafe.evaluation.config import EvaluationConfig  # noqa: E402
from lendsafe.evaluation.run import held_out_sample, run_evaluation  # noqa: E402
from lendsafe.evaluation.writers import Uncached  # noqa: E402

PAIRS_PER_CALL = 30
# calls per round, min rounds, max rounds of each section; decisions per call
COUNTS = {"default": {"text": (2, 3, 6), "template": (1, 3, 6), "lora": (1, 3, 4), "decisions": 8, "lora_decisions": 6},
          "quick": {"text": (1, 2, 2), "template": (1, 2, 2), "lora": (1, 2, 2), "decisions": 3, "lora_decisions": 2}}


def seconds(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def interleave(contenders: dict, counts: tuple, clock=time.perf_counter) -> dict:
    calls, min_rounds, max_rounds = counts
    return method.interleave(contenders, calls, min_rounds=min_rounds, max_rounds=max_rounds, clock=clock)


def bench_text_metrics(references: list[str], counts: tuple) -> tuple[dict, dict]:
    """BERTScore, ROUGE and MiniLM embeddings, each on the next slice of pairs per call."""
    from lendsafe.evaluation.text import bertscore, rouge
    from lendsafe.knowledge.embeddings import embed

    candidates = references[1:] + references[:1]
    pairs = [(candidates[i:i + PAIRS_PER_CALL], references[i:i + PAIRS_PER_CALL])
             for i in range(0, len(references), PAIRS_PER_CALL)]
    contenders = {"bertscore": method.cycling(lambda p: bertscore(*p), pairs),
                  "rouge": method.cycling(lambda p: rouge(*p), pairs),
                  "minilm_embed": method.cycling(lambda p: embed(p[0] + p[1]), pairs)}
    timings = interleave(contenders, counts)
    figures = method.summaries(timings, baseline="minilm_embed")
    figures["pairs_per_call"], figures["pairs"] = PAIRS_PER_CALL, len(references)
    figures["bertscore_pairs_per_s"] = round(PAIRS_PER_CALL / figures["bertscore"]["p50_ms"] * 1000, 1)
    return figures, timings


def bench_harness(examples: list[dict], folder: Path, settings: Settings, counts: tuple) -> tuple[dict, dict]:
    """The template writer's explanation section beside bare ``run_many`` on the same applications."""
    from lendsafe.explain.pipeline import Pipeline

    groups: dict[tuple, list] = {}
    for e in examples:
        groups.setdefault((e["dataset"], e["reference"]), []).append(e["application"])
    pipelines = {d: Pipeline(settings, dataset=d, writer="template") for d in {e["dataset"] for e in examples}}
    outs = (folder / f"template-{n}.json" for n in itertools.count())

    def harness() -> float:
        config = EvaluationConfig(out=next(outs), limit=len(examples), writers=("template",),
                                  sections=("explanations",), batch1_sample=0, plots=False, fresh=True)
        return sum(run_evaluation(config, bar=False).timing["explanations"].values())
    timer = method.SelfTimed({
        "harness": harness,
        "bare_run_many": lambda: seconds(lambda: [pipelines[d].run_many(a, r) for (d, r), a in groups.items()])})
    timings = interleave(timer.contenders, counts, clock=timer.clock)
    figures = method.summaries(timings, baseline="bare_run_many")
    figures["decisions"] = len(examples)
    return figures, timings


def bench_lora(examples: list[dict], folder: Path, settings: Settings, counts: tuple) -> tuple[dict, dict]:
    """The harness's LoRA section beside bare ``generate`` of the same first-attempt prompts."""
    from lendsafe.explain.generation import LoraGenerator

    generator = LoraGenerator(settings)
    outs = (folder / f"lora-{n}.json" for n in itertools.count())
    writers = []

    def harness() -> float:
        config = EvaluationConfig(out=next(outs), limit=len(examples), writers=("lora",),
                                  sections=("explanations",), batch1_sample=0, plots=False, fresh=True)
        results = run_evaluation(config, generators={"lora": Uncached(generator, drafts=False)}, bar=False)
        writers.append(results.writers["lora"].to_dict())
        return results.timing["explanations"]["lora"]
    timer = method.SelfTimed({
        "harness": harness,
        "bare_generate": lambda: seconds(generator.generate, [e["messages"] for e in examples], use_cache=False)})
    timings = interleave(timer.contenders, counts, clock=timer.clock)
    figures = method.summaries(timings, baseline="bare_generate")
    figures["decisions"] = len(examples)
    figures.update({k: writers[-1][k] for k in ("first_pass_rate", "passed_on_retry_rate", "fallback_rate")})
    return figures, timings


def readme_rows(figures: dict) -> list[dict[str, str]]:
    text, template, lora = figures["text_metrics"], figures["harness_template"], figures.get("harness_lora")
    rows = [{"what": f"BERTScore (MiniLM) over {text['pairs_per_call']} reference pairs (p50)",
             "measured": f"{text['bertscore']['p50_ms'] / 1000:.2f} s ({text['bertscore_pairs_per_s']:.0f} pairs/s); "
                         f"ROUGE {text['rouge']['p50_ms'] / 1000:.2f} s",
             "baseline": f"MiniLM embeddings of the same texts {text['minilm_embed']['p50_ms'] / 1000:.2f} s"},
            {"what": f"evaluation harness, template writer, {template['decisions']} held-out decisions (p50)",
             "measured": f"{template['harness']['p50_ms'] / 1000:.2f} s "
                         f"({template['harness']['ratio_to_baseline_p50']:.2f}x bare)",
             "baseline": f"bare `Pipeline.run_many` {template['bare_run_many']['p50_ms'] / 1000:.2f} s"}]
    if isinstance(lora, dict):
        rows.append({"what": f"evaluation harness, LoRA writer, {lora['decisions']} held-out decisions (p50)",
                     "measured": f"{lora['harness']['p50_ms'] / 1000:.1f} s ({lora['harness']['ratio_to_baseline_p50']:.2f}x"
                                 f" bare; first-attempt pass {lora['first_pass_rate']:.0%})",
                     "baseline": f"bare `generate` of the same prompts {lora['bare_generate']['p50_ms'] / 1000:.1f} s"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few pairs, decisions and rounds (a check that it runs)")
    parser.add_argument("--decisions", type=int, help="held-out decisions per harness call, template writer (default 8)")
    parser.add_argument("--lora-decisions", type=int, help="held-out decisions per harness call, LoRA writer (default 6)")
    args = parser.parse_args(argv)
    counts = dict(COUNTS["quick" if args.quick else "default"])
    counts.update({k: v for k, v in (("decisions", args.decisions), ("lora_decisions", args.lora_decisions)) if v})
    run = method.Run("evaluation", "torch", "transformers", "bert-score", "rouge-score")
    settings = Settings()
    all_examples, _ = held_out_sample(EvaluationConfig(limit=None), settings)
    references = [e["target"] for e in all_examples][:None if not args.quick else 2 * PAIRS_PER_CALL]
    figures, timings = {}, {}
    figures["text_metrics"], timings["text"] = bench_text_metrics(references, counts["text"])
    with tempfile.TemporaryDirectory() as folder:
        examples, _ = held_out_sample(EvaluationConfig(limit=counts["decisions"]), settings)
        figures["harness_template"], timings["template"] = bench_harness(examples, Path(folder), settings,
                                                                         counts["template"])
        if (settings.adapter_dir / "adapter_model.safetensors").is_file():
            examples, _ = held_out_sample(EvaluationConfig(limit=counts["lora_decisions"]), settings)
            figures["harness_lora"], timings["lora"] = bench_lora(examples, Path(folder), settings, counts["lora"])
        else:
            figures["harness_lora"] = f"skipped: no adapter at {settings.adapter_dir}"
    spreads = {f"{section} {name}": t.spread() for section, group in timings.items() for name, t in group.items()}
    print({k: {n: f.get("p50_ms") for n, f in v.items() if isinstance(f, dict)} for k, v in figures.items()
           if isinstance(v, dict)})
    run.finish(figures, readme_rows(figures), spreads, force=args.force, counts=counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
