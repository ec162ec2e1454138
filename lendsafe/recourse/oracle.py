"""The search's only oracle: the scorer's own model, asked about changed applications in batches."""
from __future__ import annotations

from typing import Any

import numpy as np

from lendsafe.recourse.axes import Axis


def approves(scorer: Any, base: dict[str, Any], changes: list[dict[str, Any]]) -> np.ndarray:
    """Which changed applications the scorer's model approves (one batched call; the search's only oracle)."""
    risk = scorer.model.predict_proba(scorer.matrix([{**base, **change} for change in changes]))
    return risk < scorer.model.threshold


def bisect(scorer: Any, base: dict[str, Any], fixed: list[dict[str, Any]], axis: Axis) -> np.ndarray:
    """For each partial change in ``fixed``, the first index of ``axis.values`` that approves with it
    (``len(axis.values)`` when none does). Exact because risk never rises along a monotone axis."""
    low, high = np.zeros(len(fixed), int), np.full(len(fixed), len(axis.values))
    while (open_ := np.flatnonzero(low < high)).size:
        middle = (low[open_] + high[open_]) // 2
        ok = approves(scorer, base, [{**fixed[i], axis.name: axis.values[m]} for i, m in zip(open_, middle)])
        high[open_[ok]] = middle[ok]
        low[open_[~ok]] = middle[~ok] + 1
    return high
