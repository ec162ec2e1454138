"""Outcomes by group: counts and rates (fairlearn ``MetricFrame``), the adverse impact ratio with a 95%
interval, the standardized mean difference in predicted risk, and denial-rate gaps within risk deciles.

Every ratio is stored beside the counts it is computed from, so a reader can recompute it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from lendsafe.errors import ConfigurationError
from lendsafe.fairness.groups import MISSING_GROUP, Attribute

Z95 = 1.959963984540054
AIR_SCREEN = 0.8          # the four-fifths screen: a common flag, not a legal line
AIR_METHOD = ("Katz log-ratio interval (analytic): exp(ln AIR +/- 1.96 * sqrt(1/a1 - 1/n1 + 1/a0 - 1/n0)), "
              "a = approvals and n = applicants of the protected (1) and control (0) group; no bound when a "
              "group has no approvals")
DECILES = 10


def _count_metrics() -> dict[str, Any]:
    from fairlearn.metrics import count, selection_rate

    return {"n": count, "approved": lambda yt, yp: int(np.sum(yp)), "approval_rate": selection_rate,
            "good_outcomes": lambda yt, yp: int(np.sum(yt)),
            "good_denied": lambda yt, yp: int(np.sum((yt == 1) & (yp == 0)))}


def group_table(attr: Attribute, approved: np.ndarray, good: np.ndarray, risk: np.ndarray,
                min_group: int) -> dict[str, dict[str, Any]]:
    """Per group: n, approvals, approval rate, observed good outcomes, good applicants denied, risk mean/sd."""
    from fairlearn.metrics import MetricFrame

    counts = MetricFrame(metrics=_count_metrics(), y_true=good.astype(int), y_pred=approved.astype(int),
                         sensitive_features=attr.labels).by_group
    spread = MetricFrame(metrics={"mean_risk": lambda yt, yp: float(np.mean(yp)),
                                  "sd_risk": lambda yt, yp: float(np.std(yp, ddof=1)) if len(yp) > 1 else 0.0},
                         y_true=good.astype(int), y_pred=risk, sensitive_features=attr.labels).by_group
    table = {}
    for group in attr.groups:
        row = {k: _plain(k, counts.loc[group, k]) for k in counts.columns}
        row.update({k: _plain(k, spread.loc[group, k]) for k in spread.columns})
        row["false_denial_rate"] = row["good_denied"] / row["good_outcomes"] if row["good_outcomes"] else None
        row["small"] = row["n"] < min_group
        table[group] = row
    return table


COUNT_KEYS = ("n", "approved", "good_outcomes", "good_denied")


def _plain(key: str, value: Any) -> int | float:
    return int(value) if key in COUNT_KEYS else float(value)


def air(approved_1: int, n_1: int, approved_0: int, n_0: int) -> dict[str, Any]:
    """Adverse impact ratio (protected approval rate / control approval rate) with its Katz 95% interval."""
    if n_1 == 0 or n_0 == 0 or approved_0 == 0:
        return {"air": None, "ci95": [None, None], "why_undefined": "a group is empty or the control group has "
                                                                   "no approvals"}
    value = (approved_1 / n_1) / (approved_0 / n_0)
    if approved_1 == 0:
        return {"air": 0.0, "ci95": [0.0, None], "why_undefined": "the protected group has no approvals"}
    se = math.sqrt(1 / approved_1 - 1 / n_1 + 1 / approved_0 - 1 / n_0)
    return {"air": value, "ci95": [math.exp(math.log(value) - Z95 * se), math.exp(math.log(value) + Z95 * se)]}


def smd(mean_1: float, sd_1: float, n_1: int, mean_0: float, sd_0: float, n_0: int) -> float | None:
    """Standardized mean difference (protected minus control) with the pooled standard deviation."""
    if n_1 + n_0 <= 2:
        return None
    pooled = math.sqrt(((n_1 - 1) * sd_1 ** 2 + (n_0 - 1) * sd_0 ** 2) / (n_1 + n_0 - 2))
    return (mean_1 - mean_0) / pooled if pooled > 0 else 0.0


def comparison(table: dict[str, dict[str, Any]], protected: str, control: str) -> dict[str, Any]:
    """One protected group against the control: AIR (model and observed), SMD of risk, small-group flag."""
    p, c = table[protected], table[control]
    ratio = air(p["approved"], p["n"], c["approved"], c["n"])
    observed = air(p["good_outcomes"], p["n"], c["good_outcomes"], c["n"])
    return {"protected": protected, "control": control, **ratio, "method": "katz_log",
            "below_four_fifths": ratio["air"] is not None and ratio["air"] < AIR_SCREEN,
            "observed_air": observed["air"], "observed_ci95": observed["ci95"],
            "smd_risk": smd(p["mean_risk"], p["sd_risk"], p["n"], c["mean_risk"], c["sd_risk"], c["n"]),
            "small_group": p["small"] or c["small"]}


def risk_deciles(risk: np.ndarray) -> np.ndarray:
    """Decile (1..10) of each row's predicted risk: equal-count bins of the stable sort order."""
    order = np.argsort(risk, kind="stable")
    decile = np.empty(len(risk), dtype=int)
    for number, chunk in enumerate(np.array_split(order, DECILES), start=1):
        decile[chunk] = number
    return decile


