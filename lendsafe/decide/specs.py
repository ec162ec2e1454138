"""Declarative dataset specs (``data/specs/*.toml``): columns, types, monotone directions, reason codes.

A spec names every application field, which fields are model inputs, how categorical and derived
features become model columns, and the columns that must never be features (protected attributes,
factors that are not the applicant's own). Protected attributes stay in the frame for fairness tests.
Loading the data a spec describes is ``lendsafe.decide.datasets``.
"""
from __future__ import annotations

import tomllib
from decimal import ROUND_HALF_UP, Decimal
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lendsafe.decide.catalog import is_missing, load_catalog
from lendsafe.config import SPECS_DIR, builtin_dataset_names
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError

FEATURE_TYPES = ("float", "int", "bool", "category")
TRUE_WORDS = {"yes", "true", "1", "y", "t"}
FALSE_WORDS = {"no", "false", "0", "n", "f"}


@dataclass(frozen=True)
class FeatureSpec:
    """One application field; model inputs carry a monotone direction and a reason code."""

    name: str
    type: str
    label: str
    help: str = ""
    column: str | None = None          # column in the source data
    min: float | None = None
    max: float | None = None
    monotone: int = 0                  # +1 raises risk as it grows, -1 lowers it, 0 free
    reason: str | None = None
    decimals: int = 2
    categories: tuple[str, ...] = ()
    optional: bool = False
    model_input: bool = True
    derived: tuple[str, ...] = ()      # (numerator, denominator) fields of a ratio feature
    levels: tuple[tuple[Any, str], ...] = ()   # meaning of each value of a rating, yes/no or category
    markers: tuple[tuple[Any, tuple[str, ...]], ...] = ()   # phrases that can describe only that value
    unit: str = ""                     # "$" (written before the figure) or a word after it ("months")
    actionable: bool = False           # recourse may change it (a loan amount); a past record cannot change
    bounds: tuple[float, float] | None = None   # recourse keeps an actionable number within [lo, hi]
    step: float | None = None          # recourse moves in this step (spec units); default: 1 or 10**-decimals
    at_least: str | None = None        # recourse keeps it at or above this field (total debt includes housing)

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ConfigurationError(f"feature {self.name}: type must be one of {FEATURE_TYPES}; got {self.type!r}")
        if self.monotone not in (-1, 0, 1):
            raise ConfigurationError(f"feature {self.name}: monotone must be -1, 0 or 1; got {self.monotone}")
        if self.model_input and not self.reason:
            raise ConfigurationError(f"feature {self.name}: a model input needs a reason code")
        if self.bounds is not None:
            object.__setattr__(self, "bounds", tuple(self.bounds))
        problems = _recourse_problems(self)
        if problems:
            raise ConfigurationError(f"feature {self.name}: {problems[0]}")

    @property
    def recourse_step(self) -> float:
        """The smallest change recourse proposes: the spec's step, else 1 (int) or 10**-decimals (float)."""
        if self.step is not None:
            return self.step
        return 1 if self.type == "int" else 10.0 ** -self.decimals

    @property
    def is_input_field(self) -> bool:
        """True when the applicant supplies it (derived features are computed)."""
        return not self.derived

    @property
    def is_coded(self) -> bool:
        """True when the value stands for a meaning (a rating, yes/no or category with levels)."""
        return bool(self.levels)

    def level_text(self, value: Any) -> str | None:
        """What a coded value means, e.g. rating 5 -> 'delinquent payments sixty days past due'."""
        return dict(self.levels).get(value) if self.levels else None

    def level_markers(self) -> dict[Any, tuple[str, ...]]:
        """Value -> phrases that describe only that value (its level text included)."""
        own = dict(self.markers)
        return {value: (text, *own.get(value, ())) for value, text in self.levels}

    def rounded(self, value: Any) -> str:
        """The number alone, rounded half-up to the spec's decimals (0.995 -> '1.00'), thousands separated."""
        if self.type != "float":
            return str(value)
        exact = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_UP)
        return f"{exact:,.{self.decimals}f}"

    def display(self, value: Any) -> str:
        """The value as written in applicant-facing text: rounded per the spec, with its unit."""
        if is_missing(value):
            return "not provided"
        if self.type == "bool":
            return "yes" if value else "no"
        number = self.rounded(value)
        if self.type == "category" or not self.unit:
            return number
        if self.unit == "$":
            return f"${number}"
        unit = self.unit[:-1] if self.unit.endswith("s") and float(value) == 1 else self.unit
        return f"{number} {unit}"


