"""Reason disparity: the share of each principal reason code by group among denials, tests of
independence (scipy), and the reasons whose shares differ most between a protected group and the
control; the same for the first (principal) reason alone.

A denial names up to four reasons, so the all-reasons table counts a denial once per reason it names:
its overall chi-square is approximate (mentions are not independent). Each reason is therefore also
tested on its own (named / not named x protected / control: Fisher's exact test when an expected
count is below 5, else chi-square), with Holm's correction across reasons. Where a table has expected
counts below 5, its p-value comes from a seeded permutation test (the asymptotic one is kept beside it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lendsafe.fairness.groups import MISSING_GROUP, Attribute

TOP_DIFFERENCES = 3
MIN_EXPECTED = 5
PERMUTATIONS = 2000
PERMUTATION_SEED = 20261122


def chi_square(table: np.ndarray) -> dict[str, Any]:
    """Chi-square test of independence of a groups x reasons count table (empty rows/columns dropped)."""
    from scipy.stats import chi2_contingency

    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return {"statistic": None, "dof": 0, "p_value": None, "cramers_v": None,
                "note": "fewer than two groups or two reasons with counts: no test"}
    statistic, p_value, dof, expected = chi2_contingency(table, correction=False)
    v = np.sqrt(statistic / (table.sum() * (min(table.shape) - 1)))
    return {"statistic": float(statistic), "dof": int(dof), "p_value": float(p_value), "p_method": "chi-square",
            "cramers_v": float(v), "min_expected": float(expected.min()),
            "approximate": bool(expected.min() < MIN_EXPECTED)}


def _statistic(table: np.ndarray) -> float:
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    cells = expected > 0
    return float(np.sum((table[cells] - expected[cells]) ** 2 / expected[cells]))


def permutation_p(groups: np.ndarray, named: np.ndarray, seed: int = PERMUTATION_SEED) -> float:
    """P-value of the chi-square statistic under random reassignment of the denials' groups (seeded):
    valid where small expected counts make the chi-square distribution a poor guide."""
    rng = np.random.default_rng(seed)
    onehot = (groups[:, None] == np.unique(groups)[None, :]).astype(float)
    observed = _statistic(onehot.T @ named)
    exceed = sum(_statistic(onehot[rng.permutation(len(groups))].T @ named) >= observed - 1e-9
                 for _ in range(PERMUTATIONS))
    return (1 + exceed) / (1 + PERMUTATIONS)


def two_by_two(named_1: int, n_1: int, named_0: int, n_0: int) -> dict[str, Any]:
    """One reason, protected vs control: Fisher's exact test for small expected counts, else chi-square."""
    from scipy.stats import chi2_contingency, fisher_exact

    table = np.array([[named_1, n_1 - named_1], [named_0, n_0 - named_0]])
    if table.sum(axis=0).min() == 0:
        return {"test": "none (the reason is named by every denial or by none)", "p_value": 1.0}
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() < MIN_EXPECTED:
        return {"test": "fisher_exact", "p_value": float(fisher_exact(table)[1])}
    return {"test": "chi_square", "p_value": float(chi2_contingency(table, correction=False)[1])}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = np.argsort(p_values, kind="stable")
    adjusted, running = np.empty(len(p_values)), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def share_table(attr: Attribute, denied: np.ndarray, codes: list[tuple[str, ...]], catalog: list[str],
                first_only: bool) -> dict[str, dict[str, Any]]:
    """Per group: denials, and per reason code how many denials name it (or name it first) and the share."""
    table = {}
    for group in (g for g in attr.groups if g != MISSING_GROUP):
        rows = np.flatnonzero(denied & attr.mask(group))
        named = {code: sum(1 for r in rows if (codes[r][:1] if first_only else codes[r]).count(code))
                 for code in catalog}
        table[group] = {"denials": int(len(rows)), "named": named,
                        "share": {c: (k / len(rows) if len(rows) else None) for c, k in named.items()}}
    return table


def differences(table: dict[str, dict[str, Any]], attr: Attribute, catalog: list[str]) -> dict[str, list[dict]]:
    """Per protected group: each reason's share gap to the control with its own test, largest gaps first."""
    control, out = table[attr.control], {}
    for group in attr.protected:
        mine = table[group]
        rows = [{"code": c, "share_protected": mine["share"][c], "share_control": control["share"][c],
                 "gap": (mine["share"][c] or 0.0) - (control["share"][c] or 0.0),
                 **two_by_two(mine["named"][c], mine["denials"], control["named"][c], control["denials"])}
                for c in catalog]
        for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
            row["p_holm"] = adjusted
        out[group] = sorted(rows, key=lambda r: (-abs(r["gap"]), r["code"]))
    return out


def _denials(attr: Attribute, denied: np.ndarray, codes: list[tuple[str, ...]], catalog: list[str],
             first_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Group label and 0/1 reason indicators (or the first reason's) of each denial with a recorded group."""
    rows = np.flatnonzero(denied & (attr.labels != MISSING_GROUP))
    named = np.array([[float(c in (codes[r][:1] if first_only else codes[r])) for c in catalog] for r in rows])
    return attr.labels[rows], named.reshape(len(rows), len(catalog))


def reason_disparity(attr: Attribute, denied: np.ndarray, codes: list[tuple[str, ...]]) -> dict[str, Any]:
    """All-reasons and first-reason tables, tests and largest differences for one attribute."""
    catalog = sorted({c for row in codes for c in row})
    out: dict[str, Any] = {"codes": catalog}
    for name, first_only in (("all_reasons", False), ("first_reason", True)):
        table = share_table(attr, denied, codes, catalog, first_only)
        counts = np.array([[table[g]["named"][c] for c in catalog] for g in table])
        test = chi_square(counts) if counts.size else chi_square(np.zeros((0, 0)))
        if test.get("approximate"):
            test.update(p_asymptotic=test["p_value"], p_method=f"permutation ({PERMUTATIONS} seeded reassignments "
                        "of the denials' groups; expected counts below 5)",
                        p_value=permutation_p(*_denials(attr, denied, codes, catalog, first_only)))
        if not first_only:
            test["note"] = "approximate: a denial naming several reasons counts once per reason"
        diffs = differences(table, attr, catalog) if table.get(attr.control, {}).get("denials") else {}
        out[name] = {"groups": table, "independence": test, "by_reason": diffs,
                     "largest": {g: rows[:TOP_DIFFERENCES] for g, rows in diffs.items()}}
    return out