def decile_gaps(attr: Attribute, risk: np.ndarray, approved: np.ndarray, good: np.ndarray) -> dict[str, Any]:
    """Per risk decile and group: applicants, model denials, observed adverse outcomes; and per protected
    group the gaps (protected minus control rate) averaged over deciles weighted by the protected count."""
    decile = risk_deciles(risk)
    rows = []
    for number in range(1, DECILES + 1):
        inside = decile == number
        if not inside.any():
            continue
        groups = {g: {"n": int(np.sum(inside & attr.mask(g))), "denied": int(np.sum(inside & attr.mask(g) & ~approved)),
                      "observed_adverse": int(np.sum(inside & attr.mask(g) & (good == 0)))}
                  for g in attr.groups if g != MISSING_GROUP}
        rows.append({"decile": number, "risk_range": [float(risk[inside].min()), float(risk[inside].max())],
                     "groups": groups})
    return {"deciles": rows, "weighted_gaps": {g: _weighted_gap(rows, g, attr.control) for g in attr.protected}}


def _weighted_gap(rows: list[dict[str, Any]], protected: str, control: str) -> dict[str, Any]:
    """Gap of the model denial rate and the observed adverse rate, deciles with both groups only."""
    both = [r["groups"] for r in rows if r["groups"][protected]["n"] and r["groups"][control]["n"]]
    weights = np.array([g[protected]["n"] for g in both], dtype=float)
    if not weights.sum():
        return {"model_denial_gap": None, "observed_adverse_gap": None, "deciles_used": 0}
    out = {"deciles_used": len(both), "weight": "protected group's count in the decile"}
    for key, name in (("denied", "model_denial_gap"), ("observed_adverse", "observed_adverse_gap")):
        gaps = [g[protected][key] / g[protected]["n"] - g[control][key] / g[control]["n"] for g in both]
        out[name] = float(np.average(gaps, weights=weights))
    return out


def outcomes(attr: Attribute, risk: np.ndarray, threshold: float, good: np.ndarray, min_group: int) -> dict[str, Any]:
    """Every outcome figure of one attribute on the analysed rows."""
    approved = risk < threshold
    if approved.all():
        raise ConfigurationError("split: the analysed rows contain no denial; expected a split with at least one "
                                 "denial (try --split all)")
    table = group_table(attr, approved, good, risk, min_group)
    return {**attr.describe(), "groups": table,
            "comparisons": [comparison(table, g, attr.control) for g in attr.protected],
            "risk_deciles": decile_gaps(attr, risk, approved, good), "min_group_size": min_group,
            "air_method": AIR_METHOD, "air_screen": AIR_SCREEN}
