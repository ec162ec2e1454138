"""The risk model: XGBoost with the spec's monotone constraints, scikit-learn style.

``RiskModel(spec).fit(dataset)`` splits with a fixed seed, cross-validates on the training part,
measures the test part beside a logistic-regression baseline, and learns the two reason references.
``save()`` writes ``model.json`` + ``metadata.json``; a saved model carries its own configuration.
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lendsafe.config import Settings
from lendsafe.config import SPECS_DIR
from lendsafe.decide.datasets import Dataset
from lendsafe.decide.specs import DatasetSpec, load_spec
from lendsafe.decide.treetables import TreeTables, load_tables
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError


SMALL_BATCH_ROWS = 2048   # below this many rows, data is converted on one thread
SPEC_FILE = "spec.toml"   # a user's dataset spec, saved beside the model trained on it


@dataclass(frozen=True)
class RiskParams:
    """Training settings; every value is recorded in the model's metadata."""

    n_estimators: int = field(default=300, metadata={"help": "boosting rounds"})
    max_depth: int = field(default=3, metadata={"help": "tree depth"})
    learning_rate: float = field(default=0.05, metadata={"help": "shrinkage per round"})
    subsample: float = field(default=0.8, metadata={"help": "row sample per tree"})
    colsample_bytree: float = field(default=0.8, metadata={"help": "column sample per tree"})
    min_child_weight: float = field(default=2.0, metadata={"help": "minimum hessian per leaf"})
    reg_lambda: float = field(default=1.0, metadata={"help": "L2 penalty on leaf weights"})
    seed: int = field(default=20261122, metadata={"help": "seed for the split, the folds and the trees"})
    test_size: float = field(default=0.2, metadata={"help": "held-out share, stratified by the target"})
    cv_folds: int = field(default=5, metadata={"help": "folds of the cross-validation on the training part"})
    cutoff_band: float = field(default=0.1, metadata={
        "help": "share of approved training applicants nearest the cutoff that form the 'cutoff' reference"})

    def __post_init__(self) -> None:
        if not 0 < self.test_size < 0.5:
            raise ConfigurationError(f"test_size must be between 0 and 0.5; got {self.test_size}")
        if not 0 < self.cutoff_band <= 1:
            raise ConfigurationError(f"cutoff_band must be in (0, 1]; got {self.cutoff_band}")

    def xgb_params(self, spec: DatasetSpec) -> dict[str, Any]:
        return {
            "objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist",
            "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda, "seed": self.seed, "nthread": 2,
            "monotone_constraints": "(" + ",".join(map(str, spec.monotone_constraints())) + ")",
        }


def split_indices(y: np.ndarray, params: RiskParams) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test row indices, fixed by the seed."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    train, test = train_test_split(rows, test_size=params.test_size, stratify=y, random_state=params.seed)
    return np.sort(train), np.sort(test)


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC, KS, Brier, calibration table and confusion at the threshold."""
    from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    predicted = p >= threshold
    return {
        "auc": float(roc_auc_score(y, p)),
        "ks": float(np.max(tpr - fpr)),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(y.mean()),
        "n": int(len(y)),
        "calibration": calibration_table(y, p),
        "confusion": {
            "threshold": threshold,
            "true_positive": int(np.sum(predicted & (y == 1))),
            "false_positive": int(np.sum(predicted & (y == 0))),
            "true_negative": int(np.sum(~predicted & (y == 0))),
            "false_negative": int(np.sum(~predicted & (y == 1))),
        },
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted vs. observed rate in equal-count bins of the prediction."""
    order = np.argsort(p, kind="stable")
    table = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            table.append({"mean_predicted": float(p[chunk].mean()), "observed_rate": float(y[chunk].mean()),
                          "count": int(len(chunk))})
    return table


def adverse_impact(spec: DatasetSpec, raw: pd.DataFrame, approved: np.ndarray, observed: np.ndarray
                   ) -> dict[str, Any]:
    """Approval rate by group of each protected attribute, beside the observed outcome.

    A group's ratio is its approval rate over the most-approved group's (the four-fifths rule
    flags ratios below 0.8). Protected attributes never enter the model; they are read here only.
    """
    table = {}
    for column in spec.protected:
        groups = column.groups(raw[column.column]).to_numpy()
        rates = {g: {"count": int(np.sum(groups == g)), "approval_rate": float(approved[groups == g].mean()),
                     "observed_approval_rate": float(observed[groups == g].mean())} for g in sorted(set(groups))}
        table[column.column] = {"groups": rates, **_ratios(rates, "approval_rate"),
                                **{f"observed_{k}": v for k, v in _ratios(rates, "observed_approval_rate").items()}}
    return table


def _ratios(rates: dict[str, dict[str, float]], key: str) -> dict[str, Any]:
    best = max(rates, key=lambda g: (rates[g][key], g))
    ratios = {g: (r[key] / rates[best][key] if rates[best][key] else 1.0) for g, r in rates.items()}
    return {"reference_group": best, "ratios": ratios, "min_ratio": min(ratios.values())}


