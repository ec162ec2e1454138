"""Proxy check: how well the model's inputs predict each protected attribute.

For each protected group against the control (rows of those two groups only): the cross-validated
AUC of a logistic regression on each feature's own model columns (missing values imputed, with a
missing indicator), of gradient boosting on all features together, and of the model's risk score
as it is. AUC 0.5 means the input carries no information about the group; the further from 0.5,
the more the input can stand in for the attribute.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lendsafe.decide.specs import DatasetSpec
from lendsafe.fairness.groups import Attribute

FOLDS = 5
ALL_FEATURES = "(all features together)"
RISK_SCORE = "(the model's risk score)"


def _folds(target: np.ndarray, seed: int) -> Any:
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(min(FOLDS, int(np.bincount(target).min())), shuffle=True, random_state=seed)


def _logistic() -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler(),
                         LogisticRegression(max_iter=1000))


def _boosting(seed: int, n_estimators: int) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=n_estimators, max_depth=3, learning_rate=0.1, subsample=0.8,
                         tree_method="hist", n_jobs=1, random_state=seed)


def cv_auc(model: Any, X: pd.DataFrame, target: np.ndarray, seed: int) -> float:
    """Out-of-fold AUC of ``model`` predicting ``target`` from ``X``."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    scores = cross_val_predict(model, X, target, cv=_folds(target, seed), method="predict_proba")[:, 1]
    return float(roc_auc_score(target, scores))


def proxy_aucs(spec: DatasetSpec, X: pd.DataFrame, risk: np.ndarray, target: np.ndarray, seed: int,
               n_estimators: int) -> list[dict[str, Any]]:
    """AUC of each feature, of all features together and of the risk score, strongest first."""
    from sklearn.metrics import roc_auc_score

    groups = spec.column_groups()
    rows = []
    for feature in spec.model_features:
        columns = [c for c, f in groups.items() if f == feature.name]
        rows.append({"input": feature.name, "label": feature.label,
                     "auc": cv_auc(_logistic(), X[columns], target, seed)})
    rows.append({"input": ALL_FEATURES, "label": "gradient boosting on every model input",
                 "auc": cv_auc(_boosting(seed, n_estimators), X, target, seed)})
    rows.append({"input": RISK_SCORE, "label": "predicted risk, no fitting",
                 "auc": float(roc_auc_score(target, risk))})
    for row in rows:
        row["strength"] = abs(row["auc"] - 0.5) * 2
    return sorted(rows, key=lambda r: (-r["strength"], r["input"]))


def proxies(spec: DatasetSpec, X: pd.DataFrame, risk: np.ndarray, attr: Attribute, seed: int,
            n_estimators: int = 100) -> dict[str, Any]:
    """Per protected group: proxy AUCs on the rows of that group and the control."""
    out: dict[str, Any] = {}
    for group in attr.protected:
        rows = attr.mask(group) | attr.mask(attr.control)
        target = attr.mask(group)[rows].astype(int)
        if np.bincount(target, minlength=2).min() < 2:
            out[group] = {"n": int(rows.sum()), "members": int(target.sum()), "inputs": [],
                          "note": "fewer than 2 rows in a group: no cross-validated proxy AUC"}
            continue
        out[group] = {"n": int(rows.sum()), "members": int(target.sum()), "folds": _folds(target, seed).n_splits,
                      "inputs": proxy_aucs(spec, X.iloc[np.flatnonzero(rows)], risk[rows], target, seed, n_estimators)}
    return out
