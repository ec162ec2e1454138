"""Drawing one decision and one notice: shared by the explorer, the notices page and the audit page.

Risk is a percentage with one decimal everywhere; a factor's effect is in percentage points (pp) of
risk, with the model's log-odds in the help and the tables' last column; reason statements and
values come from the catalog and the dataset spec; user data is escaped or shown as plain text.
"""
from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import Decision
from lendsafe.errors import LendSafeError
from lendsafe.ui import common, engine, record_rows, tables

ROLE_COLORS = {tables.ROLE_PRINCIPAL: "#c0392b", tables.ROLE_ADVERSE: "#e67e22", tables.ROLE_LOWERED: "#2e86c1"}
CHECK_ICONS = {True: ":green[:material/check_circle:]", False: ":red[:material/cancel:]"}
STATUS_LABEL = "Deciding (a draft: nothing is issued)"


# ---------------------------------------------------------------------------- deciding

def decide_in_stages(entry: dict[str, Any], reference: str) -> Any:
    """A draft of the entry's application, its stages shown in ``st.status`` (expanded while a model loads)."""
    shared = common.engine()
    loading = shared.llm_loading and common.current_writer() != "template"
    with st.status(STATUS_LABEL + (" - the language model is still loading" if loading else ""),
                   expanded=loading) as status:
        if loading:
            st.write(f"The language model is still loading ({shared.parts['language model'].seconds():.0f} s so "
                     "far); this draft is written by the template writer and verified the same way.")

        def stage(name: str, text: str) -> None:
            status.update(label=f"{STATUS_LABEL}: {name}")
            st.write(f"**{name.capitalize()}**: {tables.md_escape(text)}")

        try:
            draft = shared.draft(entry["application"], entry["dataset"], reference, common.current_writer(),
                                 common.notice_settings(), stage)
        except LendSafeError as exc:
            status.update(label="The decision could not be made", state="error", expanded=True)
            st.text(str(exc))
            return None
        status.update(label=f"Draft decided ({draft.decision.latency_ms or 0:.0f} ms)", state="complete",
                      expanded=False)
    return draft


# ---------------------------------------------------------------------------- the summary

def decision_headline(decision: Decision) -> None:
    """Decision, risk with its distance to the threshold in percentage points, the threshold; the reference."""
    above = (decision.risk - decision.threshold) * 100
    cols = st.columns(3)
    cols[0].metric("Decision", "Denied" if decision.denied else "Approved")
    cols[1].metric("Risk", tables.risk_text(decision.risk), f"{above:+.1f} pp", delta_color="inverse",
                   help=f"predicted probability of {load_spec(decision.dataset).outcome}; the small figure is its "
                        f"distance to the threshold in percentage points (pp)")
    cols[2].metric("Threshold", tables.risk_text(decision.threshold), help="a risk at or above it is denied")
    st.altair_chart(risk_chart(decision), width="stretch")
    st.caption(f"Reasons against the **{decision.reference}** reference (Reg B comment 9(b)(2)-5): "
               + REFERENCE_WORDS.get(decision.reference, decision.reference) + ".")


REFERENCE_WORDS = {"population": "this applicant compared with the average of all applicants",
                   "cutoff": "this applicant compared with applicants at or just above the passing cutoff"}


def model_caption(decision: Decision, record_id: int | None = None) -> None:
    recorded = f"audit record #{record_id}" if record_id is not None else "not recorded (draft)"
    st.caption(f"Model {decision.model.get('dataset')} · sha256 {decision.model.get('sha256', '')[:12]} · "
               f"threshold version {decision.model.get('threshold_version')} · {recorded}")


