"""Evaluation of the risk models and their reasons, on each model's recorded held-out test rows only.

Risk: AUC, KS, Brier, calibration bins and confusion at the threshold, beside a logistic baseline
fitted on the same training rows. Reasons: how often the principal reason survives small changes
of the applicant's figures, and how often the two Reg B references (comment 9(b)(2)-5) agree.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lendsafe.config import Settings
from lendsafe.decide.datasets import load_dataset
from lendsafe.decide.risk import RiskModel, classification_metrics, logistic_baseline, model_dir, split_indices
from lendsafe.decide.scoring import Scorer
from lendsafe.errors import LendSafeError

ROC_POINTS = 101              # ROC curve kept at this many false-positive rates for plots


class HeldOutError(LendSafeError):
    """Evaluation rows overlap training rows, or the recorded split no longer matches the data."""


def load_held_out(dataset_name: str, settings: Settings) -> dict[str, Any]:
    """The risk model, its data and the recorded train/test rows, checked against each other."""
    model = RiskModel.load(model_dir(dataset_name, settings))
    dataset = load_dataset(dataset_name)
    if dataset.sha256 != model.data_["sha256"]:
        raise HeldOutError(f"data of {dataset_name} has sha256 {dataset.sha256}; the risk model was trained on "
                           f"{model.data_['sha256']} (retrain with `lendsafe train-risk`)")
    train, test = split_indices(dataset.y, model.params)
    recorded = np.sort(np.asarray(model.test_index_, dtype=int))
    if not np.array_equal(recorded, test):
        raise HeldOutError(f"the recorded test rows of the {dataset_name} model differ from its seeded split")
    return {"model": model, "dataset": dataset, "train": train, "test": recorded}


def split_overlap(train: np.ndarray, test: np.ndarray, X: Any) -> dict[str, int]:
    """Rows shared by the two splits (must be 0) and test rows whose model inputs equal a training row's."""
    matrix = np.nan_to_num(np.asarray(X, dtype=float), nan=-1e300)
    seen = {row.tobytes() for row in matrix[train]}
    return {"train_rows": int(len(train)), "test_rows": int(len(test)),
            "shared_rows": int(len(np.intersect1d(train, test))),
            "test_rows_identical_to_a_training_row": int(sum(matrix[i].tobytes() in seen for i in test))}


def roc_points(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    """True-positive rate at evenly spaced false-positive rates (for plotting)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    return {"fpr": [round(float(x), 4) for x in grid],
            "tpr": [round(float(x), 4) for x in np.interp(grid, fpr, tpr)]}


def evaluate_risk_model(dataset_name: str, settings: Settings) -> dict[str, Any]:
    """Test-split metrics of the model and of the logistic baseline, recomputed from the artifacts."""
    held = load_held_out(dataset_name, settings)
    model, data, train, test = held["model"], held["dataset"], held["train"], held["test"]
    X_test, y_test = data.X.iloc[test], data.y[test]
    predicted = model.predict_proba(X_test)
    baseline = logistic_baseline(data.X.iloc[train], data.y[train], X_test, model.params.seed)
    metrics = classification_metrics(y_test, predicted, model.threshold)
    baseline_metrics = classification_metrics(y_test, baseline, model.threshold)
    recorded_auc = model.metrics_.get("test", {}).get("auc")
    return {
        "model_sha256": model.sha256, "data_sha256": data.sha256, "threshold": model.threshold,
        "outcome": model.spec.outcome, "held_out": split_overlap(train, test, data.X),
        "model": metrics, "logistic_baseline": baseline_metrics,
        "auc_gain_over_baseline": round(metrics["auc"] - baseline_metrics["auc"], 4),
        "matches_recorded_metrics": recorded_auc is not None and abs(recorded_auc - metrics["auc"]) < 1e-6,
        "roc": {"model": roc_points(y_test, predicted), "logistic_baseline": roc_points(y_test, baseline)},
    }


# ---------------------------------------------------------------------------- reasons

def held_out_applications(held: dict[str, Any]) -> list[dict[str, Any]]:
    """The held-out rows as application dicts (missing values as None)."""
    spec, data = held["model"].spec, held["dataset"]
    inputs = [f.name for f in spec.input_fields]
    frame = data.applications[inputs].iloc[held["test"]].astype(object)
    frame = frame.where(frame.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in frame.to_dict("records")]


def nudge(spec: Any, application: dict[str, Any], scale: float, rng: np.random.Generator) -> dict[str, Any]:
    """A small change: every continuous figure times U(1-scale, 1+scale), kept in the spec's range;
    ratings, yes/no answers and categories unchanged."""
    changed = dict(application)
    for feature in spec.input_fields:
        value = application.get(feature.name)
        if feature.type == "float" and value is not None:
            low = feature.min if feature.min is not None else -np.inf
            high = feature.max if feature.max is not None else np.inf
            changed[feature.name] = float(min(max(value * rng.uniform(1 - scale, 1 + scale), low), high))
    return changed


def _codes(decision: Any) -> tuple[str, ...]:
    return tuple(r.code for r in decision.reasons)


def _jaccard(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else 1.0


def agreement(pairs: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> dict[str, Any]:
    """How often two reason lists agree: same principal reason, same list in order, mean Jaccard."""
    if not pairs:
        return {"pairs": 0, "same_principal_reason": None, "same_reasons_in_order": None, "mean_jaccard": None}
    return {"pairs": len(pairs),
            "same_principal_reason": round(float(np.mean([a[:1] == b[:1] for a, b in pairs])), 4),
            "same_reasons_in_order": round(float(np.mean([a == b for a, b in pairs])), 4),
            "mean_jaccard": round(float(np.mean([_jaccard(a, b) for a, b in pairs])), 4)}


def evaluate_reasons(dataset_name: str, settings: Settings, copies: int, scale: float, seed: int) -> dict[str, Any]:
    """Stability of the reasons of held-out denials under perturbation and between the references."""
    held = load_held_out(dataset_name, settings)
    scorer = Scorer.load(dataset_name, settings)
    decisions = scorer.score_many(held_out_applications(held), "population")
    denied = [d for d in decisions if d.denied]
    cutoff = scorer.score_many([d.application for d in denied], "cutoff")
    rng = np.random.default_rng(seed)
    nudged = [nudge(held["model"].spec, d.application, scale, rng) for d in denied for _ in range(copies)]
    moved = scorer.score_many(nudged, "population") if nudged else []
    originals = [d for d in denied for _ in range(copies)]
    still_denied = [(_codes(a), _codes(b)) for a, b in zip(originals, moved) if b.denied]
    return {
        "test_rows": len(decisions), "denials": len(denied),
        "perturbation": {"copies_per_denial": copies, "scale": scale,
                         "definition": f"continuous figures times U({1 - scale:g}, {1 + scale:g}); ratings, "
                                       "yes/no answers and categories unchanged",
                         "decision_flipped": round(1 - len(still_denied) / len(moved), 4) if moved else None,
                         **agreement(still_denied)},
        "references": {"definition": "the same denials explained against the population and the cutoff reference",
                       **agreement([(_codes(a), _codes(b)) for a, b in zip(denied, cutoff)])},
    }
