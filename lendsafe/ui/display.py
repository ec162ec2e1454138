"""Drawing one decision and one notice: shared by the explorer, the notices page and the audit page."""
from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from lendsafe.datasets import load_spec
from lendsafe.decision import Decision
from lendsafe.errors import LendSafeError
from lendsafe.ui import tables

ROLE_COLORS = {tables.ROLE_PRINCIPAL: "#c0392b", tables.ROLE_ADVERSE: "#e67e22", tables.ROLE_LOWERED: "#2e86c1"}
CHECK_ICONS = {tables.CHECK_MARKS[True]: ":green[:material/check_circle: pass]",
               tables.CHECK_MARKS[False]: ":red[:material/cancel: FAIL]"}
WRITER_NAMES = {"lora": "LoRA language model (passed verification)",
                "template": "deterministic template writer"}


def decision_headline(decision: Decision, record_id: int | None = None) -> None:
    """Decision, risk beside the threshold, reference and the audit record."""
    outcome = "Denied" if decision.denied else "Approved"
    cols = st.columns(4)
    cols[0].metric("Decision", outcome)
    cols[1].metric("Risk", f"{decision.risk:.1%}", f"{decision.risk - decision.threshold:+.1%} vs threshold",
                   delta_color="inverse")
    cols[2].metric("Threshold", f"{decision.threshold:.1%}")
    cols[3].metric("Reason reference", decision.reference)
    st.altair_chart(risk_chart(decision), width="stretch")
    recorded = f"audit record #{record_id}" if record_id is not None else "not recorded"
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


CHART_ROW_PX = 30      # one bar of the contributions chart
CHART_FRAME_PX = 120   # its axis title and the three-line legend below it


def contributions_chart(frame: Any) -> Any:
    """Signed contributions as horizontal bars, coloured by role (adverse ones in red/orange)."""
    import altair as alt

    color = alt.Color("role:N", scale=alt.Scale(domain=list(ROLE_COLORS), range=list(ROLE_COLORS.values())),
                      legend=alt.Legend(orient="bottom", title=None, direction="vertical", labelLimit=400))
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("contribution:Q", title="contribution to risk (log-odds) vs. the reference"),
        y=alt.Y("label:N", sort=list(frame["label"]), title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)), color=color,
        tooltip=["label", "value", "contribution", "role", "reason_code"],
    ).properties(height=CHART_ROW_PX * len(frame))


def contributions(decision: Decision) -> None:
    spec = load_spec(decision.dataset)
    frame = tables.contribution_frame(decision, spec)
    st.subheader("Signed contributions")
    st.caption(f"Each feature's push on this applicant's risk relative to the {decision.reference} reference. "
               "Red bars are adverse and behind a principal reason; orange bars raised the risk without "
               "becoming a reason; blue bars lowered it.")
    st.altair_chart(contributions_chart(frame), width="stretch", height=CHART_ROW_PX * len(frame) + CHART_FRAME_PX)
    with st.expander("Contributions as a table"):
        st.dataframe(frame.drop(columns=["feature"]), hide_index=True, width="stretch")


def reasons(decision: Decision) -> None:
    st.subheader("Principal reasons")
    if not decision.reasons:
        st.write("Approved: no adverse action, so no principal reasons are stated.")
        return
    st.markdown(reasons_markdown(decision))
    with st.expander("Reasons as a table"):
        st.dataframe(tables.reasons_frame(decision), hide_index=True, width="stretch")
    if decision.dropped:
        with st.expander(f"Candidates not stated as reasons ({len(decision.dropped)})"):
            st.caption("These raised the risk against the reference group, but the applicant's own value is not "
                       "adverse (or they fall beyond the four principal reasons), so stating them would not be true.")
            st.dataframe(tables.dropped_frame(decision), hide_index=True, width="stretch")


def reasons_markdown(decision: Decision) -> str:
    """The reasons as a numbered list: statement, the applicant's value, contribution, rule."""
    esc = tables.md_escape
    return "\n".join(f"{i}. **{esc(r.statement)}** — your value {esc(r.display_value)}; contribution "
                     f"{r.contribution:+.3f} ({esc(r.citation)})" for i, r in enumerate(decision.reasons, start=1))


def checklist_markdown(verification: dict) -> str:
    frame = tables.checklist_frame(verification)
    return "\n".join(f"- {CHECK_ICONS[row.result]} **{row.check}** — {tables.md_escape(row.detail)}"
                     for row in frame.itertuples())


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
    st.subheader("Retrieved citations")
    if not decision.citations:
        st.write("No passages were retrieved.")
    for citation in decision.citations:
        with st.expander(tables.md_escape(f"{citation.citation} — {citation.title} (score {citation.score:.3f})")):
            st.markdown(tables.md_escape(citation.text))


def explanation(decision: Decision) -> None:
    """The explanation, who wrote it and why, and the verifier's checklist."""
    st.subheader("Explanation")
    with st.container(border=True):
        st.markdown(tables.md_escape(decision.explanation) if decision.explanation else "_no explanation_")
    writer = WRITER_NAMES.get(decision.writer or "", decision.writer or "unknown")
    st.caption(f"Written by: **{decision.writer}** — {writer}. Why: {tables.md_escape(decision.writer_reason)}."
               + (f" {decision.latency_ms:.0f} ms" if decision.latency_ms is not None else "")
               + (f" (plus {decision.load_ms:.0f} ms loading)." if decision.load_ms else "."))
    verification = decision.verification or {}
    passed = verification.get("passed")
    st.markdown(f"**Verification checklist** — {'all checks passed' if passed else 'failed: ' + ', '.join(verification.get('failures', []))}")
    st.markdown(checklist_markdown(verification))
    attempts = tables.attempts_frame(verification)
    if not attempts.empty:
        with st.expander(f"Language-model attempts ({len(attempts)})"):
            st.dataframe(attempts, hide_index=True, width="stretch")


def full_decision(decision: Decision, record_id: int | None = None) -> None:
    decision_headline(decision, record_id)
    left, right = st.columns([1, 1])
    with left:
        reasons(decision)
        contributions(decision)
    with right:
        explanation(decision)
        grounding(decision)
        citations(decision)


@st.cache_data(show_spinner=False, max_entries=32)
def _page_images(pdf: bytes, digest: str) -> list[bytes]:
    return tables.pdf_page_images(pdf)


def pdf_preview(pdf: bytes, caption: str) -> None:
    """Each page of the PDF as an image (poppler's pdftoppm)."""
    try:
        pages = _page_images(pdf, hashlib.sha256(pdf).hexdigest())
    except (LendSafeError, OSError) as exc:
        st.warning(f"Preview unavailable: {exc}")
        return
    for number, png in enumerate(pages, start=1):
        st.image(png, caption=f"{caption} — page {number} of {len(pages)}", width="stretch")
