"""Search and proof: the smallest changes that take a denial to approval, each re-scored before it is kept.

1. Single features: bisection along each monotone axis (the first approving grid value; one step less
   still denies), or every value of a bounded grid for a feature the model does not constrain.
2. Combinations of 2..``max_changes`` monotone features: for a coarse grid of the outer features, bisection
   of the inner one, the point with the smallest total normalised change, then bisection of each feature
   in turn with the others fixed (so no feature of the option can move one step back and still approve).
3. Selection: one option per feature set; a combination is kept only when it asks for less total change
   than every kept option on a subset of its features.
4. Proof: every kept option is re-validated and re-scored through the same ``Scorer``; its decision is part
   of the option, and an option that does not re-score as an approval is never returned.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lendsafe.decide.decision import Decision
from lendsafe.errors import ConfigurationError
from lendsafe.recourse.axes import Axis, actionable_axes
from lendsafe.recourse.oracle import approves, bisect
from lendsafe.recourse.why import infeasible_why

MAX_CHANGES = 3          # features one option may change at most
DEFAULT_MAX_CHANGES = 3
MAX_OPTIONS = 6
OUTER_POINTS = {2: 128, 3: 12}  # coarse grid points per outer feature of a pair / a triple
ZOOMS = 4                # coarse grids, each finer around the best point of the one before


@dataclass(frozen=True)
class Change:
    feature: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.before, "to": self.after}


@dataclass(frozen=True)
class Option:
    """Changes to the application and the decision the same scorer gives the changed application."""

    changes: tuple[Change, ...]
    decision: Decision
    cost: float                  # total normalised change (each feature's share of the room its bounds allow)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(c.feature for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"changes": {c.feature: c.to_dict() for c in self.changes}, "risk": round(self.decision.risk, 6),
                "decision": self.decision.decision}


@dataclass(frozen=True)
class Recourse:
    """The application as decided, and its proven options (or why there are none)."""

    decision: Decision
    options: tuple[Option, ...] = ()
    why: str = ""
    unproven: int = 0            # candidates the re-scoring did not confirm (dropped; expected 0)

    @property
    def approved(self) -> bool:
        return not self.decision.denied

    @property
    def infeasible(self) -> bool:
        return self.decision.denied and not self.options

    def to_dict(self) -> dict[str, Any]:
        if self.approved:
            return {"approved": True, "decision": "approve", "risk": round(self.decision.risk, 6), "why": self.why}
        if self.infeasible:
            return {"infeasible": True, "why": self.why}
        return {"options": [option.to_dict() for option in self.options]}


@dataclass(frozen=True)
class Candidate:
    values: dict[str, Any]
    cost: float
    features: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", frozenset(self.values))


def check_max_changes(max_changes: Any) -> int:
    if isinstance(max_changes, bool) or not isinstance(max_changes, int) or not 1 <= max_changes <= MAX_CHANGES:
        raise ConfigurationError(f"max_changes must be a whole number from 1 to {MAX_CHANGES}; got {max_changes!r}")
    return max_changes


def find_recourse(scorer: Any, application: dict[str, Any], reference: str = "population",
                  max_changes: int = DEFAULT_MAX_CHANGES, max_options: int = MAX_OPTIONS) -> Recourse:
    """Validate and score ``application``; for a denial, the smallest proven changes that approve it."""
    check_max_changes(max_changes)
    decision = scorer.score(application, reference)
    if not decision.denied:
        return Recourse(decision, why="the application is approved as submitted; nothing needs to change")
    base = decision.application
    axes, skipped = actionable_axes(scorer.spec, base)
    candidates = select(single_candidates(scorer, base, axes) + combination_candidates(scorer, base, axes, max_changes))
    options = prove(scorer, base, candidates, reference)
    unproven = len(candidates) - len(options)
    if not options:
        return Recourse(decision, why=infeasible_why(scorer, decision, axes, skipped, max_changes), unproven=unproven)
    return Recourse(decision, tuple(options[:max_options]), unproven=unproven)


# ---------------------------------------------------------------------------- single features

def single_candidates(scorer: Any, base: dict[str, Any], axes: list[Axis]) -> list[Candidate]:
    found = [_single_monotone(scorer, base, a) if a.monotone else _single_grid(scorer, base, a) for a in axes]
    return [candidate for candidate in found if candidate is not None]


def _single_monotone(scorer: Any, base: dict[str, Any], axis: Axis) -> Candidate | None:
    index = int(bisect(scorer, base, [{}], axis)[0])
    if index == len(axis.values):
        return None
    return Candidate({axis.name: axis.values[index]}, axis.cost(axis.values[index]))


def _single_grid(scorer: Any, base: dict[str, Any], axis: Axis) -> Candidate | None:
    ok = approves(scorer, base, [{axis.name: value} for value in axis.values])
    hits = [value for value, good in zip(axis.values, ok) if good]
    if not hits:
        return None
    best = min(hits, key=axis.cost)
    return Candidate({axis.name: best}, axis.cost(best))


# ---------------------------------------------------------------------------- combinations

def combination_candidates(scorer: Any, base: dict[str, Any], axes: list[Axis], max_changes: int) -> list[Candidate]:
    monotone = [axis for axis in axes if axis.monotone]
    found = []
    for size in range(2, min(max_changes, len(monotone)) + 1):
        for group in itertools.combinations(monotone, size):
            candidate = _combination(scorer, base, sorted(group, key=lambda a: len(a.values)))
            if candidate is not None:
                found.append(candidate)
    return found


def _combination(scorer: Any, base: dict[str, Any], group: list[Axis]) -> Candidate | None:
    """The smallest total change over ``group`` (inner feature last) that approves, or None: the outer features
    on a coarse grid, zoomed in around the best point found, the inner one bisected at every point."""
    farthest = {axis.name: axis.values[-1] for axis in group}
    if not approves(scorer, base, [farthest])[0]:
        return None
    *outer, inner = group
    ranges, best = [(0, len(axis.values) - 1) for axis in outer], None
    for _ in range(ZOOMS):
        grids = [_coarse(low, high, OUTER_POINTS[len(group)]) for low, high in ranges]
        found = _best_point(scorer, base, outer, inner, grids)
        if found is not None and (best is None or _cost(found) < _cost(best)):
            best = found
        if best is None or all(len(grid) == high - low + 1 for grid, (low, high) in zip(grids, ranges)):
            break
        ranges = [_around(grid, best[axis]) for axis, grid in zip(outer, grids)]
    return None if best is None else _refined(scorer, base, best)


def _best_point(scorer: Any, base: dict[str, Any], outer: list[Axis], inner: Axis, grids: list[list[int]]
                ) -> dict[Axis, int] | None:
    """Over the product of the outer grids, the first approving inner value at each point; the cheapest."""
    points = [dict(zip(outer, combo)) for combo in itertools.product(*grids)]
    fixed = [{axis.name: axis.values[i] for axis, i in point.items()} for point in points]
    found = bisect(scorer, base, fixed, inner)
    hits = [{**point, inner: int(j)} for point, j in zip(points, found) if j < len(inner.values)]
    return min(hits, key=_cost) if hits else None


def _cost(point: dict[Axis, int]) -> float:
    return sum(axis.cost(axis.values[i]) for axis, i in point.items())


def _coarse(low: int, high: int, points: int) -> list[int]:
    return sorted(set(np.linspace(low, high, min(points, high - low + 1)).round().astype(int).tolist()))


def _around(grid: list[int], index: int) -> tuple[int, int]:
    """The grid's neighbours either side of ``index`` (the range the next, finer grid covers)."""
    return max((g for g in grid if g < index), default=index), min((g for g in grid if g > index), default=index)


