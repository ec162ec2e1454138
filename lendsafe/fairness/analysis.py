"""The fair-lending analysis of one dataset's saved risk model: settings, the run, and its sections.

``run_fairness(FairnessConfig(dataset="hmda"))`` scores the analysed rows through the production
``Scorer`` (so the reasons are those applicants receive), reads the protected attributes from the
source data (they never reach the scorer), and writes ``fairness.json``, CSV tables, plots and the
report PDF to ``config.out``.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError
from lendsafe.fairness.disparity import reason_disparity
from lendsafe.fairness.groups import attribute, check_groups, not_recorded, select_attributes
from lendsafe.fairness.lda import Split, search
from lendsafe.fairness.outcomes import outcomes
from lendsafe.fairness.proxies import proxies
from lendsafe.fairness.results import artifact_hashes, prepare_folder, write_outputs

SPLITS = {"test": "the risk model's recorded held-out test rows", "all": "every row of the dataset (training rows "
          "included: in-sample for the model)"}
DATASETS = ("hmda", "credit")
FAIRNESS_DIR_ENV = "LENDSAFE_FAIRNESS_DIR"     # root of saved analyses (default LENDSAFE_HOME/fairness)
Progress = Callable[[int, int, str], None]


def results_root(settings: Settings | None = None) -> Path:
    return Path(os.environ.get(FAIRNESS_DIR_ENV) or (settings or Settings()).home / "fairness")


def default_out(dataset: str, settings: Settings | None = None) -> Path:
    return results_root(settings) / dataset


@dataclass(frozen=True)
class FairnessConfig:
    """What to analyse and where the results go."""

    dataset: str = field(default="hmda", metadata={"help": "built-in dataset: " + ", ".join(DATASETS)})
    split: str = field(default="test", metadata={"help": "rows analysed: " + "; ".join(f"{k} = {v}" for k, v in SPLITS.items())})
    out: Path | None = field(default=None, metadata={"help": f"output folder (default ${FAIRNESS_DIR_ENV} or "
                                                             "LENDSAFE_HOME/fairness/<dataset>)"})
    attributes: tuple[str, ...] = field(default=(), metadata={"help": "protected attributes analysed (default all)"})
    min_group_size: int = field(default=30, metadata={"help": "groups with fewer rows are flagged as small"})
    lda: bool = field(default=True, metadata={"help": "run the less-discriminatory-alternative search"})
    auc_tolerance: float = field(default=0.005, metadata={"help": "largest held-out AUC loss an LDA candidate may cost"})
    seed: int = field(default=20261122, metadata={"help": "seed of the proxy check's folds"})

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigurationError(f"dataset must be one of {', '.join(DATASETS)}; got {self.dataset!r}")
        if self.split not in SPLITS:
            raise ConfigurationError(f"split must be one of {', '.join(SPLITS)}; got {self.split!r}")
        if not isinstance(self.min_group_size, int) or self.min_group_size < 1:
            raise ConfigurationError(f"min_group_size must be a whole number >= 1; got {self.min_group_size!r}")
        if not 0 <= self.auc_tolerance <= 0.1:
            raise ConfigurationError(f"auc_tolerance must be between 0 and 0.1; got {self.auc_tolerance!r}")
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "out", Path(self.out) if self.out else default_out(self.dataset))

    @classmethod
    def help_table(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def identity(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k != "out"}


def applications(dataset: Any, rows: np.ndarray) -> list[dict[str, Any]]:
    """The applications of ``rows`` as the scorer receives them: input fields only, missing as None."""
    inputs = [f.name for f in dataset.spec.input_fields]
    frame = dataset.applications[inputs].iloc[rows].astype(object)
    frame = frame.where(frame.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
            for record in frame.to_dict("records")]


@dataclass
class Scored:
    """The analysed rows scored by the production scorer."""

    rows: np.ndarray
    risk: np.ndarray
    denied: np.ndarray
    codes: list[tuple[str, ...]]
    good: np.ndarray


def score_rows(model: Any, dataset: Any, rows: np.ndarray) -> Scored:
    from lendsafe.decide.scoring import Scorer

    decisions = Scorer(model).score_many(applications(dataset, rows))
    denied = np.array([d.decision == "deny" for d in decisions])
    if not denied.any():
        raise ConfigurationError("split: the analysed rows contain no denial; expected at least one (try --split all)")
    return Scored(rows, np.array([d.risk for d in decisions]), denied,
                  [tuple(r.code for r in d.reasons) for d in decisions], dataset.y[rows] == 0)


def analysis_rows(model: Any, n: int, split: str) -> np.ndarray:
    return np.sort(np.asarray(model.test_index_, dtype=int)) if split == "test" else np.arange(n)


def attribute_sections(config: FairnessConfig, dataset: Any, model: Any, scored: Scored,
                       attrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Outcomes, reason disparity and proxies of every attribute on the analysed rows."""
    sections: dict[str, dict[str, Any]] = {"outcomes": {}, "reasons": {}, "proxies": {}}
    X = dataset.X.iloc[scored.rows]
    for name, full in attrs.items():
        attr = full.subset(scored.rows)
        check_groups(attr)
        sections["outcomes"][name] = outcomes(attr, scored.risk, model.threshold, scored.good, config.min_group_size)
        sections["reasons"][name] = reason_disparity(attr, scored.denied, scored.codes)
        sections["proxies"][name] = proxies(dataset.spec, X, scored.risk, attr, config.seed)
    return sections


