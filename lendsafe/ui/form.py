"""The application form: one widget per field of the dataset's spec, checked by the library.

Typed fields are text cells read exactly like a CSV row (``row_to_application``), so whatever the
analyst types reaches ``parse_application`` and its per-field message is shown under the field.
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from lendsafe.application import parse_application, row_to_application
from lendsafe.datasets import DatasetSpec, FeatureSpec, load_spec
from lendsafe.errors import InvalidApplicationError
from lendsafe.ui import tables

PROBLEMS_KEY = "ls_form_problems"
SAVED_KEY = "ls_form_saved"          # last submitted cells per dataset (widget state ends with the page)


def widget_key(dataset: str, name: str) -> str:
    return f"ls_form:{dataset}:{name}"


def field_names(spec: DatasetSpec) -> list[str]:
    return [f.name for f in spec.input_fields] + [e.name for e in tables.EXTRA_FIELDS]


def fill(dataset: str, application: dict[str, Any]) -> None:
    """Put an application's values into the form (call from a callback or before the form draws)."""
    values = tables.form_values(load_spec(dataset), application)
    for name, text in values.items():
        st.session_state[widget_key(dataset, name)] = text
    st.session_state.setdefault(SAVED_KEY, {})[dataset] = values
    st.session_state.pop(PROBLEMS_KEY, None)


def _ensure_defaults(dataset: str, spec: DatasetSpec) -> None:
    """Cells of the last submission (kept across pages), else the dataset's example denial."""
    if widget_key(dataset, spec.input_fields[0].name) in st.session_state:
        return
    saved = st.session_state.get(SAVED_KEY, {}).get(dataset)
    if saved:
        for name, text in saved.items():
            st.session_state[widget_key(dataset, name)] = text
    else:
        fill(dataset, tables.example_application(dataset))


def _text_widget(dataset: str, feature: FeatureSpec) -> None:
    st.text_input(feature.label, key=widget_key(dataset, feature.name), help=f"{feature.name}: {feature.help}",
                  placeholder=tables.expected_text(feature))


def _choice_widget(dataset: str, feature: FeatureSpec) -> None:
    options = tables.choices(feature)
    key = widget_key(dataset, feature.name)
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    st.selectbox(feature.label, options, key=key, help=f"{feature.name}: {feature.help}",
                 format_func=lambda v: v or "not stated")


WIDGETS: dict[str, Callable[[str, FeatureSpec], None]] = {
    "float": _text_widget, "int": _text_widget, "bool": _choice_widget, "category": _choice_widget}


def _extra_widget(dataset: str, extra: tables.ExtraField) -> None:
    draw = st.text_area if extra.multiline else st.text_input
    draw(extra.label, key=widget_key(dataset, extra.name), help=extra.help)


def _problems_under(name: str, by_field: dict[str, list[str]]) -> None:
    for problem in by_field.get(name, ()):
        st.error(tables.md_escape(problem))


def cells(dataset: str) -> dict[str, str]:
    """The text of every form cell."""
    return {name: str(st.session_state.get(widget_key(dataset, name), "") or "")
            for name in field_names(load_spec(dataset))}


def read(dataset: str) -> dict[str, Any]:
    """The validated application in the form, or InvalidApplicationError with per-field problems."""
    spec = load_spec(dataset)
    return parse_application(row_to_application(cells(dataset), spec), spec)


def application_form(dataset: str, on_valid: Callable[[dict[str, Any]], None]) -> None:
    """Draw the form; on submit, validate and either call ``on_valid`` or show each field's problem."""
    spec = load_spec(dataset)
    _ensure_defaults(dataset, spec)
    by_field, general = st.session_state.get(PROBLEMS_KEY) or ({}, [])
    with st.form(f"ls_application_form:{dataset}"):
        for problem in general:
            st.error(tables.md_escape(problem))
        columns = st.columns(3)
        for index, feature in enumerate(spec.input_fields):
            with columns[index % 3]:
                WIDGETS[feature.type](dataset, feature)
                _problems_under(feature.name, by_field)
        with st.expander("Applicant and loan (printed on the notice, never scored)"):
            for extra in tables.EXTRA_FIELDS:
                _extra_widget(dataset, extra)
                _problems_under(extra.name, by_field)
        st.form_submit_button("Decide", type="primary", on_click=_submit, args=(dataset, on_valid))


def _submit(dataset: str, on_valid: Callable[[dict[str, Any]], None]) -> None:
    st.session_state.setdefault(SAVED_KEY, {})[dataset] = cells(dataset)
    try:
        application = read(dataset)
    except InvalidApplicationError as exc:
        st.session_state[PROBLEMS_KEY] = tables.problems_by_field(exc.problems, field_names(load_spec(dataset)))
        return
    st.session_state.pop(PROBLEMS_KEY, None)
    on_valid(application)
