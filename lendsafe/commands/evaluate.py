"""`lendsafe evaluate`: the held-out evaluation (results JSON, records, plots) and the gate."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lendsafe.errors import ConfigurationError
from lendsafe.evaluation.config import (
    DEFAULT_COMPARISON_LIMIT, DEFAULT_LIMIT, DEFAULT_OUT, GATE_BASELINE, WRITERS, EvaluationConfig,
)
from lendsafe.evaluation.results import SECTIONS, EvaluationResults, dig

SUMMARY_FIGURES = (   # (label, path into a writer's summary)
    ("first pass", ("first_pass_rate",)),
    ("final pass", ("final_pass_rate",)),
    ("fallback", ("fallback_rate",)),
    ("factor recall", ("faithfulness", "first_attempt", "factor_recall")),
    ("ROUGE-L", ("text_similarity", "first_attempt", "rougeL")),
    ("ROUGE-L floor", ("text_similarity", "unrelated_floor", "rougeL")),
    ("BERTScore F1", ("text_similarity", "first_attempt", "bertscore_f1")),
    ("p50 ms", ("latency_ms", "p50")),
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _limit(text: str) -> int | None:
    """A positive number of decisions, or 'all'."""
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'all'; got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate risk models, reasons, explanation writers, retrieval and notices on held-out data",
        description="Held-out evaluation written incrementally to a results JSON (resumed when interrupted), "
                    "with plots; --gate runs the fixed 34-decision faithfulness gate.")
    parser.add_argument("--split", default="test", choices=("test",),
                        help="held-out split: the risk models' recorded test rows and the SFT test split")
    parser.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT,
                        help="held-out explanations evaluated, or 'all' (default: all 180 held-out denials)")
    parser.add_argument("--comparison-limit", type=_limit, default=DEFAULT_COMPARISON_LIMIT,
                        help=f"of those, how many the base model without adapter writes (the comparison), or 'all'; "
                             f"default {DEFAULT_COMPARISON_LIMIT}, which keeps the full evaluation within 20 min on 2 cores")
    parser.add_argument("--out", type=Path, help=f"results JSON (default {DEFAULT_OUT}; gate: under LENDSAFE_HOME/eval)")
    parser.add_argument("--writers", type=_names, default=tuple(WRITERS),
                        help="comma-separated writers: lora, base, lora_no_passages (the retrieval ablation), "
                             "template (default all four)")
    parser.add_argument("--sections", type=_names, default=SECTIONS, help="comma-separated: " + ", ".join(SECTIONS))
    parser.add_argument("--fresh", action="store_true", help="discard existing results at --out instead of resuming")
    parser.add_argument("--no-plots", action="store_true", help="do not draw plots")
    parser.add_argument("--batch1-sample", type=int, default=8, help="decisions also timed one at a time (lora and template writers)")
    parser.add_argument("--threads", type=int, help="torch threads for generation (default: the generator's)")
    parser.add_argument("--gate", action="store_true", help="run the gate: LoRA writer on 34 fixed held-out denials")
    parser.add_argument("--write-baseline", action="store_true", help="with --gate: save the run as the baseline")
    parser.add_argument("--baseline", type=Path, default=GATE_BASELINE, help="gate baseline JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.write_baseline and not args.gate:
        raise ConfigurationError("--write-baseline needs --gate")
    return run_gate(args) if args.gate else run_full(args)


def run_full(args: argparse.Namespace) -> int:
    from lendsafe.evaluation.run import run_evaluation     # the harness loads on use: `lendsafe --help` stays fast

    config = EvaluationConfig(**({"out": args.out} if args.out else {}), split=args.split, limit=args.limit,
                              comparison_limit=args.comparison_limit,
                              writers=args.writers, sections=args.sections, fresh=args.fresh,
                              plots=not args.no_plots, batch1_sample=args.batch1_sample, threads=args.threads)
    results = run_evaluation(config, bar=not args.quiet)
    print(summary_text(results))
    print(f"results: {config.out}  (complete: {results.complete}, {results.timing['total_seconds']} s of work, "
          f"{results.timing['this_run_seconds']} s this run)")
    return 0


def _figure(summary: object, path: tuple[str, ...]) -> str:
    value = dig(summary, path)
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) and value <= 1 else f"{value:,.0f}"


def summary_text(results: EvaluationResults) -> str:
    """A short plain-text table of the headline figures."""
    lines = []
    for name, data in (results.risk.datasets if results.risk else {}).items():
        lines.append(f"risk {name}: AUC {data['model']['auc']:.3f} (logistic {data['logistic_baseline']['auc']:.3f}), "
                     f"KS {data['model']['ks']:.3f}, Brier {data['model']['brier']:.3f}")
    if results.writers:
        lines.append("writer    " + "".join(f"{label:>15}" for label, _ in SUMMARY_FIGURES))
        lines += [f"{w:<10}" + "".join(f"{_figure(s, p):>15}" for _, p in SUMMARY_FIGURES)
                  for w, s in results.writers.items()]
    notices = results.notices
    if notices:
        lines.append(f"notices: {notices.notices} checked, completeness pass rate {notices.completeness_pass_rate}")
    retrieval = results.retrieval
    if retrieval:
        kb = retrieval.knowledge_base
        lines.append(f"retrieval: recall@4 {kb['recall@4']}, MRR {kb['mrr']} ({retrieval.queries} questions)")
    return "\n".join(lines)


def run_gate(args: argparse.Namespace) -> int:
    from lendsafe.evaluation.gate import check_gate, gate_summary, read_gate_baseline, run_gate as gate, write_gate_baseline

    summary = gate_summary(gate(out=args.out, bar=not args.quiet))
    print(json.dumps(summary, indent=1))
    if args.write_baseline:
        print(f"baseline written to {write_gate_baseline(summary, args.baseline)}")
        return 0
    problems = check_gate(summary, read_gate_baseline(args.baseline))
    for problem in problems:
        print(f"gate: FAIL: {problem}")
    if not problems:
        print("gate: pass")
    return 1 if problems else 0
