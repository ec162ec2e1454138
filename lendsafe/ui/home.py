"""Landing page: what LendSafe does, and where to start."""
from __future__ import annotations

import streamlit as st

from lendsafe.ui import common

STEPS = (
    ("lendsafe/ui/explorer.py", "Decision explorer", ":material/search:",
     "Try an application, held-out or typed in. You get a draft: the decision, its principal reasons, the "
     "explanation with its verification, and the notice it would get. Nothing is recorded until you issue it."),
    ("lendsafe/ui/notices.py", "Notices", ":material/description:",
     "The lender settings notices are made with, the notices issued in this session, and batches: a CSV of "
     "applications issued after your confirmation, as a zip with a manifest."),
    ("lendsafe/ui/audit.py", "Audit", ":material/fact_check:",
     "Every issued decision, hash-chained: search by applicant, application id, date or reason, replay a "
     "notice byte for byte, export the evidence pack."),
    ("lendsafe/ui/evaluation.py", "Evaluation", ":material/analytics:",
     "How faithful the explanations are, how often they state something untrue, whether notices are complete, "
     "and how good the risk model is."),
)


def render() -> None:
    st.title("LendSafe")
    st.markdown("For every credit decision, LendSafe answers: **why was this applicant denied, and can we prove "
                "the notice we sent says the true reasons?** A risk model scores the application, its exact "
                "contributions become the principal reasons, a language model explains them in plain words, a "
                "verifier checks every sentence against the decision, and the adverse-action notice and its "
                "audit record are made together.")
    who = common.identity()
    if who is None:
        st.info("You are not signed in: you can explore decisions as drafts. To issue notices, sign in "
                "(sidebar) as an analyst.", icon=":material/person:")
    for path, title, icon, text in STEPS:
        with st.container(border=True):
            st.page_link(path, label=title, icon=icon)
            st.caption(text)


if __name__ == "__main__":
    render()
