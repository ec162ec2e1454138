"""Principal reasons from exact TreeSHAP, the way Reg B expects them.

Contributions come from ``Booster.predict(pred_contribs=True)`` and are taken relative to a reference
group (comment 9(b)(2)-5): the average of all applicants (``population``) or of applicants at or just
above the passing cutoff (``cutoff``). A feature becomes a reason only when its contribution raised this
applicant's risk *and* the applicant's own value is on the adverse side of the reference group's typical
value (``ineligibility``); one-hot levels are summed per feature and features per reason code; ties break
by code; at most four. Dropped candidates are kept with the reason they were dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lendsafe.decide.catalog import SOURCES, CatalogEntry, catalog_sha256, load_catalog  # noqa: F401 (the reason API)
from lendsafe.decide.catalog import is_missing
from lendsafe.decide.specs import DatasetSpec, FeatureSpec
from lendsafe.decide.decision import REFERENCES, Reason
from lendsafe.errors import ConfigurationError, LendSafeError

MAX_REASONS = 4
ADVERSE_EPSILON = 1e-6          # contributions at or below this did not raise risk
ADDITIVITY_TOLERANCE = 1e-3     # log-odds; float32 sums over a few hundred trees


class AdditivityError(LendSafeError):
    """Contributions did not add up to the model's output: the explanation would be wrong."""


def check_additivity(contribs: np.ndarray, margin: np.ndarray) -> None:
    """SHAP values plus bias must equal the model's log-odds output for every row."""
    gap = np.abs(contribs.sum(axis=1) - margin)
    if np.any(gap > ADDITIVITY_TOLERANCE):
        raise AdditivityError(f"TreeSHAP additivity failed: max gap {gap.max():.2e} > {ADDITIVITY_TOLERANCE}")


