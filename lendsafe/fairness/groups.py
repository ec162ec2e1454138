"""Protected groups: which attribute each dataset records, which group is the control, and the rows analysed.

The attributes come from the dataset spec's ``excluded`` columns of kind ``protected`` (never model
inputs); this module is the only reader of those columns besides ``RiskModel``'s own adverse-impact
summary. The control group of each attribute is declared in ``CONTROL_GROUPS``; an attribute without
a declared control uses its largest group.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from lendsafe.decide.specs import DatasetSpec, ExcludedColumn
from lendsafe.errors import ConfigurationError

MISSING_GROUP = "missing"
SMALL_GROUP = 30          # default: groups with fewer rows are flagged (ratio unstable, interval wide)

# (dataset, column) -> (prohibited basis, control group, what the protected groups are)
CONTROL_GROUPS = {
    ("hmda", "afam"): ("race", "no", "African American applicants (afam = yes) vs others"),
    ("hmda", "single"): ("marital status", "no", "single applicants (single = yes) vs not single"),
    ("credit", "Age"): ("age", "< 62", "applicants aged 62 or older (12 CFR 1002.2(o)) vs younger"),
    ("credit", "Marital"): ("marital status", "married", "each other marital status vs married"),
}

# prohibited bases of ECOA / Reg B 1002.2(z) and whether each built-in dataset records them
PROHIBITED_BASES = ("race", "color", "religion", "national origin", "sex", "marital status", "age",
                    "public-assistance income", "good-faith exercise of consumer credit rights")


@dataclass(frozen=True)
class Attribute:
    """One protected attribute of the rows analysed: group label per row, its control and protected groups."""

    column: str
    basis: str
    description: str
    control: str
    labels: np.ndarray            # group label of each analysed row ('missing' when not recorded)

    @property
    def groups(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    @property
    def protected(self) -> list[str]:
        """Every recorded group other than the control (missing values are never compared)."""
        return [g for g in self.groups if g not in (self.control, MISSING_GROUP)]

    def mask(self, group: str) -> np.ndarray:
        return self.labels == group

    def subset(self, rows: np.ndarray) -> "Attribute":
        """The same attribute on some rows (positions into ``labels``)."""
        return replace(self, labels=self.labels[rows])

    def describe(self) -> dict[str, Any]:
        return {"column": self.column, "basis": self.basis, "description": self.description,
                "control": self.control, "protected": self.protected,
                "missing": int(np.sum(self.labels == MISSING_GROUP))}


def _control(spec: DatasetSpec, column: ExcludedColumn, labels: pd.Series) -> tuple[str, str, str]:
    declared = CONTROL_GROUPS.get((spec.name, column.column))
    if declared:
        return declared
    recorded = labels[labels != MISSING_GROUP]
    largest = recorded.value_counts().sort_index().idxmax() if len(recorded) else MISSING_GROUP
    return column.why.split(" is ")[0], str(largest), f"each group vs the largest ({largest})"


def attribute(spec: DatasetSpec, raw: pd.DataFrame, column: ExcludedColumn) -> Attribute:
    """The attribute's group labels on ``raw`` (the analysed rows)."""
    if column.column not in raw.columns:
        raise ConfigurationError(f"attribute {column.column}: the {spec.name} data as shipped has no such column; "
                                 f"it has: {', '.join(map(str, raw.columns))}")
    labels = column.groups(raw[column.column]).astype(str)
    basis, control, description = _control(spec, column, labels)
    return Attribute(column.column, basis, description, control, labels.to_numpy(dtype=object))


def select_attributes(spec: DatasetSpec, names: tuple[str, ...] = ()) -> tuple[ExcludedColumn, ...]:
    """The protected columns to analyse: all of the spec's, or those named (unknown names refused)."""
    known = {c.column: c for c in spec.protected}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigurationError(f"attribute must be one of the {spec.name} protected attributes "
                                 f"({', '.join(known) or 'none'}); got {', '.join(map(repr, unknown))}")
    if not known:
        raise ConfigurationError(f"dataset {spec.name} declares no protected attribute; nothing to analyse")
    return tuple(known[n] for n in names) if names else tuple(known.values())


def check_groups(attr: Attribute) -> None:
    """Refuse an attribute whose control group or every protected group is empty in the analysed rows."""
    if not attr.mask(attr.control).any():
        raise ConfigurationError(f"attribute {attr.column}: control group {attr.control!r} has no rows in the "
                                 f"analysed split; groups present: {', '.join(attr.groups)}")
    if not attr.protected:
        raise ConfigurationError(f"attribute {attr.column}: no protected group has rows in the analysed split "
                                 f"(only {', '.join(attr.groups)}); expected at least one group besides "
                                 f"{attr.control!r}")


def not_recorded(spec: DatasetSpec) -> list[str]:
    """Prohibited bases the dataset as shipped does not record (they cannot be analysed here)."""
    recorded = {CONTROL_GROUPS.get((spec.name, c.column), (c.why.split(" is ")[0],))[0] for c in spec.protected}
    return [basis for basis in PROHIBITED_BASES if basis not in recorded]
