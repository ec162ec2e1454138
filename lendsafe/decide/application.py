"""The single input boundary: an application is validated here once, against its dataset spec.

Messages name the field, what was expected and what was got, e.g.
``debt_to_income must be between 0 and 3; got -1``.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from lendsafe.decide.specs import DatasetSpec, FeatureSpec, load_spec, to_bool
from lendsafe.errors import InvalidApplicationError
from lendsafe.redaction import printable

PYTHON_TYPES = {"float": float, "int": int, "bool": bool, "category": str}
EXPECTED_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "category": "one of"}


class Applicant(BaseModel):
    """Who the notice is addressed to; never a model input."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(default="", max_length=500)
    address: str = Field(default="", max_length=2000)


LOAN_AMOUNT_MAX = 1_000_000_000
OPTIONAL_FIELDS: dict[str, Any] = {
    "application_id": (str | None, Field(default=None, max_length=100)),
    "applicant": (Applicant | None, None),
    "application_date": (dt.date | None, Field(default=None, strict=False)),
    "loan_amount": (Annotated[float, Field(ge=0, le=LOAN_AMOUNT_MAX, allow_inf_nan=False)] | None, None),
    "product": (str | None, Field(default=None, max_length=200)),
}
# What each optional field expects, and the bounds of the numeric one, for messages.
OPTIONAL_EXPECTED = {
    "application_id": "text of at most 100 characters",
    "applicant": "an object with name and address",
    "application_date": "a date (YYYY-MM-DD)",
    "loan_amount": f"a number between 0 and {LOAN_AMOUNT_MAX}",
    "product": "text of at most 200 characters",
}
OPTIONAL_BOUNDS = {"loan_amount": {"lo": "0", "hi": str(LOAN_AMOUNT_MAX)}}


def _field_definition(feature: FeatureSpec) -> tuple[Any, Any]:
    constraints: dict[str, Any] = {"description": feature.help, "title": feature.label}
    if feature.min is not None:
        constraints["ge"] = feature.min
    if feature.max is not None:
        constraints["le"] = feature.max
    if feature.type == "float":
        constraints["allow_inf_nan"] = False
    python_type: Any = PYTHON_TYPES[feature.type]
    if feature.type == "category":
        from typing import Literal

        python_type = Literal[feature.categories]  # type: ignore[valid-type]
        constraints = {"description": feature.help, "title": feature.label}
    annotated = Annotated[python_type, Field(**constraints)]
    if feature.optional:
        return (annotated | None, None)
    return (annotated, ...)


@lru_cache(maxsize=16)
def application_model(spec: DatasetSpec) -> type[BaseModel]:
    """The pydantic model of an application for this dataset, built from the spec."""
    fields = {f.name: _field_definition(f) for f in spec.input_fields}
    fields.update(OPTIONAL_FIELDS)
    return create_model(
        f"{spec.name.title()}Application",
        __config__=ConfigDict(extra="forbid", strict=True),
        **fields,
    )


def parse_application(data: Any, dataset: str | DatasetSpec = "hmda") -> dict[str, Any]:
    """Validate an application; returns a plain dict or raises InvalidApplicationError."""
    spec = dataset if isinstance(dataset, DatasetSpec) else load_spec(dataset)
    if hasattr(data, "model_dump"):
        data = data.model_dump()
    if not isinstance(data, dict):
        raise InvalidApplicationError([f"application must be a JSON object; got {type(data).__name__}"])
    try:
        model = application_model(spec).model_validate(data)
    except ValidationError as exc:
        raise InvalidApplicationError([_message(spec, e) for e in exc.errors()]) from None
    return model.model_dump(mode="json")


