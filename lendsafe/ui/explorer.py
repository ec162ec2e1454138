"""Decision explorer: try an application (held-out or typed) as a draft, see the decision and its
evidence, compare the two reason references, preview the notice, and issue it when it is right.

Drafts are what-ifs: nothing is issued or recorded until a signed-in analyst presses "Issue notice",
which records exactly the draft shown, or holds it for review when the review policy selects it
(``lendsafe.review``; the Review page then approves, edits or rejects it). A result whose inputs have
changed since is marked stale.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from lendsafe.decide.decision import REFERENCES
from lendsafe.ui import common, display, fields, form, recourse, review, tables

SOURCE_WIDGET = "ls_source"
SOURCES = ("Fill the form", "Held-out application")
HELD_OUT_ROW = "ls_held_out_row"
TAB_KEY = "ls_result_tab"


# ---------------------------------------------------------------------------- inputs

@st.cache_data(show_spinner="Scoring the held-out applications…", max_entries=8)
def _held_out(dataset: str, reference: str, settings_key: str, _scorer: Any) -> tuple[Any, dict[int, dict]]:
    rows = tables.held_out_applications(dataset, common.app_settings(dataset))
    decisions = _scorer.score_many([application for _, application in rows], reference)
    return tables.held_out_frame(rows, decisions), dict(rows)


def _drop_unless_in(key: str, options: list[Any]) -> None:
    """Forget a widget's choice that the new options no longer offer (filters changed)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


HELD_OUT_COLUMNS = {"row": st.column_config.NumberColumn("data row", help="row of the dataset (0 = its first row)",
                                                         format="%d", width="small"),
                    "risk": st.column_config.NumberColumn("risk", format="%.1f%%", width="small"),
                    "reasons": st.column_config.TextColumn("reason codes", width="large"),
                    "first_reason": None}


def held_out_columns(dataset: str) -> dict[str, Any]:
    """Column labels from the spec (with units), risk in percent, the reason codes wide."""
    from lendsafe.decide.specs import load_spec

    labels = {f.name: st.column_config.Column(fields.field_label(f), help=f.help) for f in load_spec(dataset).input_fields}
    return {**labels, **HELD_OUT_COLUMNS}


def held_out_picker(dataset: str, reference: str) -> None:
    pipeline = common.pipeline(dataset)
    frame, applications = _held_out(dataset, reference, common.settings_key(pipeline.settings), pipeline.scorer)
    statements = tables.reason_statements(dataset)
    left, right = st.columns(2)
    decision = left.selectbox("Decision", ["", "deny", "approve"], key="ls_filter_decision",
                              format_func=lambda v: v or "any")
    codes = sorted({c for reasons in frame["reasons"] for c in reasons.split(", ") if c})
    _drop_unless_in("ls_filter_reason", [""] + codes)
    reason = right.selectbox("Reason", [""] + codes, key="ls_filter_reason",
                             format_func=lambda v: statements.get(v, v) if v else "any")
    shown = tables.filter_held_out(frame, decision or None, reason or None)
    st.caption(f"{len(shown)} of {len(frame)} held-out applications (the model's test rows). Decision, risk and "
               f"reasons are the model's under the {reference} reference.")
    st.dataframe(shown, hide_index=True, height=230, width="stretch", column_config=held_out_columns(dataset))
    if shown.empty:
        st.info("No held-out application matches these filters.")
        return
    labels = {int(r.row): f"row {r.row} · {r.decision} · risk {r.risk:.1f}% · {r.reasons or 'no reasons'}"
              for r in shown.itertuples()}
    _drop_unless_in(HELD_OUT_ROW, list(labels))
    row = st.selectbox("Application", list(labels), format_func=labels.get, key=HELD_OUT_ROW)
    prefetch(dataset, applications[row], ("held-out", row))
    left, right = st.columns(2)
    left.button("Decide this application", type="primary", on_click=common.start_entry,
                args=(dataset, applications[row], f"held-out row {row}", ("held-out", row)),
                help="a draft decision: nothing is issued or recorded until you press Issue notice")
    right.button("Copy into the form", on_click=copy_into_form, args=(dataset, applications[row]),
                 help="edit its values on the form")


