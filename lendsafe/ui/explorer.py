"""Decision explorer: pick a held-out application or fill the form, see the decision and its evidence,
switch the reason reference and see what changes."""
from __future__ import annotations

from typing import Any

import streamlit as st

from lendsafe.decision import REFERENCES
from lendsafe.ui import common, display, form, tables

REFERENCE_WIDGET = "ls_reference_choice"
SOURCE_WIDGET = "ls_source"
SOURCES = ("Fill the form", "Held-out application")
REFERENCE_HELP = ("Reg B comment 9(b)(2)-5: compare the applicant with the average of all applicants "
                  "(population) or with applicants at or just above the passing cutoff (cutoff).")


def start(dataset: str, application: dict[str, Any], source: str) -> None:
    """Make an application the current one; it is issued for the selected reference on this run."""
    st.session_state[common.CURRENT_KEY] = {"dataset": dataset, "application": application, "source": source,
                                            "issued": {}}


def reference_switch() -> str:
    chosen = common.current_reference()
    st.radio("Reason reference", REFERENCES, index=REFERENCES.index(chosen), key=REFERENCE_WIDGET,
             horizontal=True, help=REFERENCE_HELP)
    st.session_state[common.REFERENCE_KEY] = st.session_state[REFERENCE_WIDGET]
    return st.session_state[REFERENCE_WIDGET]


@st.cache_data(show_spinner="Scoring the held-out applications…", max_entries=8)
def _held_out(dataset: str, reference: str, settings_key: str, _scorer: Any) -> tuple[Any, dict[int, dict]]:
    rows = tables.held_out_applications(dataset, common.app_settings(dataset))
    decisions = _scorer.score_many([application for _, application in rows], reference)
    return tables.held_out_frame(rows, decisions), dict(rows)


def _drop_unless_in(key: str, options: list[Any]) -> None:
    """Forget a widget's choice that the new options no longer offer (filters changed)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def held_out_picker(dataset: str, reference: str) -> None:
    pipeline = common.pipeline(dataset)
    frame, applications = _held_out(dataset, reference, common.settings_key(pipeline.settings), pipeline.scorer)
    left, right = st.columns(2)
    decision = left.selectbox("Decision", ["", "deny", "approve"], key="ls_filter_decision",
                              format_func=lambda v: v or "any")
    codes = sorted({c for reasons in frame["reasons"] for c in reasons.split(", ") if c})
    _drop_unless_in("ls_filter_reason", [""] + codes)
    reason = right.selectbox("Reason", [""] + codes, key="ls_filter_reason", format_func=lambda v: v or "any")
    shown = tables.filter_held_out(frame, decision or None, reason or None)
    st.caption(f"{len(shown)} of {len(frame)} held-out applications (the model's test rows). Decision and "
               f"reasons are the model's under the {reference} reference; nothing is issued until you decide one.")
    st.dataframe(shown, hide_index=True, height=230, width="stretch")
    if shown.empty:
        st.info("No held-out application matches these filters.")
        return
    labels = {int(r.row): f"row {r.row} · {r.decision} · risk {r.risk:.1%} · {r.reasons or 'no reasons'}"
              for r in shown.itertuples()}
    _drop_unless_in("ls_held_out_row", list(labels))
    row = st.selectbox("Application", list(labels), format_func=labels.get, key="ls_held_out_row")
    left, right = st.columns(2)
    left.button("Decide this application", type="primary", on_click=start,
                args=(dataset, applications[row], f"held-out row {row}"))
    right.button("Copy into the form", on_click=copy_into_form, args=(dataset, applications[row]),
                 help="edit its values on the form")


def copy_into_form(dataset: str, application: dict[str, Any]) -> None:
    form.fill(dataset, application)
    st.session_state[SOURCE_WIDGET] = SOURCES[0]


def comparison(state: dict[str, Any], reference: str) -> None:
    """What changes in the reasons between the two references (once both were issued)."""
    other = next(r for r in REFERENCES if r != reference)
    st.subheader("What changes with the reference")
    if other not in state["issued"]:
        st.caption(f"Switch the reason reference to {other!r} (above) to issue this application against it "
                   "and compare the reasons.")
        return
    first, second = state["issued"][other].decision, state["issued"][reference].decision
    changes = tables.reference_changes(first, second)
    moved = changes[changes["change"] != "same rank"]
    st.write(f"The risk ({second.risk:.1%}) and the decision do not depend on the reference; the reasons do. "
             + ("Same reasons in the same order." if moved.empty else
                f"{len(moved)} reason(s) differ from {other} to {reference}."))
    st.dataframe(changes, hide_index=True, width="stretch")


def result(state: dict[str, Any], reference: str) -> None:
    issued = common.issue_current(reference)
    if issued is None:
        return
    st.divider()
    st.header(f"Result ({state['source']})")
    display.full_decision(issued.decision, issued.record_id)
    comparison(state, reference)
    if issued.decision.denied:
        check = "passed" if issued.passed else "FAILED"
        st.success(f"Adverse-action notice {issued.notice.document_id} rendered; completeness check {check}.")
        st.page_link("lendsafe/ui/notices.py", label="Preview and download the notice", icon=":material/description:")


def render() -> None:
    st.title("Decision explorer")
    dataset = common.current_dataset()
    reference = reference_switch()
    source = st.radio("Application", SOURCES, key=SOURCE_WIDGET, horizontal=True, label_visibility="collapsed")
    if source == SOURCES[1]:
        held_out_picker(dataset, reference)
    else:
        form.application_form(dataset, on_valid=lambda application: start(dataset, application, "from the form"))
    state = common.current()
    if state is None or state["dataset"] != dataset:
        st.info("Pick a held-out application or fill the form, then press Decide.")
        return
    result(state, reference)


if __name__ == "__main__":
    render()