def _message(spec: DatasetSpec, error: dict[str, Any]) -> str:
    name = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "constrained-")))
    name = name.split(".")[0] if error["loc"] and error["loc"][0] in _feature_names(spec) else name
    template = MESSAGES.get(error["type"], "{name} must be {expected}; got {got} ({msg})")
    feature = _feature_names(spec).get(name)
    expected = _expected(feature) if feature else OPTIONAL_EXPECTED.get(name, "a valid value")
    bounds = _bounds(feature) if feature else OPTIONAL_BOUNDS.get(name, _bounds(None))
    return template.format(name=printable(name), got=_shown(error.get("input")), msg=printable(error.get("msg", "")),
                           expected=expected, known=", ".join(_known_fields(spec, error["loc"])), **bounds)


MESSAGES = {
    "missing": "{name} is required ({expected}); it is missing",
    "extra_forbidden": "{name} is not a field of this application; expected only: {known}",
    "greater_than_equal": "{name} must be between {lo} and {hi}; got {got}",
    "less_than_equal": "{name} must be between {lo} and {hi}; got {got}",
    "float_type": "{name} must be {expected}; got {got}",
    "int_type": "{name} must be {expected}; got {got}",
    "int_from_float": "{name} must be {expected}; got {got}",
    "bool_type": "{name} must be {expected}; got {got}",
    "string_type": "{name} must be text; got {got}",
    "literal_error": "{name} must be {expected}; got {got}",
    "date_type": "{name} must be a date (YYYY-MM-DD); got {got}",
    "date_from_datetime_parsing": "{name} must be a date (YYYY-MM-DD); got {got}",
    "date_from_datetime_inexact": "{name} must be a date (YYYY-MM-DD); got {got}",
    "date_parsing": "{name} must be a date (YYYY-MM-DD); got {got}",
    "string_too_long": "{name} is too long: {msg}; got {got}",
    "model_type": "{name} must be an object with name and address; got {got}",
    "model_attributes_type": "{name} must be an object with name and address; got {got}",
    "finite_number": "{name} must be a finite number; got {got}",
}


@lru_cache(maxsize=16)
def _feature_names(spec: DatasetSpec) -> dict[str, FeatureSpec]:
    return {f.name: f for f in spec.input_fields}


def _all_fields(spec: DatasetSpec) -> list[str]:
    return [f.name for f in spec.input_fields] + list(OPTIONAL_FIELDS)


def _known_fields(spec: DatasetSpec, loc: tuple) -> list[str]:
    """The fields allowed where an error occurred (the applicant object has its own)."""
    if len(loc) > 1 and loc[0] == "applicant":
        return list(Applicant.model_fields)
    return _all_fields(spec)


def _expected(feature: FeatureSpec | None) -> str:
    if feature is None:
        return "a valid value"
    if feature.type == "category":
        return "one of " + ", ".join(feature.categories)
    word = EXPECTED_WORDS[feature.type]
    if feature.min is not None and feature.type != "bool":
        return f"{word} between {_num(feature.min)} and {_num(feature.max)}"
    return word


def _bounds(feature: FeatureSpec | None) -> dict[str, str]:
    if feature is None or feature.min is None:
        return {"lo": "the allowed minimum", "hi": "the allowed maximum"}
    return {"lo": _num(feature.min), "hi": _num(feature.max)}


def _num(value: float | None) -> str:
    """A bound as written in a message: 3, 0.5, 1000000 (never 1e+06)."""
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _shown(value: Any) -> str:
    if isinstance(value, dict) and not value:
        return "nothing"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    text = printable(text if len(text) <= 60 else text[:57] + "...")
    return text


# ---------------------------------------------------------------- CSV and JSON files

CSV_PARSERS = {"float": float, "int": int, "bool": to_bool, "category": str}


def _coerce_cell(feature: FeatureSpec, text: str) -> Any:
    """A CSV cell -> the typed value the schema checks; unparseable text is kept for the message."""
    if text.strip() == "":
        return None
    try:
        return CSV_PARSERS[feature.type](text.strip())
    except ValueError:
        return text