def lda_split(model: Any, dataset: Any, attrs: dict[str, Any], min_group: int) -> Split:
    test = np.sort(np.asarray(model.test_index_, dtype=int))
    train = np.setdiff1d(np.arange(len(dataset.y)), test)
    expected = model.metadata_["split"]["train_rows"]
    if len(train) != expected:
        raise ConfigurationError(f"the model records {expected} training rows; the data gives {len(train)}")
    return Split(dataset.X, dataset.y, train, test, model.predict_proba(dataset.X.iloc[train]),
                 model.predict_proba(dataset.X.iloc[test]), model.threshold, attrs, min_group)


def load_inputs(config: FairnessConfig, settings: Settings) -> tuple[Any, Any]:
    """The saved risk model and the dataset it was trained on (refused when the data has changed)."""
    from lendsafe.decide.datasets import load_dataset
    from lendsafe.decide.risk import RiskModel, model_dir

    model = RiskModel.load(model_dir(config.dataset, settings))
    dataset = load_dataset(config.dataset)
    if dataset.sha256 != model.data_["sha256"]:
        raise ConfigurationError(f"dataset {config.dataset}: the data (sha256 {dataset.sha256[:12]}) is not the data "
                                 f"the model was trained on ({model.data_['sha256'][:12]}); retrain the model")
    return model, dataset


def run_fairness(config: FairnessConfig | None = None, settings: Settings | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Run the whole analysis, write every output to ``config.out`` and return the results dict."""
    config, settings = config or FairnessConfig(), settings or Settings()
    report = progress or (lambda done, total, stage: None)
    timing, began = {}, time.perf_counter()
    prepare_folder(config.out)
    model, dataset = load_inputs(config, settings)
    columns = select_attributes(dataset.spec, config.attributes)
    attrs = {c.column: attribute(dataset.spec, dataset.raw, c) for c in columns}
    report(0, 4, "scoring")
    scored = score_rows(model, dataset, analysis_rows(model, len(dataset.y), config.split))
    timing["scoring"] = time.perf_counter() - began
    report(1, 4, "outcomes, reasons, proxies")
    sections = attribute_sections(config, dataset, model, scored, attrs)
    timing["groups_reasons_proxies"] = time.perf_counter() - began - timing["scoring"]
    if config.lda:
        started = time.perf_counter()
        sections["lda"] = search(dataset.spec, model.params, lda_split(model, dataset, attrs, config.min_group_size),
                                 config.auc_tolerance,
                                 lambda d, t, s: report(2, 4, f"{s} {d}/{t}"))
        timing["lda"] = time.perf_counter() - started
    results = {"schema_version": 1, "kind": "fairness", "config": config.identity(),
               "artifacts": artifact_hashes(model, dataset),
               "dataset": {"name": dataset.spec.name, "title": dataset.spec.title, "outcome": dataset.spec.outcome,
                           "threshold": model.threshold, "split": config.split, "split_meaning": SPLITS[config.split],
                           "rows": int(len(scored.rows)), "denials": int(scored.denied.sum())},
               "attributes": {name: a.subset(scored.rows).describe() for name, a in attrs.items()},
               "not_recorded": not_recorded(dataset.spec), **sections}
    report(3, 4, "writing outputs")
    results["timing"] = {k: round(v, 2) for k, v in timing.items()}
    write_outputs(results, config.out, began)
    report(4, 4, "done")
    return results


def current_hashes(dataset: str, settings: Settings | None = None) -> dict[str, Any]:
    """The hashes an analysis would record now (saved results with others are stale)."""
    return artifact_hashes(*load_inputs(FairnessConfig(dataset=dataset), settings or Settings()))
