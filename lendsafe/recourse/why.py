"""Why a denial has no recourse: what could not move, and the proof that moving everything still denies."""
from __future__ import annotations

from typing import Any

from lendsafe.decide.datasets import with_derived
from lendsafe.decide.decision import Decision
from lendsafe.recourse.axes import Axis
from lendsafe.recourse.oracle import approves
from lendsafe.recourse.wording import noun

SKIPPED_WORDS = {"not provided": "not provided", "already at its limit": "already at the limit its bounds allow"}


def infeasible_why(scorer: Any, decision: Decision, axes: list[Axis], skipped: dict[str, str],
                   max_changes: int) -> str:
    """One paragraph for the analyst: why no option within the spec's bounds approves the application."""
    spec = scorer.spec
    parts = [_fixed_reasons(spec, decision)]
    if skipped:
        parts.append("; ".join(f"{noun(spec.feature(n))} is {SKIPPED_WORDS[w]}" for n, w in skipped.items()))
    if not axes:
        return "no actionable feature of this application can change: " + "; ".join(parts)
    best = {axis.name: axis.values[-1] for axis in axes if axis.monotone}
    together = ", ".join(f"{noun(a.feature)} {a.feature.display(best[a.name])}" for a in axes if a.name in best)
    if best and approves(scorer, decision.application, [best])[0]:
        return (f"only changing more than {max_changes} features at once approves it (all together: {together}); "
                f"allow more changes per option; " + "; ".join(parts))
    return (f"no change within the spec's bounds approves it: even with {together} together it is still denied; "
            + "; ".join(parts))


def _fixed_reasons(spec: Any, decision: Decision) -> str:
    by_name, values = {f.name: f for f in spec.features}, with_derived(spec, decision.application)
    reasons = [by_name[r.feature] for r in decision.reasons if r.feature in by_name]
    fixed = [feature for feature in reasons if not _movable(spec, feature)]
    if not fixed:
        return "its principal reasons are all actionable, within bounds that do not reach approval"
    return "its principal reasons include what cannot change: " + ", ".join(
        f"{noun(f)} ({f.display(values.get(f.name))})" for f in fixed)


def _movable(spec: Any, feature: Any) -> bool:
    """Actionable, or a ratio of which an actionable field is a part."""
    return feature.actionable or any(spec.feature(name).actionable for name in feature.derived)