def prefetch(dataset: str, application: dict[str, Any], inputs: Any) -> None:
    """Start drafting what the analyst is looking at, unless it is the result already shown."""
    entry = common.current()
    if entry is None or entry["inputs"] != inputs:
        common.engine().prefetch(application, dataset, common.current_reference(), common.current_writer(),
                                 common.notice_settings())


def copy_into_form(dataset: str, application: dict[str, Any]) -> None:
    form.fill(dataset, application)
    st.session_state[SOURCE_WIDGET] = SOURCES[0]


def current_inputs(dataset: str) -> Any:
    """What the inputs say now, comparable with an entry's ``inputs``."""
    if st.session_state.get(SOURCE_WIDGET) == SOURCES[1]:
        return ("held-out", st.session_state.get(HELD_OUT_ROW))
    return ("form", form.cells(dataset))


def inputs(dataset: str, reference: str) -> None:
    source = st.radio("Application", SOURCES, key=SOURCE_WIDGET, horizontal=True, label_visibility="collapsed")
    if source == SOURCES[1]:
        held_out_picker(dataset, reference)
    else:
        form.application_form(dataset, on_valid=lambda application: common.start_entry(
            dataset, application, "from the form", ("form", form.cells(dataset))))
        application = form.valid_application(dataset)
        if application is not None:
            prefetch(dataset, application, ("form", form.cells(dataset)))


# ---------------------------------------------------------------------------- the result

def stale_reason(entry: dict[str, Any], dataset: str) -> str | None:
    """Why the shown result no longer matches the inputs (None when it does)."""
    if entry["inputs"][0] == "form" and form.has_problems(dataset):
        return "a value on the form is not valid"
    if current_inputs(dataset) != entry["inputs"]:
        return "the inputs changed since this decision"
    return None


def issue_bar(entry: dict[str, Any], reference: str, draft: Any) -> None:
    """Issue the draft (signed-in analysts), or say who issued it; download the draft or issued PDF."""
    issued = entry["issued"].get(reference)
    left, right = st.columns([1, 1])
    if issued is not None:
        left.success(f"Issued: audit record #{issued.record_id}"
                     + (f", notice {issued.notice.document_id}" if issued.notice is not None else ""))
        if issued.pdf:
            right.download_button("Download the issued notice", issued.pdf, file_name=f"{issued.notice.document_id}.pdf",
                                  mime="application/pdf", on_click="ignore", key=f"ls_issued_pdf_{entry['id']}")
        return
    held = entry.get("held", {}).get(reference)
    if held is not None:
        with left:
            review.held_note(held)
        return
    allowed = common.can_issue()
    what = "Issue notice" if draft.decision.denied else "Record approval"
    left.button(what, type="primary", disabled=not allowed, key=f"ls_issue_{entry['id']}_{reference}",
                on_click=review.issue_or_hold_entry, args=(entry, reference),
                help="records this exact decision in the audit store with its notice, as you" if allowed else
                "sign in (sidebar) as an analyst, reviewer or admin to issue")
    if draft.pdf:
        right.download_button("Download the draft PDF", draft.pdf, file_name=f"draft-{entry['id']}.pdf",
                              mime="application/pdf", on_click="ignore", key=f"ls_draft_pdf_{entry['id']}")
    if not allowed:
        st.caption("Draft only: not issued, not recorded. Sign in as an analyst to issue it.")


