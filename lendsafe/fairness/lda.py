"""Less discriminatory alternatives (LDA): a documented family of alternative models fitted on the current
model's own training rows and scored on its held-out rows for AUC and adverse impact ratio.

Every alternative decides at the current model's approval rate on the training rows (its cutoff is
the quantile of its own training scores), except the cutoff moves, which approve more by design and
report what that costs. Fair-lending rules forbid deciding with the protected attribute, so group-
specific cutoffs are not in the family; the reductions alternative uses it only while training.
Nothing is switched: the results list what each alternative would cost.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from lendsafe.decide.specs import DatasetSpec
from lendsafe.fairness.groups import Attribute
from lendsafe.fairness.outcomes import air
from lendsafe.decide.risk import RiskParams

AUC_TOLERANCE = 0.005
PARITY_NOTE = ("an attribute whose worst AIR is at or above 1 has no candidates: no protected group is approved "
               "less often than its control (Reg B also lets creditors favour applicants aged 62 or older)")
WORST_AIR = ("worst AIR = the lowest held-out AIR among protected groups with at least the minimum group size "
             "of held-out rows (among all protected groups when none has)")
SEED_OFFSETS = (1, 2)                      # refits of the current settings: run-to-run noise
CUTOFF_MOVES = (0.01, 0.02, 0.05)          # approval-rate points added by moving the current cutoff
REDUCTION_ITERATIONS = 20
FIT_THREADS = 1        # per fit: on a shared 2-core machine a 2-thread fit of these small data was measured
WORKERS = 2            # 10-100x slower than a 1-thread fit (OpenMP waits); two 1-thread fits run at a time instead
REGULARISATION = (                         # (name, RiskParams changes as a function of the current params)
    ("shallower trees (max_depth 2)", lambda p: {"max_depth": 2}),
    ("deeper trees (max_depth 4)", lambda p: {"max_depth": 4}),
    ("stronger L2 penalty (reg_lambda 10)", lambda p: {"reg_lambda": 10.0}),
    ("larger leaves (min_child_weight 10)", lambda p: {"min_child_weight": 10.0}),
    ("half the boosting rounds", lambda p: {"n_estimators": max(1, p.n_estimators // 2)}),
)
EXCLUDED_FROM_FAMILY = ("group-specific cutoffs (e.g. fairlearn ThresholdOptimizer): they decide with the "
                        "protected attribute, a prohibited basis (12 CFR 1002.6(b)); not an alternative a "
                        "lender could adopt")


@dataclass(frozen=True)
class Alternative:
    """One member of the family: how it differs from the current model."""

    name: str
    family: str            # current | seed | drop_feature | monotone | regularisation | cutoff | reductions
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    drop: str | None = None
    monotone: bool = True
    approval_shift: float = 0.0
    attribute: str | None = None


def family(spec: DatasetSpec, params: RiskParams, attributes: tuple[str, ...]) -> list[Alternative]:
    """The documented family, in a fixed order."""
    out = [Alternative("current model", "current", "the saved model at its threshold")]
    out += [Alternative(f"current settings, seed +{k}", "seed", "refit with another seed: run-to-run noise",
                        {"seed": params.seed + k}) for k in SEED_OFFSETS]
    out += [Alternative(f"drop {f.name}", "drop_feature", f"without {f.label}", drop=f.name) for f in spec.model_features]
    out.append(Alternative("no monotone constraints", "monotone", "monotone directions removed", monotone=False))
    out += [Alternative(name, "regularisation", name, change(params)) for name, change in REGULARISATION]
    out += [Alternative(f"cutoff +{s:.0%} approvals", "cutoff", f"current score, cutoff moved to approve {s:.0%} more "
                        "of the training rows (changes the approval rate)", approval_shift=s) for s in CUTOFF_MOVES]
    out += [Alternative(f"reductions: demographic parity on {a}", "reductions", "fairlearn ExponentiatedGradient "
                        f"(DemographicParity between {a}'s control group and everyone else while training; not read when deciding); score = the mixture's "
                        "weighted mean probability", attribute=a) for a in attributes]
    return out


@dataclass
class Split:
    """The current model's training and held-out rows, and the current model's scores on both."""

    X: pd.DataFrame
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray
    current_train: np.ndarray
    current_test: np.ndarray
    threshold: float
    attributes: dict[str, Attribute]
    min_group: int = 30

    @property
    def approval_rate(self) -> float:
        return float(np.mean(self.current_train < self.threshold))


def _columns(spec: DatasetSpec, drop: str | None) -> list[str]:
    return [c for c, f in spec.column_groups().items() if f != drop]


def _xgb_params(spec: DatasetSpec, params: RiskParams, columns: list[str], monotone: bool) -> dict[str, Any]:
    out = {**params.xgb_params(spec), "nthread": FIT_THREADS}
    constraints = dict(zip(spec.model_columns(), spec.monotone_constraints()))
    out["monotone_constraints"] = "(" + ",".join(str(constraints[c] if monotone else 0) for c in columns) + ")"
    return out


def fit_booster(spec: DatasetSpec, params: RiskParams, alt: Alternative, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out scores of a boosted alternative (same rows, same settings but its change)."""
    import xgboost as xgb

    columns, changed = _columns(spec, alt.drop), replace(params, **alt.params)
    matrix = split.X[columns].to_numpy(np.float32)
    booster = xgb.train(_xgb_params(spec, changed, columns, alt.monotone),
                        xgb.DMatrix(matrix[split.train], label=split.y[split.train], missing=np.nan, nthread=FIT_THREADS),
                        num_boost_round=changed.n_estimators)
    return booster.inplace_predict(matrix[split.train]), booster.inplace_predict(matrix[split.test])


