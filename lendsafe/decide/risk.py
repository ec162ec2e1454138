"""The risk model: XGBoost with the spec's monotone constraints, scikit-learn style.

``RiskModel(spec).fit(dataset)`` splits with a fixed seed, cross-validates on the training part,
measures the test part beside a logistic-regression baseline, and learns the two reason references.
``save()`` writes ``model.json`` + ``metadata.json``; a saved model carries its own configuration.
"""
from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from lendsafe.config import Settings
from lendsafe.decide.datasets import SPECS_DIR, Dataset, DatasetSpec, load_spec
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
    tables_: "TreeTables | None" = None     # set by ``load``: the exact lookup path (None: xgboost's own)
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


def load_tables(model_file: Path, booster: Callable[[], Any], cache: Path | None = None) -> TreeTables | None:
    """The model's lookup tables from the cache under ``$LENDSAFE_HOME/cache`` (built from ``booster()``
    and saved on first use, keyed by the model file's hash and the xgboost version); None when the model
    cannot have them."""
    key = hashlib.sha256(model_file.read_bytes()).hexdigest()[:32]
    path = (cache or Settings().home / "cache" / "risk-tables") / f"{key}-xgboost{xgboost_version()}.npz"
    if path.exists():
        return TreeTables.load(path)
    tables = TreeTables.build(booster())
    if tables is not None:
        try:
            tables.save(path)
        except OSError:           # a read-only home still scores, it only builds again next time
            pass
    return tables


def xgboost_version() -> str:
    """The installed xgboost's version, read without importing it."""
    spec = importlib.util.find_spec("xgboost")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / "VERSION").is_file():
        import xgboost

        return xgboost.__version__
    return (folder / "VERSION").read_text().strip()


def model_dir(dataset: str, settings: Settings | None = None) -> Path:
    return (settings or Settings()).models_dir / "risk" / dataset


def train_risk_model(spec_name_or_path: str | Path = "hmda", out_dir: Path | None = None,
                     params: RiskParams | None = None) -> RiskModel:
    """Train, evaluate and save; the CLI's ``train-risk`` and ``make`` both call this."""
    from lendsafe.decide.datasets import load_dataset

    dataset = load_dataset(spec_name_or_path)
    model = RiskModel(dataset.spec, params).fit(dataset)
    model.save(out_dir or model_dir(dataset.spec.name))
    return model


# ---------------------------------------------------------------------- exact TreeSHAP by table lookup
TABLE_NODES = 8          # split nodes per tree a table covers (depth-3 trees have 7 at most)
TABLE_ROWS = 2048        # rows per chunk of a batch lookup (bounds the working memory)
FEW_ROWS = 16            # up to this many rows, every tree is gathered at once
CHECK_ROWS = 2048        # cell rows on which a new table is checked against xgboost's full model
BASE_MARGIN_TRIES = 16   # base margins tried, nearest logit(base_score) first


