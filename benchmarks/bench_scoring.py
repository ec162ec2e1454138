"""Scoring speed: validation + score + exact reasons + ``Decision`` beside ``shap.TreeExplainer`` on the
same model, in the same run, with the benchmark method (``benchmarks/method.py``).

* one application: ``Scorer.score`` beside ``shap.TreeExplainer.shap_values``, xgboost's own
  ``pred_contribs`` on a DMatrix and the lookup tables alone, one row per call, taking turns;
* 10,000 applications: ``Scorer.score_many`` beside ``shap_values`` and ``pred_contribs`` on the same rows,
  and the validation step alone.

Targets (issue 18): one application p50 <= 0.6 ms and >= 1.5x faster than shap; >= 12,000 applications/s.
Run: ``python benchmarks/bench_scoring.py [--datasets hmda credit] [--force]``.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402

TARGETS = {"single_p50_ms": 0.6, "times_faster_than_shap": 1.5, "batch_per_second": 12_000.0}


def applications(dataset_name: str, count: int, seed: int = 0) -> list[dict]:
    """Real applications of the dataset (input fields only), drawn with replacement."""
    from lendsafe.decide.datasets import load_dataset

    dataset = load_dataset(dataset_name)
    rows = dataset.applications[[f.name for f in dataset.spec.input_fields]].to_dict("records")
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else getattr(v, "item", lambda: v)())
             for k, v in row.items()} for row in rows]
    return [rows[i] for i in np.random.default_rng(seed).integers(0, len(rows), count)]


def cycling(function, inputs: list):
    """A no-argument contender calling ``function`` on the next input each time."""
    items = itertools.cycle(inputs)
    return lambda: function(next(items))


def contenders(dataset_name: str, batch_size: int) -> tuple[dict, dict]:
    """(one-application contenders, whole-batch contenders) on the same model."""
    import shap

    from lendsafe.decide.application import parse_application
    from lendsafe.decide.scoring import Scorer

    scorer = Scorer.load(dataset_name)
    model = scorer.model
    explainer = shap.TreeExplainer(model.booster_)
    singles = applications(dataset_name, 500, seed=1)
    rows = [scorer.matrix([parse_application(a, scorer.spec)]) for a in singles]
    batch = applications(dataset_name, batch_size, seed=2)
    matrix = scorer.matrix([parse_application(a, scorer.spec) for a in batch])
    xgboost_contribs = lambda X: model.booster_.predict(model._dmatrix(X), pred_contribs=True)  # noqa: E731
    one = {"lendsafe_score": cycling(scorer.score, singles), "shap_tree_explainer": cycling(explainer.shap_values, rows),
           "xgboost_pred_contribs": cycling(xgboost_contribs, rows),
           "lookup_contributions": cycling(model.contributions, rows)}
    many = {"lendsafe_score_many": lambda: scorer.score_many(batch),
            "shap_tree_explainer": lambda: explainer.shap_values(matrix),
            "xgboost_pred_contribs": lambda: xgboost_contribs(matrix),
            "validation_only": lambda: [parse_application(a, scorer.spec) for a in batch]}
    return one, many


def measure(dataset_name: str, batch_size: int) -> tuple[dict, dict[str, float]]:
    one, many = contenders(dataset_name, batch_size)
    single = method.interleave(one, calls=200, warmup=50)
    whole = method.interleave(many, calls=1, min_rounds=5, max_rounds=10)
    figures = {"single": method.summaries(single, baseline="shap_tree_explainer"),
               "batch": method.summaries(whole, baseline="shap_tree_explainer")}
    for figure in figures["batch"].values():
        figure["per_second"] = round(batch_size / figure["p50_ms"] * 1000, 1)
    spreads = {f"{dataset_name} one {k}": t.spread() for k, t in single.items()}
    spreads.update({f"{dataset_name} batch {k}": t.spread() for k, t in whole.items()})
    return figures, spreads


def targets(figures: dict) -> dict:
    ours, shap_p50 = figures["single"]["lendsafe_score"]["p50_ms"], figures["single"]["shap_tree_explainer"]["p50_ms"]
    per_second = figures["batch"]["lendsafe_score_many"]["per_second"]
    return {"single_p50_ms": {"target": TARGETS["single_p50_ms"], "measured": ours,
                              "met": ours <= TARGETS["single_p50_ms"]},
            "times_faster_than_shap": {"target": TARGETS["times_faster_than_shap"],
                                       "measured": round(shap_p50 / ours, 2),
                                       "met": shap_p50 / ours >= TARGETS["times_faster_than_shap"]},
            "batch_per_second": {"target": TARGETS["batch_per_second"], "measured": per_second,
                                 "met": per_second >= TARGETS["batch_per_second"]}}


def readme_rows(name: str, figures: dict) -> list[dict[str, str]]:
    one, many = figures["single"], figures["batch"]
    ours, shap_one = one["lendsafe_score"]["p50_ms"], one["shap_tree_explainer"]["p50_ms"]
    return [{"what": f"validation + score + exact reasons + Decision, one {name} application (p50)",
             "measured": f"{ours:.3f} ms ({shap_one / ours:.1f}x faster than shap)",
             "baseline": f"`shap.TreeExplainer` values alone {shap_one:.3f} ms; xgboost `pred_contribs` "
                         f"{one['xgboost_pred_contribs']['p50_ms']:.3f} ms"},
            {"what": f"the same for 10,000 {name} applications",
             "measured": f"{many['lendsafe_score_many']['per_second']:,.0f} applications/s",
             "baseline": f"`shap.TreeExplainer` {many['shap_tree_explainer']['per_second']:,.0f}/s, "
                         f"`pred_contribs` {many['xgboost_pred_contribs']['per_second']:,.0f}/s (1 thread)"}]


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["hmda", "credit"])
    parser.add_argument("--batch", type=int, default=10_000, help="applications per batch")
    args = parser.parse_args(argv)
    run = method.Run("scoring", "xgboost", "shap", "pydantic")
    figures, spreads, rows, goals = {}, {}, [], {}
    for name in args.datasets:
        figures[name], spread = measure(name, args.batch)
        spreads.update(spread)
        rows += readme_rows(name, figures[name])
        goals[name] = targets(figures[name])
    for name, goal in goals.items():
        for key, target in goal.items():
            print(f"{name} {key}: target {target['target']} measured {target['measured']} "
                  f"{'met' if target['met'] else 'NOT met'}")
    run.finish(figures, rows, spreads, force=args.force, targets=goals,
               threads="lookup tables and shap on this process's thread; xgboost prediction on 1 thread "
                       "(the loaded model's setting)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
