"""`lendsafe train-risk` and `lendsafe score`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train-risk", help="train the risk model and print its metrics as JSON")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--dataset", default="hmda", help="built-in dataset: hmda (default) or credit")
    source.add_argument("--spec", type=Path, help="a dataset spec .toml for your own CSV")
    train.add_argument("--out", type=Path, help="output folder (default models/risk/<dataset>)")
    train.set_defaults(func=run_train)

    score = subparsers.add_parser("score", help="score an application JSON (- reads stdin) and name its reasons")
    score.add_argument("file", help="application JSON file, or - for standard input")
    score.add_argument("--dataset", default="hmda", help="dataset whose model scores it (default hmda)")
    score.add_argument("--reference", default="population", choices=("population", "cutoff"),
                       help="reason reference (Reg B comment 9(b)(2)-5)")
    score.add_argument("--model", type=Path, help="a trained model folder (default models/risk/<dataset>)")
    score.set_defaults(func=run_score)


def run_train(args: argparse.Namespace) -> int:
    from lendsafe.decide.risk import train_risk_model

    model = train_risk_model(args.spec or args.dataset, args.out)
    metrics = model.metrics_
    print(json.dumps({"dataset": model.spec.name, "model_sha256": model.sha256, "data": model.data_,
                      "threshold": model.threshold, "cv_auc": metrics["cv_auc"],
                      "test": _summary(metrics["test"]),
                      "logistic_baseline_test": _summary(metrics["logistic_baseline_test"])}, indent=2))
    return 0


def _summary(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("auc", "ks", "brier", "base_rate", "n", "confusion")}


def run_score(args: argparse.Namespace) -> int:
    from lendsafe.decide.application import read_application_json
    from lendsafe.decide.risk import RiskModel
    from lendsafe.decide.scoring import Scorer

    scorer = Scorer(RiskModel.load(args.model)) if args.model else Scorer.load(args.dataset)
    application = read_application_json(args.file, scorer.spec)
    decision = scorer.score(application, args.reference)
    print(json.dumps(decision.score_dict(), indent=2))
    return 0
