"""The CSV tables of an analysis, flattened from the results dict (one function per table, ``TABLES``).

Each row keeps its counts beside its ratios, so every ratio in a table can be recomputed from it.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator


def group_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, section in results.get("outcomes", {}).items():
        for group, row in section["groups"].items():
            role = "control" if group == section["control"] else "protected" if group in section["protected"] else "not compared"
            yield {"attribute": name, "group": group, "role": role, **row}


def air_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, section in results.get("outcomes", {}).items():
        groups = section["groups"]
        for c in section["comparisons"]:
            p, k = groups[c["protected"]], groups[c["control"]]
            yield {"attribute": name, "protected": c["protected"], "control": c["control"],
                   "n_protected": p["n"], "approved_protected": p["approved"], "n_control": k["n"],
                   "approved_control": k["approved"], "air": c["air"], "ci95_low": c["ci95"][0],
                   "ci95_high": c["ci95"][1], "method": c["method"], "below_four_fifths": c["below_four_fifths"],
                   "observed_air": c["observed_air"], "smd_risk": c["smd_risk"], "small_group": c["small_group"]}


def decile_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, section in results.get("outcomes", {}).items():
        for row in section["risk_deciles"]["deciles"]:
            for group, counts in row["groups"].items():
                yield {"attribute": name, "decile": row["decile"], "risk_low": row["risk_range"][0],
                       "risk_high": row["risk_range"][1], "group": group, **counts}


def reason_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, section in results.get("reasons", {}).items():
        for scope in ("all_reasons", "first_reason"):
            for group, table in section[scope]["groups"].items():
                for code, named in table["named"].items():
                    yield {"attribute": name, "scope": scope, "group": group, "code": code,
                           "denials": table["denials"], "named": named, "share": table["share"][code]}


def reason_test_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, section in results.get("reasons", {}).items():
        for scope in ("all_reasons", "first_reason"):
            for group, rows in section[scope]["by_reason"].items():
                for row in rows:
                    yield {"attribute": name, "scope": scope, "protected": group, **row}


def proxy_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, section in results.get("proxies", {}).items():
        for group, data in section.items():
            for row in data["inputs"]:
                yield {"attribute": name, "protected": group, "n": data["n"], "members": data["members"], **row}


def lda_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for row in results.get("lda", {}).get("alternatives", []):
        yield {k: row[k] for k in ("name", "family", "auc", "approval_rate", "approved", "approved_adverse", "cutoff",
                                   "seconds")} | {f"worst_air_{a}": v["worst"] for a, v in row["air"].items()}


def candidate_rows(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, rows in results.get("lda", {}).get("candidates", {}).items():
        for row in rows:
            yield {"attribute": name, **{k: v for k, v in row.items() if k != "other_attributes"},
                   **{f"worst_air_{a}": v for a, v in row["other_attributes"].items()}}


TABLES: dict[str, Callable[[dict[str, Any]], Iterator[dict[str, Any]]]] = {
    "groups": group_rows, "air": air_rows, "risk_deciles": decile_rows, "reasons": reason_rows,
    "reason_tests": reason_test_rows, "proxies": proxy_rows, "lda_alternatives": lda_rows,
    "lda_candidates": candidate_rows,
}
