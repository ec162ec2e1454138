"""The application form: one widget per field of the dataset's spec, checked by the library as it is edited.

Typed fields are text cells read exactly like a CSV row (``row_to_application``), so whatever the
analyst types reaches ``parse_application``; its per-field message shows under the field as soon as
the value changes and goes as soon as the value is valid. Ratings, yes/no facts and categories are
select boxes labelled with each level's meaning from the spec; units come from the spec.
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from lendsafe.decide.application import parse_application, row_to_application
from lendsafe.decide.specs import DatasetSpec, FeatureSpec, load_spec
from lendsafe.errors import InvalidApplicationError
from lendsafe.ui import fields, tables

PROBLEMS_KEY = "ls_form_problems"    # dataset -> (by field, general), from the last check
SAVED_KEY = "ls_form_saved"          # dataset -> last cells (widget state ends with the page)


def widget_key(dataset: str, name: str) -> str:
    return f"ls_form:{dataset}:{name}"


def field_names(spec: DatasetSpec) -> list[str]:
    return [f.name for f in spec.input_fields] + [e.name for e in fields.EXTRA_FIELDS]


def fill(dataset: str, application: dict[str, Any]) -> None:
    """Put an application's values into the form (call from a callback or before the form draws)."""
    values = fields.form_values(load_spec(dataset), application)
    for name, text in values.items():
        st.session_state[widget_key(dataset, name)] = text
    st.session_state.setdefault(SAVED_KEY, {})[dataset] = values
    st.session_state.setdefault(PROBLEMS_KEY, {}).pop(dataset, None)


def _ensure_defaults(dataset: str, spec: DatasetSpec) -> None:
    """Cells of the last edit (kept across pages and datasets), else the dataset's example denial."""
    if widget_key(dataset, spec.input_fields[0].name) in st.session_state:
        return
    saved = st.session_state.get(SAVED_KEY, {}).get(dataset)
    if saved:
        for name, text in saved.items():
            st.session_state[widget_key(dataset, name)] = text
    else:
        fill(dataset, fields.example_application(dataset))


def _help(feature: FeatureSpec) -> str:
    return f"{feature.help} (field `{feature.name}`)"


def _text_widget(dataset: str, feature: FeatureSpec) -> None:
    st.text_input(fields.field_label(feature), key=widget_key(dataset, feature.name), help=_help(feature),
                  placeholder=fields.expected_text(feature), on_change=check, args=(dataset,))


def _choice_widget(dataset: str, feature: FeatureSpec) -> None:
    options = fields.choices(feature)
    key = widget_key(dataset, feature.name)
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]
    st.selectbox(fields.field_label(feature), options, key=key, help=_help(feature),
                 format_func=lambda option: fields.choice_label(feature, option), on_change=check, args=(dataset,))


def _draw(dataset: str, feature: FeatureSpec) -> None:
    (_choice_widget if fields.is_choice(feature) else _text_widget)(dataset, feature)


def _extra_widget(dataset: str, extra: fields.ExtraField) -> None:
    draw = st.text_area if extra.multiline else st.text_input
    draw(extra.label, key=widget_key(dataset, extra.name), help=extra.help, on_change=check, args=(dataset,))


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


def check(dataset: str) -> dict[str, Any] | None:
    """Validate the form now: keep its problems (none when valid) and its cells; the application or None."""
    st.session_state.setdefault(SAVED_KEY, {})[dataset] = cells(dataset)
    problems = st.session_state.setdefault(PROBLEMS_KEY, {})
    try:
        application = read(dataset)
    except InvalidApplicationError as exc:
        problems[dataset] = fields.problems_by_field(exc.problems, field_names(load_spec(dataset)))
        return None
    problems.pop(dataset, None)
    return application


def valid_application(dataset: str) -> dict[str, Any] | None:
    """The form's application when every value is valid now, else None (nothing is shown or kept)."""
    try:
        return read(dataset)
    except InvalidApplicationError:
        return None


def has_problems(dataset: str) -> bool:
    return dataset in st.session_state.get(PROBLEMS_KEY, {})


def application_form(dataset: str, on_valid: Callable[[dict[str, Any]], None]) -> None:
    """Draw the form and its Decide button; each field's problem shows under it while it lasts."""
    spec = load_spec(dataset)
    _ensure_defaults(dataset, spec)
    by_field, general = st.session_state.get(PROBLEMS_KEY, {}).get(dataset) or ({}, [])
    for problem in general:
        st.error(tables.md_escape(problem))
    typed = [f for f in spec.input_fields if not fields.is_choice(f)]
    columns = st.columns(2)
    for index, feature in enumerate(typed):             # figures two to a row
        with columns[index % 2]:
            _draw(dataset, feature)
            _problems_under(feature.name, by_field)
    for feature in [f for f in spec.input_fields if fields.is_choice(f)]:   # ratings and facts: full width
        _draw(dataset, feature)
        _problems_under(feature.name, by_field)
    with st.expander("Applicant and loan (printed on the notice, never scored)"):
        for extra in fields.EXTRA_FIELDS:
            _extra_widget(dataset, extra)
            _problems_under(extra.name, by_field)
    st.button("Decide", type="primary", on_click=_submit, args=(dataset, on_valid), key=f"ls_decide:{dataset}",
              help="a draft decision: nothing is issued or recorded until you press Issue notice")


def _submit(dataset: str, on_valid: Callable[[dict[str, Any]], None]) -> None:
    application = check(dataset)
    if application is not None:
        on_valid(application)