def comparison(entry: dict[str, Any], reference: str) -> None:
    """What changes in the reasons between the two references (drafts, nothing recorded)."""
    other = next(r for r in REFERENCES if r != reference)
    if other not in entry["drafts"]:
        st.caption(f"Decide this application against the {other} reference too, as a draft, to see which "
                   "reasons change. Nothing is recorded.")
        if not st.button(f"Compare with the {other} reference", key=f"ls_compare_{entry['id']}_{other}"):
            return
        entry["drafts"][other] = display.decide_in_stages(entry, other)
        if entry["drafts"][other] is None:
            del entry["drafts"][other]
            return
    first, second = entry["drafts"][other].decision, entry["drafts"][reference].decision
    changes = tables.reference_changes(first, second)
    moved = changes[changes["change"] != "same rank"]
    st.write(f"The risk ({tables.risk_text(second.risk)}) and the decision do not depend on the reference; the "
             "reasons do. " + ("Same reasons in the same order." if moved.empty else
                               f"{len(moved)} reason(s) differ from {other} to {reference}."))
    st.dataframe(changes, hide_index=True, width="stretch",
                 column_config={"reason": display.WIDE, "change": st.column_config.TextColumn(width="medium"),
                                **{c: st.column_config.NumberColumn(format="%+.1f pp") for c in changes.columns
                                   if c.startswith("effect")}})


def result(entry: dict[str, Any], dataset: str, reference: str) -> None:
    draft = entry["drafts"].get(reference) or display.decide_in_stages(entry, reference)
    if draft is None:
        return
    entry["drafts"][reference] = draft
    stale = stale_reason(entry, dataset)
    st.header(f"Result ({entry['source']})" + (" - stale" if stale else ""), anchor="result")
    if stale:
        st.warning(f"Stale: {stale}. This result is for the earlier values; press Decide to update it.",
                   icon=":material/history:")
    decision = draft.decision
    display.decision_headline(decision)
    issue_bar(entry, reference, draft)
    issued = entry["issued"].get(reference)
    display.model_caption(decision, issued.record_id if issued is not None else None)
    views = {"Reasons and explanation": lambda: why(decision), "Notice preview": lambda: notice_preview(entry, reference, draft),
             "What would change it": lambda: recourse.panel(decision, common.pipeline(dataset).scorer,
                                                            key=f"ls_recourse_{entry['id']}_{reference}"),
             "Regulation passages": lambda: display.citations(decision),
             "Compare references": lambda: comparison(entry, reference)}
    for tab, view in zip(st.tabs(list(views), key=TAB_KEY, on_change="rerun"), views.values()):
        if tab.open is not False:          # only the open tab is drawn (all of them where tabs keep no state)
            with tab:
                view()


def why(decision: Any) -> None:
    display.reasons(decision)
    display.explanation(decision)
    display.grounding(decision)
    display.contributions(decision)


def notice_preview(entry: dict[str, Any], reference: str, draft: Any) -> None:
    issued = entry["issued"].get(reference)
    if issued is not None and issued.pdf:
        display.pdf_preview(issued.pdf, f"issued notice {issued.notice.document_id}", pages=1)
    elif draft.pdf:
        st.caption("DRAFT: this is the notice the decision would get, stamped DRAFT. Nothing was sent or recorded.")
        display.pdf_preview(draft.pdf, "draft notice", pages=1)
    else:
        st.write("Approved: no adverse-action notice is sent for an approval.")


def render() -> None:
    st.title("Decision explorer")
    dataset, reference = common.current_dataset(), common.current_reference()
    st.caption(f"Reason reference: {reference} · writer: {common.WRITER_LABELS[common.current_writer()].lower()} "
               "(change both in the sidebar). Decisions here are drafts until you issue them.")
    left, right = st.columns([2, 3], gap="large")
    with left:
        inputs(dataset, reference)
    with right:
        entry = common.current()
        if entry is None:
            st.info("Pick a held-out application or fill the form, then press Decide. The result appears here.")
            return
        result(entry, dataset, reference)


if __name__ == "__main__":
    render()
