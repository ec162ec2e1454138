"""The moves recourse may propose for one actionable feature: its candidate values, nearest first.

A feature's candidates lie on its step grid (multiples of the spec's ``step``: whole months, whole dollars,
a ratio's displayed hundredths), strictly beyond the applicant's value in the direction that never raises
risk, and within the spec's ``bounds`` (and ``at_least`` another field). Along a monotone axis the model's
risk never rises from one candidate to the next, so the first approving candidate is found by bisection.
Features the model does not constrain get a bounded grid both ways, tried in full.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lendsafe.decide.catalog import is_missing
from lendsafe.decide.specs import DatasetSpec, FeatureSpec

GRID_POINTS = 256      # candidates per direction of a feature the model does not constrain
EPS = 1e-6             # a value within this many steps of a grid point is on it (0.79 / 0.01 = 79.00000000000001)


@dataclass(frozen=True)
class Axis:
    """One actionable feature of one application and the values recourse may give it."""

    feature: FeatureSpec
    current: Any
    values: tuple[Any, ...]      # nearest first
    monotone: bool               # risk never rises along ``values`` (the model's monotone constraints)
    room: float                  # distance from the current value to the farthest candidate (the cost scale)

    @property
    def name(self) -> str:
        return self.feature.name

    def cost(self, value: Any) -> float:
        """Normalised size of a change: the share of the room the bounds allow (1 for yes/no or a category)."""
        if self.feature.type in ("bool", "category"):
            return 1.0
        return abs(float(value) - float(self.current)) / self.room


def risk_direction(spec: DatasetSpec, feature: FeatureSpec) -> int:
    """+1 when the model's risk can only rise as the field grows, -1 when it can only fall, 0 when either.

    A field counts through its own model column and through every ratio it is the numerator (same
    direction) or the denominator (opposite direction) of; ratios of positive amounts are assumed.
    """
    signs = {feature.monotone} if feature.model_input else set()
    for ratio in spec.features:
        if ratio.model_input and feature.name in ratio.derived:
            signs.add(ratio.monotone if ratio.derived[0] == feature.name else -ratio.monotone)
    if feature.type not in ("int", "float", "bool") or len(signs) != 1 or 0 in signs:
        return 0
    return signs.pop()


def actionable_axes(spec: DatasetSpec, application: dict[str, Any]) -> tuple[list[Axis], dict[str, str]]:
    """The axes recourse can move along, and why each other actionable feature cannot move."""
    axes, skipped = [], {}
    for feature in spec.features:
        if not feature.actionable:
            continue
        current = application.get(feature.name)
        axis = None if is_missing(current) else make_axis(spec, feature, application)
        if axis is None:
            skipped[feature.name] = "not provided" if is_missing(current) else "already at its limit"
        else:
            axes.append(axis)
    return axes, skipped


def make_axis(spec: DatasetSpec, feature: FeatureSpec, application: dict[str, Any]) -> Axis | None:
    current = application[feature.name]
    direction = risk_direction(spec, feature)
    if feature.type == "category":
        values = tuple(level for level in feature.categories if level != current)
    elif feature.type == "bool":
        values = (not current,) if direction in (0, 1 if current else -1) else ()
    elif direction:
        values = tuple(_grid(feature, current, -direction, *_limits(feature, application)))
    else:
        values = _both_ways(feature, current, *_limits(feature, application))
    if not values:
        return None
    room = max(abs(float(v) - float(current)) for v in values) if feature.type in ("int", "float") else 1.0
    return Axis(feature, current, values, monotone=direction != 0, room=room)


def _limits(feature: FeatureSpec, application: dict[str, Any]) -> tuple[float, float]:
    """The bounds, raised to the ``at_least`` field's value."""
    low, high = feature.bounds
    floor = application.get(feature.at_least) if feature.at_least else None
    return (low if is_missing(floor) else max(low, float(floor))), high


def _grid(feature: FeatureSpec, current: float, sign: int, low: float, high: float) -> list[Any]:
    """Step-grid values strictly beyond ``current`` in direction ``sign``, within [low, high], nearest first."""
    step = feature.recourse_step
    k = float(current) / step
    if sign < 0:
        first, last = min(math.ceil(k - EPS) - 1, math.floor(high / step + EPS)), math.ceil(low / step - EPS)
        steps = range(first, last - 1, -1)
    else:
        first, last = max(math.floor(k + EPS) + 1, math.ceil(low / step - EPS)), math.floor(high / step + EPS)
        steps = range(first, last + 1)
    return [on_grid(feature, j * step) for j in steps]


def _both_ways(feature: FeatureSpec, current: float, low: float, high: float) -> tuple[Any, ...]:
    """A bounded grid each way for a feature the model does not constrain, nearest first."""
    ways = [_thinned(_grid(feature, current, sign, low, high)) for sign in (-1, 1)]
    return tuple(sorted(ways[0] + ways[1], key=lambda v: abs(float(v) - float(current))))


def _thinned(values: list[Any]) -> list[Any]:
    if len(values) <= GRID_POINTS:
        return values
    return [values[i] for i in np.unique(np.linspace(0, len(values) - 1, GRID_POINTS).round().astype(int))]


def on_grid(feature: FeatureSpec, value: float) -> Any:
    """A grid value in the feature's own type: a whole number, or a float at the spec's decimals."""
    if feature.type == "int":
        return int(round(value))
    return round(float(value), feature.decimals)