def row_to_application(row: dict[str, str], spec: DatasetSpec) -> dict[str, Any]:
    """One CSV row (all text) -> an application dict ready for ``parse_application``."""
    features = _feature_names(spec)
    data: dict[str, Any] = {}
    applicant: dict[str, str] = {}
    for key, text in row.items():
        key = (key or "").strip()
        text = "" if text is None else str(text)
        if key in features:
            value = _coerce_cell(features[key], text)
            if value is not None or features[key].optional:
                data[key] = value
        elif key in ("applicant_name", "applicant_address"):
            applicant[key.removeprefix("applicant_")] = text
        elif key == "loan_amount" and text.strip():
            data[key] = _float_or_text(text)
        elif key and text.strip():
            data[key] = text.strip()
    if applicant:
        data["applicant"] = applicant
    return data


def _float_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def read_applications_csv(path: str | Path, dataset: str | DatasetSpec = "hmda"
                          ) -> list[tuple[int, dict[str, Any] | None, InvalidApplicationError | None]]:
    """Each data row as (row number, validated application or None, error or None)."""
    spec = dataset if isinstance(dataset, DatasetSpec) else load_spec(dataset)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    results = []
    for number, row in enumerate(rows, start=2):
        try:
            results.append((number, parse_application(row_to_application(row, spec), spec), None))
        except InvalidApplicationError as exc:
            results.append((number, None, exc))
    return results


# Limits of one application file: far above any real application, far below what hurts the process.
MAX_APPLICATION_BYTES = 1_000_000
MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 30
JSON_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]')
JSON_CONSTANTS = {"NaN", "Infinity", "-Infinity"}


class _JsonRefused(ValueError):
    """A JSON document refused at the boundary; the message names the problem."""


def read_application_json(path: str | Path, dataset: str | DatasetSpec = "hmda") -> dict[str, Any]:
    """Read and validate one application from a JSON file (``-`` reads standard input): ``read_json_file``
    then ``parse_application``."""
    return parse_application(read_json_file(path), dataset)


def read_json_file(path: str | Path) -> Any:
    """The JSON value of an application file (``-``: standard input), read within the boundary's limits but
    not yet validated (a notice of incompleteness needs to see which fields are missing).

    Refused with a clear message (never a traceback): a missing path, a directory or other non-file,
    more than ``MAX_APPLICATION_BYTES``, text that is not UTF-8, invalid JSON, nesting deeper than
    ``MAX_JSON_DEPTH``, integers longer than ``MAX_INTEGER_DIGITS`` digits, NaN/Infinity and a key given
    twice (JSON that is not an object is refused by ``parse_application``).
    """
    shown = printable(path)
    raw = _read_limited(path, shown)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidApplicationError([f"application file {shown} is not UTF-8 text (expected JSON): byte "
                                       f"0x{raw[exc.start]:02x} at offset {exc.start}"]) from None
    return parse_application_text(text)


def _read_limited(path: str | Path, shown: str) -> bytes:
    """At most ``MAX_APPLICATION_BYTES`` + 1 bytes of a regular file or standard input."""
    import sys

    if str(path) == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:                         # a text stream (tests, embedding): read characters
            return _check_size(sys.stdin.read(MAX_APPLICATION_BYTES + 1).encode("utf-8", "surrogateescape"), shown)
        return _check_size(stream.read(MAX_APPLICATION_BYTES + 1), shown)
    target = Path(path)
    try:
        if not target.exists():
            raise InvalidApplicationError([f"application file not found: {shown}"])
        if target.is_dir():
            raise InvalidApplicationError([f"application file expected, got a directory: {shown}"])
        if not target.is_file():
            raise InvalidApplicationError([f"application file expected, got a device, pipe or socket: {shown}"])
        with target.open("rb") as handle:
            return _check_size(handle.read(MAX_APPLICATION_BYTES + 1), shown)
    except OSError as exc:
        raise InvalidApplicationError([f"application file {shown} cannot be read: "
                                       f"{exc.strerror or type(exc).__name__}"]) from None