def logistic_baseline(X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, seed: int) -> np.ndarray:
    """Probabilities from an imputed, standardised logistic regression on the same split."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(X_train, y_train)
    return model.predict_proba(X_test)[:, 1]


def typical_values(spec: DatasetSpec, X: pd.DataFrame) -> dict[str, Any]:
    """Median of each numeric feature, majority of each yes/no feature, most common level of each
    category, over the rows of ``X`` (a model matrix); missing values are left out."""
    typical: dict[str, Any] = {}
    for feature in spec.model_features:
        if feature.type == "category":
            shares = X[[f"{feature.name}={level}" for level in feature.categories]].mean()
            typical[feature.name] = feature.categories[int(np.argmax(shares.to_numpy()))]
        elif feature.type == "bool":
            typical[feature.name] = bool(np.nanmean(X[feature.name].to_numpy(dtype=float)) > 0.5)
        else:
            typical[feature.name] = round(float(np.nanmedian(X[feature.name].to_numpy(dtype=float))), 6)
    return typical


class RiskModel:
    """Monotone gradient-boosted risk model; learned state ends in ``_``."""

    def __init__(self, spec: DatasetSpec, params: RiskParams | None = None, threshold: float | None = None):
        self.spec = spec
        self.params = params or RiskParams()
        self.threshold = spec.threshold if threshold is None else threshold

    # ------------------------------------------------------------------ training
    def fit(self, dataset: Dataset) -> "RiskModel":
        import xgboost as xgb

        train, test = split_indices(dataset.y, self.params)
        X_train, y_train = dataset.X.iloc[train], dataset.y[train]
        self.cv_auc_ = self._cross_validate(X_train, y_train)
        self.booster_ = xgb.train(self.params.xgb_params(self.spec), self._dmatrix(X_train, y_train),
                                  num_boost_round=self.params.n_estimators)
        self.train_index_, self.test_index_ = train, test
        self.references_ = self._references(X_train)
        self.metrics_ = self._evaluate(dataset, train, test)
        self.data_ = {"source": dataset.spec.source, "rows": int(len(dataset.y)), "sha256": dataset.sha256}
        return self

    def _dmatrix(self, X: pd.DataFrame, y: np.ndarray | None = None):
        import xgboost as xgb

        rows = np.asarray(X, dtype=np.float32)
        threads = 1 if len(rows) < SMALL_BATCH_ROWS else -1   # OpenMP start-up dominates small batches
        return xgb.DMatrix(rows, label=y, feature_names=self.spec.model_columns(), missing=np.nan, nthread=threads)

    def _cross_validate(self, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
        import xgboost as xgb
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        folds = StratifiedKFold(self.params.cv_folds, shuffle=True, random_state=self.params.seed)
        scores = []
        for fit_rows, val_rows in folds.split(X, y):
            booster = xgb.train(self.params.xgb_params(self.spec), self._dmatrix(X.iloc[fit_rows], y[fit_rows]),
                                num_boost_round=self.params.n_estimators)
            scores.append(roc_auc_score(y[val_rows], booster.predict(self._dmatrix(X.iloc[val_rows]))))
        return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "folds": [float(s) for s in scores]}

    def _evaluate(self, dataset: Dataset, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
        X_test, y_test = dataset.X.iloc[test], dataset.y[test]
        baseline = logistic_baseline(dataset.X.iloc[train], dataset.y[train], X_test, self.params.seed)
        risk = self.predict_proba(X_test)
        return {
            "cv_auc": self.cv_auc_,
            "test": classification_metrics(y_test, risk, self.threshold),
            "logistic_baseline_test": classification_metrics(y_test, baseline, self.threshold),
            "adverse_impact_test": adverse_impact(self.spec, dataset.raw.iloc[test], risk < self.threshold, y_test == 0),
        }

    def _references(self, X_train: pd.DataFrame) -> dict[str, Any]:
        """Mean contributions of the two Reg B comment 9(b)(2)-5 reference groups."""
        contribs = self.contributions(X_train)
        risk = self.predict_proba(X_train)
        approved = np.flatnonzero(risk < self.threshold)
        n_cutoff = max(20, int(round(len(approved) * self.params.cutoff_band)))
        cutoff = approved[np.argsort(risk[approved])[::-1][:n_cutoff]]
        return {
            "population": {"mean_contributions": contribs.mean(axis=0).tolist(), "count": int(len(contribs)),
                           "typical_values": typical_values(self.spec, X_train),
                           "definition": "all training applicants"},
            "cutoff": {"mean_contributions": contribs[cutoff].mean(axis=0).tolist(), "count": int(len(cutoff)),
                       "typical_values": typical_values(self.spec, X_train.iloc[cutoff]),
                       "definition": f"the {len(cutoff)} approved training applicants with the highest risk "
                                     f"below the threshold (at or just above the passing cutoff)",
                       "risk_range": [float(risk[cutoff].min()), float(risk[cutoff].max())]},
        }

    # ------------------------------------------------------------------ scoring
    tables_: TreeTables | None = None     # set by ``load``: the exact lookup path (None: xgboost's own)
    _booster = None
    _model_file: Path | None = None         # a loaded model reads its booster on first use

    @property
    def booster_(self):
        """The xgboost booster (read from the model file on first use: scoring with cached tables never
        imports xgboost)."""
        if self._booster is None and self._model_file is not None:
            import xgboost as xgb

            self._booster = xgb.Booster(model_file=str(self._model_file))
            self._booster.set_param({"nthread": 1})
        return self._booster

    @booster_.setter
    def booster_(self, booster) -> None:
        self._booster = booster

    def predict_margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if self.tables_ is not None:
            return self.tables_.predict(X)[1]
        return self.booster_.inplace_predict(X, predict_type="margin", missing=np.nan)

    def contributions_and_margin(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact TreeSHAP (bias last) and the margin, in one pass when the lookup tables are loaded."""
        if self.tables_ is not None:
            return self.tables_.predict(np.asarray(X, dtype=np.float32))
        return self.contributions(X), self.predict_margin(X)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.predict_margin(X)))

    def contributions(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Exact TreeSHAP (``pred_contribs``): one column per model column plus the bias last."""
        if self.tables_ is not None:
            return self.tables_.predict(np.asarray(X, dtype=np.float32))[0]
        return self.booster_.predict(self._dmatrix(X), pred_contribs=True)

    def reference_vector(self, reference: str) -> np.ndarray:
        return np.asarray(self.references_[reference]["mean_contributions"])

    def reference_values(self, reference: str) -> dict[str, Any]:
        """Typical value of each model feature in the reference group (median; majority for yes/no;
        most common level for categories): what an applicant's own value is compared with."""
        return self.references_[reference].get("typical_values") or {}

    # ------------------------------------------------------------------ persistence
    @property
    def sha256(self) -> str:
        if self.tables_ is not None and self.tables_.model_sha256:
            return self.tables_.model_sha256
        return hashlib.sha256(bytes(self.booster_.save_raw("json"))).hexdigest()

    def metadata(self) -> dict[str, Any]:
        import sklearn
        import xgboost

        return {
            "dataset": self.spec.name, "threshold": self.threshold, "threshold_version": self.spec.threshold_version,
            "features": self.spec.model_columns(), "monotone_constraints": list(self.spec.monotone_constraints()),
            "excluded_columns": [asdict(e) for e in self.spec.excluded], "params": asdict(self.params),
            "metrics": self.metrics_, "data": self.data_, "references": self.references_,
            "split": {"train_rows": len(self.train_index_), "test_index": self.test_index_.tolist()},
            "model_sha256": self.sha256,
            "versions": {"xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__,
                         "python": platform.python_version()},
        }

    def save(self, directory: Path) -> Path:
        """model.json + metadata.json; a user's spec is copied beside them so the model loads anywhere."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.json").write_bytes(bytes(self.booster_.save_raw("json")))
        (directory / "metadata.json").write_text(json.dumps(self.metadata(), indent=1) + "\n")
        if self.spec.path is not None and self.spec.path.parent != SPECS_DIR:
            shutil.copyfile(self.spec.path, directory / SPEC_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path, spec: DatasetSpec | None = None) -> "RiskModel":
        if not (directory / "model.json").exists():
            raise ArtifactNotFoundError(f"no risk model in {directory}; run `lendsafe train-risk`")
        meta = json.loads((directory / "metadata.json").read_text())
        own_spec = directory / SPEC_FILE
        spec = spec or load_spec(own_spec if own_spec.exists() else meta["dataset"])
        model = cls(spec, RiskParams(**meta["params"]), meta["threshold"])
        model._model_file = directory / "model.json"
        model.references_, model.metrics_, model.data_ = meta["references"], meta["metrics"], meta["data"]
        model.test_index_ = np.asarray(meta["split"]["test_index"])
        model.metadata_ = meta
        model.tables_ = load_tables(directory / "model.json", lambda: model.booster_)
        return model


def model_dir(dataset: str, settings: Settings | None = None) -> Path:
    return (settings or Settings()).risk_model_dir(dataset)


def train_risk_model(spec_name_or_path: str | Path = "hmda", out_dir: Path | None = None,
                     params: RiskParams | None = None) -> RiskModel:
    """Train, evaluate and save; the CLI's ``train-risk`` and ``make`` both call this."""
    from lendsafe.decide.datasets import load_dataset

    dataset = load_dataset(spec_name_or_path)
    model = RiskModel(dataset.spec, params).fit(dataset)
    model.save(out_dir or model_dir(dataset.spec.name))
    return model
