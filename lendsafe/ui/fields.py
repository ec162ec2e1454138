"""The application form, computed without Streamlit: the fields an analyst fills in (model inputs and the
extra fields printed on a notice), their labels, choices and values, problems by field, the example
application and the sample batch CSV.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Iterable

from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.specs import DatasetSpec, FeatureSpec

EXAMPLES_DIR = PROJECT_ROOT / "data" / "examples"


@dataclass(frozen=True)
class ExtraField:
    """A form field outside the model inputs: printed on the notice, never scored."""

    name: str            # column name as read by ``lendsafe.decide.application.row_to_application``
    label: str
    help: str
    multiline: bool = False


EXTRA_FIELDS = (
    ExtraField("applicant_name", "Applicant name", "printed on the notice"),
    ExtraField("applicant_address", "Applicant address", "one line per address line", multiline=True),
    ExtraField("application_id", "Application id", "your reference for this application"),
    ExtraField("application_date", "Application date", "YYYY-MM-DD"),
    ExtraField("loan_amount", "Loan amount", "amount of credit requested"),
    ExtraField("product", "Product", "e.g. 30-year fixed mortgage"),
)


def choices(feature: FeatureSpec) -> list[str]:
    """Options of a yes/no, category or rated (levels) field; an empty choice when the field is optional."""
    if feature.type == "bool":
        options = ["yes", "no"]
    elif feature.categories:
        options = list(feature.categories)
    else:
        options = [str(value) for value, _ in feature.levels]
    return ([""] if feature.optional else []) + options


def choice_label(feature: FeatureSpec, option: str) -> str:
    """What an option means, from the spec: '5 - delinquent payments sixty days past due', 'renting'."""
    if option == "":
        return "not given (left blank)"
    levels = {("yes" if k else "no") if isinstance(k, bool) else str(k): v for k, v in feature.levels}
    meaning = levels.get(option)
    if meaning is None:
        return option
    if feature.type == "bool":
        return f"{option} - {meaning}"
    return f"{option} - {meaning}" if feature.type in ("int", "float") else meaning


def is_choice(feature: FeatureSpec) -> bool:
    """Fields drawn as a select box: yes/no, categories and whole-number ratings with a meaning per level."""
    return feature.type in ("bool", "category") or (feature.type == "int" and bool(feature.levels))


def field_label(feature: FeatureSpec) -> str:
    """The label with its unit from the spec: 'Loan amount ($)', 'Employment (years)'."""
    unit = feature.unit
    return f"{feature.label} ({unit})" if unit and unit.lower() not in feature.label.lower() else feature.label


def expected_text(feature: FeatureSpec) -> str:
    """The placeholder of a typed field, e.g. 'a number between 0 and 3'."""
    word = {"float": "a number", "int": "a whole number"}.get(feature.type, "")
    if feature.min is not None and feature.max is not None:
        word += f" between {feature.min:g} and {feature.max:g}"
    return word + (" (optional)" if feature.optional else "")


def cell_text(feature: FeatureSpec | None, value: Any) -> str:
    """An application value as the text a form cell holds (the inverse of CSV reading)."""
    if value is None:
        return ""
    if isinstance(value, bool) or (feature is not None and feature.type == "bool"):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def form_values(spec: DatasetSpec, application: dict[str, Any]) -> dict[str, str]:
    """Every form cell (model inputs and extra fields) filled from an application dict."""
    values = {f.name: cell_text(f, application.get(f.name)) for f in spec.input_fields}
    applicant = application.get("applicant") or {}
    for extra in EXTRA_FIELDS:
        if extra.name.startswith("applicant_"):
            values[extra.name] = str(applicant.get(extra.name.removeprefix("applicant_"), "") or "")
        else:
            values[extra.name] = cell_text(None, application.get(extra.name))
    return values


def problems_by_field(problems: Iterable[str], field_names: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The library's per-field messages, keyed by the form field they name (``applicant.name`` ->
    ``applicant_name``); messages naming no form field are returned apart."""
    known = set(field_names)
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        name = problem.split(" ", 1)[0].replace(".", "_")
        if name in known:
            by_field.setdefault(name, []).append(problem)
        else:
            general.append(problem)
    return by_field, general


def example_application(dataset: str) -> dict[str, Any]:
    """The dataset's example denial from ``data/examples`` (first example of the dataset otherwise)."""
    candidates = sorted(EXAMPLES_DIR.glob(f"{dataset}_*.json"), key=lambda p: ("denial" not in p.stem, p.name))
    if not candidates:
        return {}
    return json.loads(candidates[0].read_text(encoding="utf-8"))


def sample_csv(spec: DatasetSpec) -> str:
    """A batch CSV with the dataset's columns and its example applications, to start from."""
    columns = [f.name for f in spec.input_fields] + [e.name for e in EXTRA_FIELDS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for path in sorted(EXAMPLES_DIR.glob(f"{spec.name}_*.json")):
        writer.writerow(form_values(spec, json.loads(path.read_text(encoding="utf-8"))))
    return buffer.getvalue()