def fit_reduction(spec: DatasetSpec, params: RiskParams, alt: Alternative, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """ExponentiatedGradient (demographic parity) around the current settings; mixture-weighted scores."""
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient
    from xgboost import XGBClassifier

    p = params
    base = XGBClassifier(n_estimators=p.n_estimators, max_depth=p.max_depth, learning_rate=p.learning_rate,
                         subsample=p.subsample, colsample_bytree=p.colsample_bytree, min_child_weight=p.min_child_weight,
                         reg_lambda=p.reg_lambda, random_state=p.seed, n_jobs=FIT_THREADS, tree_method="hist",
                         monotone_constraints=tuple(spec.monotone_constraints()))
    matrix = split.X.to_numpy(np.float32)
    reduction = ExponentiatedGradient(base, DemographicParity(), max_iter=REDUCTION_ITERATIONS)
    attr = split.attributes[alt.attribute]
    in_control = np.where(attr.labels[split.train] == attr.control, "control", "not control")
    with warnings.catch_warnings():       # fairlearn's own pandas deprecation notices, not ours to act on
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        reduction.fit(matrix[split.train], split.y[split.train], sensitive_features=in_control)

    def score(rows: np.ndarray) -> np.ndarray:
        weighted = [w * m.predict_proba(rows)[:, 1] for w, m in zip(reduction.weights_, reduction.predictors_) if w > 0]
        return np.sum(weighted, axis=0)

    return score(matrix[split.train]), score(matrix[split.test])


def scores_of(spec: DatasetSpec, params: RiskParams, alt: Alternative, split: Split) -> tuple[np.ndarray, np.ndarray]:
    if alt.family in ("current", "cutoff"):
        return split.current_train, split.current_test
    if alt.family == "reductions":
        return fit_reduction(spec, params, alt, split)
    return fit_booster(spec, params, alt, split)


def cutoff_of(alt: Alternative, train_scores: np.ndarray, split: Split) -> float:
    """The current threshold, or the quantile of the alternative's training scores at the target approval rate."""
    if alt.family == "current":
        return split.threshold
    return float(np.quantile(train_scores, min(1.0, split.approval_rate + alt.approval_shift)))


def air_by_attribute(split: Split, approved: np.ndarray) -> dict[str, dict[str, Any]]:
    """Held-out AIR of every protected group; ``worst`` is the lowest (the one a screen looks at)."""
    out = {}
    for name, attr in split.attributes.items():
        held = attr.subset(split.test)
        ratios = {}
        for group in held.protected:
            p, c = held.mask(group), held.mask(held.control)
            ratios[group] = air(int(approved[p].sum()), int(p.sum()), int(approved[c].sum()), int(c.sum()))
        out[name] = {"groups": ratios, **_worst(ratios, held, split.min_group)}
    return out


def _worst(ratios: dict[str, dict[str, Any]], held: Attribute, min_group: int) -> dict[str, Any]:
    """The lowest AIR among protected groups of at least ``min_group`` held-out rows (all groups when none is)."""
    defined = {g: r["air"] for g, r in ratios.items() if r["air"] is not None}
    large = {g: v for g, v in defined.items() if held.mask(g).sum() >= min_group}
    pool = large or defined
    if not pool:
        return {"worst": None, "worst_group": None, "small_groups_only": not large}
    group = min(pool, key=lambda g: (pool[g], g))
    return {"worst": pool[group], "worst_group": group, "small_groups_only": not large}


def evaluate(spec: DatasetSpec, params: RiskParams, alt: Alternative, split: Split) -> dict[str, Any]:
    """Held-out AUC, approval rate, adverse rate among approvals and AIR of one alternative."""
    from sklearn.metrics import roc_auc_score

    began = time.perf_counter()
    train_scores, test_scores = scores_of(spec, params, alt, split)
    cutoff = cutoff_of(alt, train_scores, split)
    approved, y_test = test_scores < cutoff, split.y[split.test]
    return {"name": alt.name, "family": alt.family, "description": alt.description, "cutoff": cutoff,
            "auc": float(roc_auc_score(y_test, test_scores)), "approval_rate": float(approved.mean()),
            "approved": int(approved.sum()), "approved_adverse": int(np.sum(approved & (y_test == 1))),
            "air": air_by_attribute(split, approved), "seconds": round(time.perf_counter() - began, 3)}


def candidates(rows: list[dict[str, Any]], tolerance: float) -> dict[str, list[dict[str, Any]]]:
    """Per attribute: alternatives that raise its worst held-out AIR toward parity at an AUC cost of at most
    ``tolerance`` (seed refits excluded: they measure noise), largest gain first, with their effect on the
    others. An attribute whose worst AIR is already at or above 1 (no group approved less than its control)
    has none."""
    current, out = rows[0], {}
    for name, base in current["air"].items():
        found = []
        if base["worst"] is None or base["worst"] >= 1:
            out[name] = found
            continue
        for row in rows[1:]:
            worst = row["air"][name]["worst"]
            cost = current["auc"] - row["auc"]
            if row["family"] == "seed" or worst is None or base["worst"] is None:
                continue
            if min(worst, 1.0) > base["worst"] and cost <= tolerance:
                found.append({"name": row["name"], "family": row["family"], "equal_approval_rate": row["family"] != "cutoff",
                              "auc": row["auc"], "auc_cost": cost, "worst_group": row["air"][name]["worst_group"],
                              "air": worst, "air_gain": worst - base["worst"], "approval_rate": row["approval_rate"],
                              "approval_rate_change": row["approval_rate"] - current["approval_rate"],
                              "other_attributes": {a: v["worst"] for a, v in row["air"].items() if a != name}})
        out[name] = sorted(found, key=lambda r: (-r["air_gain"], r["name"]))
    return out


def frontier(rows: list[dict[str, Any]], attribute: str) -> list[str]:
    """Names of the alternatives at the current approval rate (cutoff moves left out: they approve more) that
    no other such alternative beats on both held-out AUC and worst AIR of ``attribute``."""
    points = [(r["name"], r["auc"], r["air"][attribute]["worst"]) for r in rows
              if r["air"][attribute]["worst"] is not None and r["family"] != "cutoff"]
    return [n for n, auc, a in points
            if not any((o_auc >= auc and o_a >= a) and (o_auc > auc or o_a > a) for _, o_auc, o_a in points)]


def noise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Spread of AUC and worst AIR over the current model and its seed refits (what chance alone moves)."""
    same = [r for r in rows if r["family"] in ("current", "seed")]
    out = {"auc_range": [min(r["auc"] for r in same), max(r["auc"] for r in same)]}
    for name in rows[0]["air"]:
        values = [r["air"][name]["worst"] for r in same if r["air"][name]["worst"] is not None]
        out[f"air_range_{name}"] = [min(values), max(values)] if values else [None, None]
    return out


def search(spec: DatasetSpec, params: RiskParams, split: Split, tolerance: float = AUC_TOLERANCE,
           progress: Any = None) -> dict[str, Any]:
    """Fit and score the whole family; the current model first."""
    from concurrent.futures import ThreadPoolExecutor

    alternatives = family(spec, params, tuple(split.attributes))
    report = progress or (lambda done, total, stage: None)
    with ThreadPoolExecutor(WORKERS) as pool:       # xgboost trains without the GIL
        futures = [pool.submit(evaluate, spec, params, alt, split) for alt in alternatives]
        rows = []
        for done, future in enumerate(futures):
            report(done, len(alternatives), "LDA search")
            rows.append(future.result())
    report(len(alternatives), len(alternatives), "LDA search")
    return {"training_rows": int(len(split.train)), "held_out_rows": int(len(split.test)),
            "approval_rate_train": split.approval_rate, "auc_tolerance": tolerance,
            "method": " ".join(__doc__.split()), "worst_air": WORST_AIR, "candidates_rule": PARITY_NOTE,
            "threads": f"{WORKERS} fits at a time, {FIT_THREADS} thread each",
            "excluded_from_family": [EXCLUDED_FROM_FAMILY],
            "alternatives": rows, "candidates": candidates(rows, tolerance), "noise": noise(rows),
            "frontier": {name: frontier(rows, name) for name in split.attributes}}