def risk_chart(decision: Decision) -> Any:
    """The risk as a bar on a 0-100% scale beside the threshold, drawn as a black rule."""
    import altair as alt
    import pandas as pd

    outcome = load_spec(decision.dataset).outcome
    frame = pd.DataFrame([{"row": "risk", "risk": decision.risk, "threshold": decision.threshold}])
    base = alt.Chart(frame).encode(y=alt.Y("row:N", axis=None))
    color = ROLE_COLORS[tables.ROLE_PRINCIPAL] if decision.denied else ROLE_COLORS[tables.ROLE_LOWERED]
    bar = base.mark_bar(color=color, size=22).encode(
        x=alt.X("risk:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=f"predicted risk of {outcome}")))
    rule = base.mark_tick(color="black", thickness=3, size=34).encode(x="threshold:Q")
    label = base.mark_text(align="left", dx=6, dy=-14).encode(x="threshold:Q", text=alt.value("threshold"))
    return (bar + rule + label).properties(height=56)


# ---------------------------------------------------------------------------- reasons and contributions

CHART_ROW_PX = 30      # one bar of the contributions chart
CHART_FRAME_PX = 120   # its axis title and the three-line legend below it
PP = st.column_config.NumberColumn("effect (pp)", format="%+.1f pp", help=tables.POINTS_HELP)
LOG_ODDS = st.column_config.NumberColumn("log-odds", format="%+.4f", help="the model's own contribution (log-odds)")
WIDE = st.column_config.TextColumn(width="large")


def contributions_chart(frame: Any) -> Any:
    """Each feature's effect in percentage points of risk, coloured by role (adverse ones in red/orange)."""
    import altair as alt

    color = alt.Color("role:N", scale=alt.Scale(domain=list(ROLE_COLORS), range=list(ROLE_COLORS.values())),
                      legend=alt.Legend(orient="bottom", title=None, direction="vertical", labelLimit=400))
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("effect (pp):Q", title="effect on risk (percentage points) vs. the reference"),
        y=alt.Y("label:N", sort=list(frame["label"]), title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        color=color,
        tooltip=[alt.Tooltip("label", title="factor"), alt.Tooltip("value", title="value"),
                 alt.Tooltip("effect (pp):Q", title="effect (pp)", format="+.1f"),
                 alt.Tooltip("log-odds:Q", format="+.4f"), alt.Tooltip("role", title="role")],
    ).properties(height=CHART_ROW_PX * len(frame))


def contributions(decision: Decision) -> None:
    frame = tables.contribution_frame(decision, load_spec(decision.dataset))
    st.subheader("What moved the risk", help=tables.POINTS_HELP)
    st.caption(f"Each factor's effect on this applicant's risk, in percentage points, against the "
               f"{decision.reference} reference. Red: behind a principal reason; orange: raised the risk without "
               "becoming a reason; blue: lowered it.")
    st.altair_chart(contributions_chart(frame), width="stretch", height=CHART_ROW_PX * len(frame) + CHART_FRAME_PX)
    with st.expander("As a table"):
        st.dataframe(frame.drop(columns=["feature", "adverse"]), hide_index=True, width="stretch",
                     column_config={"label": st.column_config.TextColumn("factor", width="medium"),
                                    "effect (pp)": PP, "log-odds": LOG_ODDS, "role": WIDE,
                                    "reason_code": st.column_config.TextColumn("reason code")})


def reasons(decision: Decision) -> None:
    st.subheader("Principal reasons")
    if not decision.reasons:
        st.write("Approved: no adverse action, so no principal reasons are stated.")
        return
    st.markdown(reasons_markdown(decision), help=tables.POINTS_HELP)
    with st.expander("Reasons as a table"):
        st.dataframe(tables.reasons_frame(decision), hide_index=True, width="stretch",
                     column_config={"reason": WIDE, "effect (pp)": PP, "log-odds": LOG_ODDS})
    if decision.dropped:
        with st.expander(f"Candidates not stated as reasons ({len(decision.dropped)})"):
            st.caption("These raised the risk against the reference group, but the applicant's own value is not "
                       "adverse (or they fall beyond the four principal reasons), so stating them would not be true.")
            st.dataframe(tables.dropped_frame(decision), hide_index=True, width="stretch",
                         column_config={"why not a reason": WIDE, "effect (pp)": PP})


def reasons_markdown(decision: Decision) -> str:
    """The reasons as a numbered list: statement, the applicant's value, effect in pp, rule."""
    esc = tables.md_escape
    return "\n".join(f"{i}. **{esc(r.statement)}** — value {esc(r.display_value)}; raises the risk by "
                     f"{tables.points(r.contribution, decision.risk):.1f} pp ({esc(r.citation)})"
                     for i, r in enumerate(decision.reasons, start=1))


# ---------------------------------------------------------------------------- explanation and checks

def checklist_markdown(verification: dict) -> str:
    checks = (verification or {}).get("checks") or {}
    return "\n".join(f"- {CHECK_ICONS[bool(c['passed'])]} {tables.md_escape(tables.check_sentence(name, bool(c['passed'])))}"
                     for name, c in checks.items())


def grounding(decision: Decision) -> None:
    """Each legal or rights sentence of the explanation with the retrieved passage it rests on."""
    if not decision.grounding:
        return
    passages = {c.passage_id: c for c in decision.citations}
    st.markdown("**Rights and the passages they rest on**")
    for row in decision.grounding:
        passage = passages.get(row.get("passage_id") or "")
        with st.expander(tables.md_escape(row["sentence"])):
            if passage is None:
                st.warning(f"No retrieved passage supports this sentence: {row.get('why_unsupported')}")
            else:
                st.caption(tables.md_escape(f"{passage.citation} — {passage.title}"))
                st.text(passage.text)


def citations(decision: Decision) -> None:
    st.subheader("Retrieved regulation passages", help=tables.RELEVANCE_HELP)
    if not decision.citations:
        st.write("No passages were retrieved.")
        return
    st.caption("Most relevant first. Relevance runs from 0 to 1 (meaning similarity and keyword match with "
               "the question asked for this decision).")
    for citation in sorted(decision.citations, key=lambda c: (-c.score, c.citation)):
        with st.expander(tables.md_escape(f"{citation.citation} — {citation.title} (relevance {citation.score:.2f})")):
            st.text(citation.text)


def explanation(decision: Decision) -> None:
    """The explanation, who wrote it and why, and the verifier's checklist in sentences."""
    st.subheader("Explanation")
    with st.container(border=True):
        st.markdown(tables.md_escape(decision.explanation) if decision.explanation else "_no explanation_")
    timing = f" {decision.latency_ms:.0f} ms" if decision.latency_ms is not None else ""
    st.caption(f"Written by the {engine.writer_words(decision.writer)}. Why: "
               f"{tables.md_escape(decision.writer_reason)}.{timing}")
    verification = decision.verification or {}
    checks = verification.get("checks") or {}
    passed = sum(bool(c["passed"]) for c in checks.values())
    st.markdown(f"**Verification: {passed} of {len(checks)} checks passed**" if verification.get("passed") else
                f"**Verification failed: {len(checks) - passed} of {len(checks)} checks**")
    st.markdown(checklist_markdown(verification))
    with st.expander("Check details"):
        st.dataframe(tables.checklist_frame(verification), hide_index=True, width="stretch",
                     column_config={"check": WIDE, "detail": WIDE})
    attempts = tables.attempts_frame(verification)
    if not attempts.empty:
        with st.expander(f"Language-model attempts ({len(attempts)})"):
            st.dataframe(attempts, hide_index=True, width="stretch", column_config={"text": WIDE})


def full_decision(decision: Decision, record_id: int | None = None) -> None:
    """Everything about a decision (the audit page's 'what was shown')."""
    decision_headline(decision)
    model_caption(decision, record_id)
    left, right = st.columns([1, 1])
    with left:
        reasons(decision)
        contributions(decision)
    with right:
        explanation(decision)
        grounding(decision)
        citations(decision)


# ---------------------------------------------------------------------------- PDF

@st.cache_data(show_spinner=False, max_entries=32)
def _first_page(pdf: bytes, digest: str) -> list[bytes]:
    return record_rows.pdf_page_images(pdf)


def pdf_preview(pdf: bytes, caption: str, pages: int | None = None) -> None:
    """The PDF's pages as images (poppler's pdftoppm), at most ``pages`` of them."""
    try:
        images = _first_page(pdf, hashlib.sha256(pdf).hexdigest())
    except (LendSafeError, OSError) as exc:
        st.warning(f"Preview unavailable: {exc}")
        return
    for number, png in enumerate(images[:pages] if pages else images, start=1):
        st.image(png, caption=f"{caption} — page {number} of {len(images)}", width="stretch")