class TreeTables:
    """Exact TreeSHAP and margin of a shallow ``binary:logistic`` booster by table lookup.

    One tree's TreeSHAP values depend on a row only through the direction the row takes at each of the
    tree's split nodes, and a depth-3 tree has at most 7: each tree's values form a table over at most
    2**8 direction patterns. The tables hold xgboost's own per-tree values (``pred_contribs`` of that tree
    alone) and a row's values are added in float32 in tree order, as xgboost adds them, so the result is
    bit-identical to ``pred_contribs`` and to the margin of ``inplace_predict``; ``build`` checks that on
    a row for every table cell and gives None where it does not hold (the caller then uses xgboost).
    """

    def __init__(self, splits: dict[str, np.ndarray], contributions: np.ndarray, leaves: np.ndarray,
                 base_margin: float):
        self.features, self.thresholds = splits["features"], splits["thresholds"]
        self.default_left, self.nodes = splits["default_left"], splits["nodes"]
        self.contributions = contributions    # (trees, 2**TABLE_NODES, columns + 1) float32, bias last
        self.leaves = leaves                  # (trees, 2**TABLE_NODES) float32 leaf values
        self.base_margin = np.float32(base_margin)
        self._trees = np.arange(len(leaves))
        self.model_sha256 = ""                # sha256 of the booster's JSON, so scoring needs no xgboost

    def patterns(self, X: np.ndarray, trees: slice = slice(None)) -> np.ndarray:
        """(rows, trees) uint8: bit k set when the row goes left at the tree's k-th split node."""
        values = X[:, self.features]
        left = np.where(np.isnan(values), self.default_left, values < self.thresholds)
        left = np.concatenate([left, np.zeros((len(X), 1), bool)], axis=1)   # last: padding, never left
        return np.packbits(left[:, self.nodes[trees]], axis=-1, bitorder="little")[..., 0]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions with the bias last, margin), float32, of a float32 model matrix."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if len(X) <= TABLE_ROWS:
            return self._chunk(X)
        parts = [self._chunk(X[start:start + TABLE_ROWS]) for start in range(0, len(X), TABLE_ROWS)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _chunk(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        patterns = self.patterns(X)
        margin = np.full((len(X), 1), self.base_margin, np.float32)
        if len(X) <= FEW_ROWS:
            contribs = np.add.accumulate(self.contributions[self._trees, patterns], axis=1)[:, -1]
            leaves = np.concatenate([margin, self.leaves[self._trees, patterns]], axis=1)
            margin = np.add.accumulate(leaves, axis=1)[:, -1]
        else:
            contribs = np.zeros((len(X), self.contributions.shape[2]), np.float32)
            margin = margin[:, 0]
            for tree in self._trees:
                contribs += self.contributions[tree, patterns[:, tree]]
                margin += self.leaves[tree, patterns[:, tree]]
        contribs[:, -1] += self.base_margin
        return contribs, margin

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, booster) -> "TreeTables | None":
        """Tables of a booster, or None when its trees are too deep, its objective is not binary:logistic
        or the lookup is not bit-identical to xgboost on every table cell."""
        config = json.loads(booster.save_config())["learner"]
        trees = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]
        nodes = [[i for i, child in enumerate(t["left_children"]) if child != -1] for t in trees]
        if config["objective"]["name"] != "binary:logistic" or max(map(len, nodes), default=0) > TABLE_NODES:
            return None
        base = float(config["learner_model_param"]["base_score"].strip("[]"))
        splits = _distinct_splits(trees, nodes)
        width = int(config["learner_model_param"]["num_feature"]) + 1
        tables = cls(splits, np.zeros((len(trees), 256, width), np.float32), np.zeros((len(trees), 256), np.float32),
                     np.float32(np.log(base / (1.0 - base))))
        rows = np.concatenate([tables._fill(booster, tree, trees[tree]) for tree in range(len(trees))])
        sample = rows[:: max(1, len(rows) // CHECK_ROWS)]       # every tree's cells, summed over all trees
        tables.model_sha256 = hashlib.sha256(bytes(booster.save_raw("json"))).hexdigest()
        return tables if tables._settle_base_margin(booster, sample) else None

    def _fill(self, booster, tree: int, dumped: dict) -> np.ndarray:
        """Fill one tree's cells from xgboost's values for that tree alone; returns one row per cell."""
        import xgboost as xgb

        rows = _cell_rows(dumped, self.contributions.shape[2] - 1)
        patterns, first = np.unique(self.patterns(rows, slice(tree, tree + 1))[:, 0], return_index=True)
        rows = rows[first]
        matrix = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names,
                             base_margin=np.zeros(len(rows), np.float32))
        alone = booster[tree:tree + 1]
        self.contributions[tree, patterns] = alone.predict(matrix, pred_contribs=True)
        self.leaves[tree, patterns] = alone.predict(matrix, output_margin=True)
        return rows

    def _settle_base_margin(self, booster, rows: np.ndarray) -> bool:
        """Find the float32 base margin xgboost adds (the configuration prints base_score with too few
        digits to recover it): candidates are the first tree's margins less its leaf values, and the one
        with which the lookup equals xgboost's full model on ``rows`` is kept; False when none does."""
        import xgboost as xgb

        matrix = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names)
        expected = (booster.predict(matrix, pred_contribs=True),
                    booster.inplace_predict(rows, predict_type="margin", missing=np.nan))
        first = booster[0:1].inplace_predict(rows, predict_type="margin", missing=np.nan).astype(np.float64)
        near = np.unique((first - self.leaves[0, self.patterns(rows, slice(0, 1))[:, 0]]).astype(np.float32))
        candidates = {self.base_margin, *near, *np.nextafter(near, np.float32(np.inf)),
                      *np.nextafter(near, np.float32(-np.inf))}
        for candidate in sorted(candidates, key=lambda c: abs(c - self.base_margin))[:BASE_MARGIN_TRIES]:
            self.base_margin = np.float32(candidate)
            if all(np.array_equal(got, want) for got, want in zip(self.predict(rows), expected)):
                return True
        return False

    # ------------------------------------------------------------------ on disk
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, features=self.features, thresholds=self.thresholds, default_left=self.default_left,
                 nodes=self.nodes, contributions=self.contributions, leaves=self.leaves,
                 base_margin=self.base_margin, model_sha256=np.array(self.model_sha256))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> "TreeTables":
        with np.load(path) as saved:
            splits = {k: saved[k] for k in ("features", "thresholds", "default_left", "nodes")}
            tables = cls(splits, saved["contributions"], saved["leaves"], float(saved["base_margin"]))
            tables.model_sha256 = str(saved["model_sha256"]) if "model_sha256" in saved else ""
            return tables


def _distinct_splits(trees: list[dict], nodes: list[list[int]]) -> dict[str, np.ndarray]:
    """Every distinct (feature, threshold, default direction) once; each tree's nodes as indices into them
    (padding points one past the last split, a column that never goes left)."""
    index: dict[tuple, int] = {}
    per_tree = np.empty((len(trees), TABLE_NODES), np.intp)
    for t, (tree, internal) in enumerate(zip(trees, nodes)):
        keys = [(tree["split_indices"][i], np.float32(tree["split_conditions"][i]).item(),
                 bool(tree["default_left"][i])) for i in internal]
        ids = [index.setdefault(key, len(index)) for key in keys]
        per_tree[t] = ids + [-1] * (TABLE_NODES - len(ids))
    per_tree[per_tree < 0] = len(index)
    keys = list(index)
    return {"features": np.array([k[0] for k in keys], np.intp),
            "thresholds": np.array([k[1] for k in keys], np.float32),
            "default_left": np.array([k[2] for k in keys], bool), "nodes": per_tree}


def _cell_rows(tree: dict, columns: int) -> np.ndarray:
    """One row in every cell of the tree's splits (missing, below the first threshold, at each threshold);
    columns the tree does not use are missing."""
    cuts: dict[int, set] = {}
    for node, child in enumerate(tree["left_children"]):
        if child != -1:
            cuts.setdefault(tree["split_indices"][node], set()).add(np.float32(tree["split_conditions"][node]))
    grids = [[np.float32(np.nan), np.nextafter(min(c), np.float32(-np.inf)), *sorted(c)] for c in cuts.values()]
    rows = np.full((int(np.prod([len(g) for g in grids])), columns), np.nan, np.float32)
    for combo, row in zip(itertools.product(*grids), rows):
        row[list(cuts)] = combo
    return rows
