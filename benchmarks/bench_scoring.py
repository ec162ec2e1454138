"""Scoring speed: score + exact reasons beside ``shap.TreeExplainer`` on the same model, in the same run.

* one application: p50/p95 of ``Scorer.score`` (validation, matrix, TreeSHAP, margin, reasons, Decision)
  beside ``shap.TreeExplainer.shap_values`` and bare ``Booster.predict(pred_contribs=True)`` on one row;
* batch: applications/s of ``Scorer.score_many`` on 10,000 applications beside ``shap_values`` and
  ``pred_contribs`` on the same 10,000 rows, plus the validation step alone (where the rest goes).

Wall time and this process's CPU time are both reported: the machine is shared, so CPU time is the
cost on one core. Checks issue 2's targets and writes ``benchmarks/results/scoring.json``.
Run: ``python benchmarks/bench_scoring.py [--dataset hmda] [--repeats 500] [--batch 10000]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lendsafe.application import parse_application  # noqa: E402
from lendsafe.datasets import load_dataset  # noqa: E402
from lendsafe.scoring import Scorer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scoring.json"
TARGETS = {"single_p50_ms": 2.0, "batch_per_second": 5000.0}   # issue 2


def applications(dataset_name: str, count: int, seed: int = 0) -> list[dict]:
    """Real applications of the dataset (input fields only), drawn with replacement."""
    dataset = load_dataset(dataset_name)
    rows = dataset.applications[[f.name for f in dataset.spec.input_fields]].to_dict("records")
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else getattr(v, "item", lambda: v)())
             for k, v in row.items()} for row in rows]
    return [rows[i] for i in np.random.default_rng(seed).integers(0, len(rows), count)]


def timed(function, argument) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(argument)
    return time.perf_counter() - wall, time.process_time() - cpu


def per_call(contenders: dict, inputs: dict[str, list]) -> dict[str, dict[str, float]]:
    """p50/p95 wall and p50 CPU ms of one call per input; contenders take turns on each input so a noisy
    neighbour slows them alike."""
    for name, function in contenders.items():
        for item in inputs[name][:50]:
            function(item)
    samples = {name: ([], []) for name in contenders}
    for i in range(len(next(iter(inputs.values())))):
        for name, function in contenders.items():
            wall, cpu = timed(function, inputs[name][i])
            samples[name][0].append(wall * 1000)
            samples[name][1].append(cpu * 1000)
    figures = {}
    for name, (wall, cpu) in samples.items():
        wall.sort()
        figures[name] = {"p50_ms": round(statistics.median(wall), 4), "p95_ms": round(wall[int(0.95 * (len(wall) - 1))], 4),
                         "cpu_p50_ms": round(statistics.median(cpu), 4), "calls": len(wall)}
    return figures


def per_batch(contenders: dict, inputs: dict, rows: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of whole-batch calls, taking turns, as rows per second."""
    for name, function in contenders.items():
        function(inputs[name][:100])
    samples = {name: ([], []) for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            wall, cpu = timed(function, inputs[name])
            samples[name][0].append(wall)
            samples[name][1].append(cpu)
    return {name: {"seconds": round(statistics.median(wall), 4), "per_second": round(rows / statistics.median(wall), 1),
                   "cpu_per_second": round(rows / statistics.median(cpu), 1), "rows": rows, "repeats": repeats}
            for name, (wall, cpu) in samples.items()}


def bench(dataset_name: str, repeats: int, batch_size: int, batch_repeats: int) -> dict:
    import shap

    scorer = Scorer.load(dataset_name)
    explainer = shap.TreeExplainer(scorer.model.booster_)
    singles = applications(dataset_name, repeats, seed=1)
    rows = [scorer.matrix([parse_application(a, scorer.spec)]) for a in singles]
    batch = applications(dataset_name, batch_size, seed=2)
    matrix = scorer.matrix([parse_application(a, scorer.spec) for a in batch])
    single = per_call({"lendsafe_score": scorer.score, "shap_tree_explainer": explainer.shap_values,
                       "pred_contribs": scorer.model.contributions},
                      {"lendsafe_score": singles, "shap_tree_explainer": rows, "pred_contribs": rows})
    many = per_batch({"lendsafe_score_many": scorer.score_many, "shap_tree_explainer": explainer.shap_values,
                      "pred_contribs": scorer.model.contributions,
                      "validation_only": lambda apps: [parse_application(a, scorer.spec) for a in apps]},
                     {"lendsafe_score_many": batch, "shap_tree_explainer": matrix, "pred_contribs": matrix,
                      "validation_only": batch}, batch_size, batch_repeats)
    shap_one, shap_many = single["shap_tree_explainer"], many["shap_tree_explainer"]
    for figure in single.values():
        figure["ratio_to_shap_p50"] = round(figure["p50_ms"] / shap_one["p50_ms"], 3)
    for figure in many.values():
        figure["speed_vs_shap"] = round(figure["per_second"] / shap_many["per_second"], 3)
    return {"single": single, "batch": many}


def targets(figures: dict) -> dict:
    single, batch = figures["single"], figures["batch"]
    return {
        "single_p50_ms": {"target": f"<= {TARGETS['single_p50_ms']}", "measured": single["lendsafe_score"]["p50_ms"],
                          "met": single["lendsafe_score"]["p50_ms"] <= TARGETS["single_p50_ms"]},
        "batch_per_second": {"target": f">= {TARGETS['batch_per_second']:.0f}",
                             "measured": batch["lendsafe_score_many"]["per_second"],
                             "met": batch["lendsafe_score_many"]["per_second"] >= TARGETS["batch_per_second"]},
        "exact_reasons_at_least_as_fast_as_shap": {
            "target": "exact TreeSHAP (pred_contribs) no slower than shap.TreeExplainer, one row and 10k rows",
            "measured": {"single_p50_ratio": single["pred_contribs"]["ratio_to_shap_p50"],
                         "batch_speed_ratio": batch["pred_contribs"]["speed_vs_shap"]},
            "met": single["pred_contribs"]["ratio_to_shap_p50"] <= 1.0 and batch["pred_contribs"]["speed_vs_shap"] >= 1.0},
        "full_decision_vs_shap_alone": {
            "target": "(for information) validation + score + reasons + Decision beside shap's values alone",
            "measured": {"single_p50_ratio": single["lendsafe_score"]["ratio_to_shap_p50"],
                         "batch_speed_ratio": batch["lendsafe_score_many"]["speed_vs_shap"]},
            "met": single["lendsafe_score"]["ratio_to_shap_p50"] <= 1.0
            and batch["lendsafe_score_many"]["speed_vs_shap"] >= 1.0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="hmda")
    parser.add_argument("--repeats", type=int, default=500, help="single-application calls timed")
    parser.add_argument("--batch", type=int, default=10_000, help="applications per batch")
    parser.add_argument("--batch-repeats", type=int, default=5, help="timed runs of each batch contender")
    args = parser.parse_args(argv)
    import shap
    import xgboost

    figures = bench(args.dataset, args.repeats, args.batch, args.batch_repeats)
    result = {"dataset": args.dataset, "figures": figures, "targets": targets(figures),
              "versions": {"xgboost": xgboost.__version__, "shap": shap.__version__,
                           "python": platform.python_version()},
              "machine": platform.machine(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "threads": "xgboost prediction on 1 thread (the loaded model's setting); shap on its default"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, figure in figures["single"].items():
        print(f"one application  {name:22s} p50 {figure['p50_ms']:8.3f} ms  p95 {figure['p95_ms']:8.3f} ms  "
              f"x{figure['ratio_to_shap_p50']:.2f} of shap")
    for name, figure in figures["batch"].items():
        print(f"{args.batch} rows  {name:22s} {figure['per_second']:10.0f} /s  (cpu {figure['cpu_per_second']:.0f} /s)  "
              f"x{figure['speed_vs_shap']:.2f} shap's speed")
    for name, target in result["targets"].items():
        print(f"target {name}: {target['target']} -> {target['measured']} {'met' if target['met'] else 'NOT met'}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