RECOURSE_NUMBER_KEYS = ("bounds", "step", "at_least")   # recourse keys that only an actionable number takes


def _recourse_problems(feature: FeatureSpec) -> list[str]:
    """What is wrong with a feature's recourse keys (actionable, bounds, step, at_least), field by field."""
    if not isinstance(feature.actionable, bool):
        return [f"actionable must be true or false; got {feature.actionable!r}"]
    extra = [f"{k} applies only to " for k in RECOURSE_NUMBER_KEYS if getattr(feature, k) is not None][:1]
    if not feature.actionable:
        return [f"{e}an actionable feature; set actionable = true or remove it" for e in extra]
    if feature.derived:
        return [f"actionable must be false for a derived feature; it changes only through {', '.join(feature.derived)}"]
    if feature.type in ("int", "float"):
        return _bounds_problems(feature) or _step_problems(feature)
    return [f"{e}a number; {feature.type} features move between their values" for e in extra]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _bounds_problems(feature: FeatureSpec) -> list[str]:
    bounds = feature.bounds
    if bounds is None or len(bounds) != 2 or not all(map(_is_number, bounds)) or not bounds[0] < bounds[1]:
        return [f"bounds must be [lo, hi], two numbers with lo < hi, for an actionable number; got {bounds!r}"]
    low = -np.inf if feature.min is None else feature.min
    high = np.inf if feature.max is None else feature.max
    if bounds[0] < low or bounds[1] > high:
        return [f"bounds must lie within the feature's min and max ({feature.min}, {feature.max}); got {list(bounds)}"]
    return []


def _step_problems(feature: FeatureSpec) -> list[str]:
    step = feature.step
    if step is None:
        return []
    if not _is_number(step) or step <= 0:
        return [f"step must be a positive number; got {step!r}"]
    unit = 1 if feature.type == "int" else 10.0 ** -feature.decimals
    if abs(step / unit - round(step / unit)) > 1e-9:
        kind = "whole numbers" if unit == 1 else "decimals"
        return [f"step must be a whole multiple of {unit:g} (the feature's {kind}); got {step!r}"]
    return []


@dataclass(frozen=True)
class ExcludedColumn:
    column: str
    kind: str          # protected | not_applicant | education | income_type
    why: str
    bins: tuple[float, ...] = ()   # a numeric protected attribute is grouped at these cut points for fairness figures

    def groups(self, values: pd.Series) -> pd.Series:
        """Group label of each row: the value itself, or its bin (e.g. '< 62', '>= 62'); 'missing' for none."""
        if not self.bins:
            return values.astype(object).where(values.notna(), "missing").astype(str)
        edges = sorted(self.bins)
        labels = [f"< {edges[0]:g}"] + [f"{lo:g} to < {hi:g}" for lo, hi in zip(edges, edges[1:])] + [f">= {edges[-1]:g}"]
        index = np.searchsorted(edges, values.to_numpy(dtype=float), side="right")
        return pd.Series(np.array(labels, dtype=object)[index], index=values.index).where(values.notna(), "missing")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything LendSafe needs to know about a dataset, read from a TOML file."""

    name: str
    title: str
    source: str
    target: str
    target_positive: str
    outcome: str
    threshold: float
    threshold_version: str
    features: tuple[FeatureSpec, ...]
    excluded: tuple[ExcludedColumn, ...] = ()
    package: str | None = None
    item: str | None = None
    csv: str | None = None
    path: Path | None = field(default=None, compare=False)

    def __hash__(self) -> int:
        """Hashed once: specs key the caches of the scoring hot path (a deep hash per call was 15% of a batch)."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def input_fields(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if f.is_input_field)

    @property
    def model_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if f.model_input)

    @property
    def protected_columns(self) -> tuple[str, ...]:
        return tuple(e.column for e in self.excluded if e.kind == "protected")

    @property
    def protected(self) -> tuple[ExcludedColumn, ...]:
        return tuple(e for e in self.excluded if e.kind == "protected")

    def feature(self, name: str) -> FeatureSpec:
        return {f.name: f for f in self.features}[name]

    def model_columns(self) -> list[str]:
        """Model matrix column names: one per feature, one per category level."""
        return [col for f in self.model_features for col in _columns_of(f)]

    def column_groups(self) -> dict[str, str]:
        """Model column -> feature it belongs to (one-hot levels share their feature)."""
        return {col: f.name for f in self.model_features for col in _columns_of(f)}

    def monotone_constraints(self) -> tuple[int, ...]:
        return tuple(f.monotone if f.type != "category" else 0
                     for f in self.model_features for _ in _columns_of(f))