def _refined(scorer: Any, base: dict[str, Any], point: dict[Axis, int]) -> Candidate:
    """Each feature in turn moved back to the first value that still approves with the others fixed."""
    point = dict(point)
    for axis in point:
        others = {other.name: other.values[i] for other, i in point.items() if other is not axis}
        point[axis] = min(point[axis], int(bisect(scorer, base, [others], axis)[0]))
    return Candidate({axis.name: axis.values[i] for axis, i in point.items()}, _cost(point))


# ---------------------------------------------------------------------------- selection and proof

def select(candidates: list[Candidate]) -> list[Candidate]:
    """Simplest first: a combination stays only when it asks for less total change than every kept option
    on a subset of its features (else fewer changes do as well)."""
    kept: list[Candidate] = []
    for candidate in sorted(candidates, key=lambda c: (len(c.features), c.cost, sorted(c.features))):
        subsets = [k for k in kept if k.features < candidate.features]
        if all(candidate.cost < k.cost for k in subsets) and candidate.features not in {k.features for k in kept}:
            kept.append(candidate)
    return kept


def prove(scorer: Any, base: dict[str, Any], candidates: list[Candidate], reference: str) -> list[Option]:
    """Re-validate and re-score every candidate through the scorer; keep only those it approves."""
    decisions = scorer.score_many([{**base, **c.values} for c in candidates], reference)
    return [Option(tuple(Change(name, base[name], value) for name, value in c.values.items()), decision, c.cost)
            for c, decision in zip(candidates, decisions) if decision.decision == "approve"]
