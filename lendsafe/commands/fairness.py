"""`lendsafe fairness`: the fair-lending analysis (outcomes by group, reasons, proxies, LDA search)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fairness", help="fair-lending analysis: outcomes and reasons by protected group, proxies, LDA search",
        description="Approval rates and adverse impact ratios by protected group (with 95%% intervals), reasons "
                    "given to denied applicants by group, inputs that act as proxies, and a search for less "
                    "discriminatory alternative models; writes fairness.json, CSV tables, plots and a report PDF.")
    parser.add_argument("--dataset", default="hmda", choices=("hmda", "credit"), help="built-in dataset (default hmda)")
    parser.add_argument("--split", default="test", choices=("test", "all"),
                        help="rows analysed: the model's held-out test rows (default) or all rows")
    parser.add_argument("--out", type=Path, help="output folder (default LENDSAFE_HOME/fairness/<dataset>)")
    parser.add_argument("--attribute", type=_names, default=(),
                        help="comma-separated protected attributes (default all the dataset records)")
    parser.add_argument("--min-group", type=_positive, default=30, help="groups with fewer rows are flagged (default 30)")
    parser.add_argument("--no-lda", action="store_true", help="skip the less-discriminatory-alternative search")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run)


def _progress(done: int, total: int, stage: str) -> None:
    print(f"[{done}/{total}] {stage}", file=sys.stderr, flush=True)


def summary_lines(results: dict) -> list[str]:
    """Headline figures: AIR per protected group with interval, and the LDA candidates."""
    d = results["dataset"]
    lines = [f"{d['name']} ({d['split']}): {d['rows']} rows, {d['denials']} denied by the model"]
    for name, section in results["outcomes"].items():
        for c in section["comparisons"]:
            low, high = (f"{v:.3f}" if v is not None else "-" for v in c["ci95"])
            air = f"{c['air']:.3f}" if c["air"] is not None else "-"
            flag = "  SMALL GROUP" if c["small_group"] else ""
            lines.append(f"  AIR {name} {c['protected']} vs {c['control']}: {air} [{low}, {high}]{flag}")
    for name, found in results.get("lda", {}).get("candidates", {}).items():
        listed = ", ".join(f"{c['name']} (AIR {c['air_gain']:+.3f}, AUC {0.0 - c['auc_cost']:+.4f})" for c in found)
        lines.append(f"  LDA candidates for {name}: {listed or 'none'}")
    if results["not_recorded"]:
        lines.append(f"  not recorded in this data (not analysed): {', '.join(results['not_recorded'])}")
    return lines


def run(args: argparse.Namespace) -> int:
    from lendsafe.fairness import FairnessConfig, run_fairness

    config = FairnessConfig(dataset=args.dataset, split=args.split, out=args.out, attributes=args.attribute,
                            min_group_size=args.min_group, lda=not args.no_lda)
    results = run_fairness(config, progress=None if args.quiet else _progress)
    print("\n".join(summary_lines(results)))
    print(f"results: {config.out / 'fairness.json'} ({results['timing']['total_seconds']} s); "
          f"report: {config.out / results['files']['report']}")
    return 0