def _columns_of(feature: FeatureSpec) -> list[str]:
    if feature.type == "category":
        return [f"{feature.name}={level}" for level in feature.categories]
    return [feature.name]


LEVEL_KEYS = {"int": int, "bool": lambda k: to_bool(k), "category": str, "float": float}


def _feature_from_toml(raw: dict[str, Any]) -> FeatureSpec:
    raw = dict(raw)
    raw["categories"] = tuple(raw.get("categories", ()))
    raw["derived"] = tuple(raw.get("derived", ()))
    key = LEVEL_KEYS.get(raw.get("type"), str)
    raw["levels"] = tuple(sorted(((key(k), v) for k, v in raw.get("levels", {}).items()), key=lambda kv: kv[0]))
    raw["markers"] = tuple((key(k), tuple(v)) for k, v in raw.get("markers", {}).items())
    return _build(FeatureSpec, raw, f"feature {raw.get('name', '?')}")


def _build(cls: type, raw: dict[str, Any], what: str) -> Any:
    """A spec dataclass from TOML keys; unknown or missing keys are named in the message."""
    known = {f.name for f in fields(cls) if f.name != "path"}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    unknown, missing = sorted(set(raw) - known), sorted(required - set(raw))
    if unknown or missing:
        raise ConfigurationError(f"{what}: unknown keys {unknown}, missing keys {missing}; "
                                 f"expected keys: {', '.join(sorted(known))}")
    return cls(**raw)


def load_spec(name_or_path: str | Path = "hmda") -> DatasetSpec:
    """Load a built-in spec by name (``hmda``, ``credit``) or a user's spec file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SPECS_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(builtin_dataset_names())
        raise ArtifactNotFoundError(f"dataset spec {str(name_or_path)!r} not found; expected one of: {known} "
                                    f"or a .toml path")
    return _load_spec_file(path.resolve())


@lru_cache(maxsize=16)
def _load_spec_file(path: Path) -> DatasetSpec:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"dataset spec {path} is not valid TOML: {exc}") from None
    raw["features"] = tuple(_feature_from_toml(f) for f in raw.get("features", ()))
    raw["excluded"] = tuple(_build(ExcludedColumn, {**e, "bins": tuple(e.get("bins", ()))},
                                   f"excluded column {e.get('column', '?')}") for e in raw.get("excluded", ()))
    spec = _build(DatasetSpec, raw, f"dataset spec {path.name}")
    spec = replace(spec, path=path)
    _check_spec(spec)
    return spec


def _check_spec(spec: DatasetSpec) -> None:
    _check_at_least(spec)
    by_name = {f.name: f for f in spec.features}
    excluded = {e.column for e in spec.excluded} | {spec.target}
    catalog = load_catalog()
    for feature in spec.model_features:
        if feature.derived and not set(feature.derived) <= set(by_name):
            raise ConfigurationError(f"spec {spec.name}: {feature.name} derives from unknown fields {feature.derived}")
        sources = [by_name[n].column for n in feature.derived] if feature.derived else [feature.column]
        if excluded & set(sources):
            raise ConfigurationError(f"spec {spec.name}: feature {feature.name} uses excluded column "
                                     f"{sorted(excluded & set(sources))[0]}")
        if feature.reason not in catalog:
            raise ConfigurationError(f"spec {spec.name}: feature {feature.name} has reason code {feature.reason!r}, "
                                     f"which has no text in reasons.toml; known codes: {', '.join(sorted(catalog))}")


def _check_at_least(spec: DatasetSpec) -> None:
    """``at_least`` names another number field the applicant supplies."""
    numbers = {f.name for f in spec.input_fields if f.type in ("int", "float")}
    for feature in spec.features:
        if feature.at_least is not None and (feature.at_least not in numbers or feature.at_least == feature.name):
            raise ConfigurationError(f"spec {spec.name}: feature {feature.name}: at_least must name another number "
                                     f"field of the spec ({', '.join(sorted(numbers - {feature.name}))}); "
                                     f"got {feature.at_least!r}")


def to_bool(value: Any) -> bool | None:
    """Parse yes/no, true/false, 1/0 (as found in published data and CSV uploads)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"expected yes/no or true/false; got {value!r}")