def relative_contributions(contribs: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-column contributions vs. the reference group's mean (bias column dropped).

    They sum to margin(x) - mean margin of the reference group.
    """
    return contribs[:, :-1] - reference[None, :-1]


def grouped_by_reason(spec: DatasetSpec, relative: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sum model columns into reason codes (one-hot levels and shared codes together)."""
    codes, matrix = _projection(spec, "reason")
    return list(codes), relative @ matrix


def grouped_by_features(spec: DatasetSpec, relative: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sum model columns into features (one-hot levels together), for a whole batch."""
    features, matrix = _projection(spec, "feature")
    return list(features), relative @ matrix


@lru_cache(maxsize=32)
def _projection(spec: DatasetSpec, by: str) -> tuple[tuple[str, ...], np.ndarray]:
    """0/1 matrix from model columns to reason codes (``by="reason"``) or features, built once per spec."""
    owners = [feature if by == "feature" else spec.feature(feature).reason
              for feature in spec.column_groups().values()]
    names = tuple(dict.fromkeys(owners)) if by == "feature" else tuple(sorted(set(owners)))
    matrix = np.zeros((len(owners), len(names)))
    matrix[np.arange(len(owners)), [names.index(o) for o in owners]] = 1.0
    matrix.setflags(write=False)
    return names, matrix


def grouped_by_feature(spec: DatasetSpec, relative_row: np.ndarray) -> dict[str, float]:
    """Signed contribution per feature for one applicant (one-hot levels summed)."""
    features, totals = grouped_by_features(spec, np.asarray(relative_row)[None, :])
    return dict(zip(features, totals[0].tolist()))


def _worse(feature: FeatureSpec, value: Any, typical: Any) -> bool:
    """Whether ``value`` is on the adverse side of ``typical`` in the feature's monotone direction."""
    if feature.monotone == 0:
        return value != typical
    return (value - typical) * feature.monotone > 0


def _bool_ineligible(feature: FeatureSpec, value: Any, typical: Any) -> str | None:
    adverse = feature.monotone > 0 if feature.monotone else not typical
    if bool(value) == adverse:
        return None
    return f"favourable value: {feature.label.lower()} is {feature.display(value)}; only {feature.display(adverse)} can be a reason"


def _rating_ineligible(feature: FeatureSpec, value: Any, typical: Any) -> str | None:
    levels = [level for level, _ in feature.levels]
    best = min(levels) if feature.monotone >= 0 else max(levels)
    if value == best:
        return f"best level: rating {value} ({feature.level_text(value)}) cannot be a reason"
    if not _worse(feature, value, typical):
        return f"not worse than the reference group's typical rating {typical:g}: rating {value} ({feature.level_text(value)})"
    return None


def _number_ineligible(feature: FeatureSpec, value: Any, typical: Any) -> str | None:
    if _worse(feature, float(value), float(typical)):
        return None
    side = {1: "at or below", -1: "at or above", 0: "equal to"}[feature.monotone]
    return (f"favourable or typical value: {feature.display(value)} is {side} the reference group's median "
            f"{feature.display(typical)}")


def _category_ineligible(feature: FeatureSpec, value: Any, typical: Any) -> str | None:
    return None if value != typical else f"typical value: {value} is the reference group's most common level"


def ineligibility(feature: FeatureSpec, value: Any, typical: Any) -> str | None:
    """Why the applicant's own value cannot be a principal reason, or None when it can.

    A reason must be true of the applicant: yes/no factors only when the adverse answer holds,
    ratings only when worse than the reference group's typical level and never the best level,
    numbers only when worse than the reference group's median. A missing value is eligible: it is
    stated as missing (the catalog's missing-value statement), never as a fact.
    """
    if is_missing(value) or typical is None:
        return None
    if feature.type == "bool":
        return _bool_ineligible(feature, value, typical)
    if feature.type == "category":
        return _category_ineligible(feature, value, typical)
    if feature.type == "int" and feature.levels:
        return _rating_ineligible(feature, value, typical)
    return _number_ineligible(feature, value, typical)


@dataclass(frozen=True)
class Selection:
    """Ranked eligible reason codes and the candidates that were dropped, with why."""

    ranked: list[tuple[str, float]]
    dropped: tuple[dict[str, Any], ...]


def select_reasons(spec: DatasetSpec, values: dict[str, Any], feature_contributions: dict[str, float],
                   typical: dict[str, Any], limit: int = MAX_REASONS) -> Selection:
    """Principal reasons from per-feature contributions: features summed per code, and a code is a reason
    only when its total raised risk and one of its features raised risk with a value that is adverse;
    largest first, ties by code; at most ``limit``."""
    totals: dict[str, float] = {}
    eligible: set[str] = set()
    dropped: list[dict[str, Any]] = []
    for feature in spec.model_features:
        contribution = float(feature_contributions.get(feature.name, 0.0))
        totals[feature.reason] = totals.get(feature.reason, 0.0) + contribution
        if contribution <= ADVERSE_EPSILON:
            continue
        why = ineligibility(feature, values.get(feature.name), typical.get(feature.name))
        if why:
            dropped.append(_dropped(feature, values.get(feature.name), contribution, why))
        else:
            eligible.add(feature.reason)
    adverse = {code: total for code, total in totals.items() if code in eligible and total > ADVERSE_EPSILON}
    ranked = sorted(adverse.items(), key=lambda item: (-round(item[1], 9), item[0]))
    for code, contribution in ranked[limit:]:
        dropped.append({"code": code, "feature": None, "value": None, "display_value": "",
                        "contribution": round(contribution, 6), "why": f"beyond the {limit} principal reasons"})
    return Selection(ranked[:limit], tuple(sorted(dropped, key=lambda d: -d["contribution"])))


def _dropped(feature: FeatureSpec, value: Any, contribution: float, why: str) -> dict[str, Any]:
    return {"code": feature.reason, "feature": feature.name, "value": value, "display_value": feature.display(value),
            "contribution": round(contribution, 6), "why": why}


def rank_adverse(codes: list[str], row: np.ndarray, limit: int = MAX_REASONS) -> list[tuple[str, float]]:
    """Codes that raised risk, largest first; ties broken by code; at most ``limit``."""
    adverse = [(code, float(v)) for code, v in zip(codes, row) if v > ADVERSE_EPSILON]
    return sorted(adverse, key=lambda item: (-round(item[1], 9), item[0]))[:limit]


def reasons_for(spec: DatasetSpec, application: dict[str, Any], ranked: list[tuple[str, float]],
                feature_contributions: dict[str, float] | None = None) -> tuple[Reason, ...]:
    """Ranked codes -> Reason objects carrying catalog text and the applicant's own value.

    Where several features share a code, the reason names the one that raised risk the most
    (``feature_contributions``; the spec's order breaks ties), never one that lowered it.
    """
    catalog = load_catalog()
    features_by_code: dict[str, list[str]] = {}
    for feature in spec.model_features:
        features_by_code.setdefault(feature.reason, []).append(feature.name)
    contributions = feature_contributions or {}
    reasons = []
    for code, contribution in ranked:
        if code not in catalog:
            raise ConfigurationError(f"reason code {code} has no catalog text in reasons.toml")
        named = features_by_code[code]
        feature = spec.feature(max(named, key=lambda name: (contributions.get(name, 0.0), -named.index(name))))
        value = application.get(feature.name)
        reasons.append(Reason(code=code, statement=catalog[code].statement_for(value, feature.name), feature=feature.name,
                              value=value, display_value=feature.display(value),
                              contribution=round(contribution, 6), citation=catalog[code].citation))
    return tuple(reasons)


def check_reference(reference: str) -> str:
    if reference not in REFERENCES:
        raise ConfigurationError(f"reference must be one of {', '.join(REFERENCES)}; got {reference!r}")
    return reference
