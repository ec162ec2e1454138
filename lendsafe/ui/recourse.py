"""Explorer panel "What would change it": the smallest changes that would have approved a denial, for the
analyst only (never on the notice). Each option is re-scored live by the same scorer as the decision, and the
panel shows that re-scoring's risk and decision beside the change, in the spec's units."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from lendsafe.decide.decision import Decision
from lendsafe.recourse import ANALYST_NOTE, DEFAULT_MAX_CHANGES, MAX_CHANGES, Recourse, change_words, find_recourse

TITLE = "What would change it"
COLUMNS = {"option": st.column_config.NumberColumn("option", format="%d", width="small"),
           "what changes": st.column_config.TextColumn("what changes", width="large"),
           "re-scored risk": st.column_config.NumberColumn("re-scored risk", format="%.1f%%", width="small"),
           "re-scored decision": st.column_config.TextColumn("re-scored decision", width="small")}
DECISION_WORDS = {"approve": "approved", "deny": "denied"}


def panel(decision: Decision, scorer: Any, key: str = "ls_recourse") -> Recourse | None:
    """Draw the panel for ``decision`` (scored by ``scorer``); returns the recourse shown, or None."""
    st.subheader(TITLE)
    st.caption(f"{ANALYST_NOTE} Every option below was re-scored just now by the same model as this decision; "
               "the risk and decision shown are that re-scoring's. Only features the dataset spec marks actionable "
               "change, within its bounds.")
    if decision.dataset != scorer.spec.name:
        st.warning(f"This decision is from the {decision.dataset} model; the panel needs that model's scorer.")
        return None
    if not decision.denied:
        st.write("Approved as submitted: nothing needs to change.")
        return None
    max_changes = st.number_input("Features changed together, at most", 1, MAX_CHANGES, DEFAULT_MAX_CHANGES,
                                  key=f"{key}_max_changes", help="1 shows single-feature changes only")
    result = find_recourse(scorer, decision.application, decision.reference, max_changes=int(max_changes))
    if result.infeasible:
        st.info(_plain(f"No change within the spec's bounds approves this application: {result.why}."))
        return result
    st.dataframe(options_frame(scorer.spec, result), hide_index=True, width="stretch", column_config=COLUMNS)
    return result


def options_frame(spec: Any, result: Recourse) -> pd.DataFrame:
    """One row per option: the changes in words and units, and the re-scored risk (%) and decision."""
    return pd.DataFrame([{"option": number,
                          "what changes": " and ".join(change_words(spec, change) for change in option.changes),
                          "re-scored risk": round(option.decision.risk * 100, 1),
                          "re-scored decision": DECISION_WORDS[option.decision.decision]}
                         for number, option in enumerate(result.options, start=1)], columns=list(COLUMNS))


def _plain(text: str) -> str:
    """Markdown-safe: a dollar sign shown as itself, never the start of a formula."""
    return text.replace("$", "\\$")