def _check_size(raw: bytes, shown: str) -> bytes:
    if len(raw) > MAX_APPLICATION_BYTES:
        raise InvalidApplicationError([f"application file {shown} is larger than {MAX_APPLICATION_BYTES:,} bytes "
                                       "(one application is a few hundred bytes)"])
    return raw


def parse_application_text(text: str) -> Any:
    """JSON text -> Python value, refusing what ``json.loads`` would accept silently or crash on."""
    try:
        _check_depth(text)
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int,
                           parse_constant=_JsonConstant)
        _refuse_bad_numbers(value, "as a whole")
        if isinstance(value, _JsonObject) and value.problem:
            raise _JsonRefused(value.problem)
        return value
    except _JsonRefused as exc:
        raise InvalidApplicationError([f"application {exc}"]) from None
    except json.JSONDecodeError as exc:
        raise InvalidApplicationError([f"application is not valid JSON: {exc.msg} at line {exc.lineno} "
                                       f"column {exc.colno}"]) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidApplicationError([f"application is not valid JSON: {printable(exc)[:200]}"]) from None


def _check_depth(text: str) -> None:
    depth = 0
    for match in JSON_BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _JsonRefused(f"nests objects or arrays deeper than {MAX_JSON_DEPTH} levels (at offset "
                                   f"{match.start()})")
        elif token in "]}":
            depth -= 1


class _JsonObject(dict):
    """A JSON object as read, with the first thing the boundary refuses inside it (None when nothing): objects
    are read innermost first, so a problem is named once the field holding it, up to the top, is known."""

    problem: str | None = None


def _unique_keys(pairs: list[tuple[str, Any]]) -> _JsonObject:
    seen = _JsonObject()
    for key, value in pairs:
        shown = printable(_shown(key))
        if seen.problem is None and key in seen:
            seen.problem = f"gives {shown} more than once; expected each field once"
        if seen.problem is None and (inside := _value_problem(value)):
            seen.problem = f"field {shown} {inside}" if not isinstance(inside, _Nested) else f"field {shown} > {inside}"
        seen[key] = value
    return seen


class _Nested(str):
    """The problem of an object inside a value: named after the field path that leads to it."""


def _value_problem(value: Any) -> str | None:
    """What is refused in ``value``: a refused number in it or its arrays, or the problem of an object in it."""
    for item in [value, *_array_items(value)]:
        if isinstance(item, _JsonRefusedValue):
            return item.problem()
        if isinstance(item, _JsonObject) and item.problem:
            return _Nested(item.problem)
    return None


def _bounded_int(digits: str) -> Any:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        return _JsonOversized(digits)
    return int(digits)


class _JsonRefusedValue(str):
    """A number as read that the boundary refuses; refused with the field that holds it."""

    def problem(self) -> str:
        raise NotImplementedError


class _JsonConstant(_JsonRefusedValue):
    """NaN, Infinity or -Infinity."""

    def problem(self) -> str:
        return f"is {self}; expected a finite number ({', '.join(sorted(JSON_CONSTANTS))} are not JSON)"


class _JsonOversized(_JsonRefusedValue):
    """An integer longer than ``MAX_INTEGER_DIGITS`` digits (never converted: that alone can take seconds)."""

    def problem(self) -> str:
        return f"has an integer of {len(self.lstrip('-')):,} digits; expected at most {MAX_INTEGER_DIGITS}"


def _refuse_bad_numbers(value: Any, where: str) -> None:
    """Refuse a refused number held by ``value`` directly or inside its arrays, naming ``where``."""
    found = value if isinstance(value, _JsonRefusedValue) else next(
        (c for c in _array_items(value) if isinstance(c, _JsonRefusedValue)), None)
    if found is not None:
        raise _JsonRefused(f"{where} {found.problem()}")


def _array_items(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    return [leaf for item in value for leaf in (_array_items(item) if isinstance(item, list) else [item])]
