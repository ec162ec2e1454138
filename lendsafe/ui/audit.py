"""Audit: browse and filter past decisions, open one to see exactly what was shown and sent, verify
the hash chain, replay a notice from its record."""
from __future__ import annotations

import json
from typing import Any

import streamlit as st

from lendsafe.errors import LendSafeError
from lendsafe.ui import common, display, tables

LIST_LIMIT = 500          # rows listed
SEARCH_WINDOW = 20_000    # newest records searched by the filters
REPLAY_KEY = "ls_replay"


def verify_chain(store: Any) -> None:
    if st.button("Verify the audit chain", key="ls_verify_chain"):
        report = store.verify()
        (st.success if report.ok else st.error)(report.summary())


def filters() -> dict[str, Any]:
    """The list filters the store indexes (dataset, decision, writer, first reason, actor)."""
    from lendsafe.datasets import builtin_dataset_names

    any_text = lambda v: v or "any"  # noqa: E731
    cols = st.columns(5)
    chosen = {
        "dataset": cols[0].selectbox("Dataset", [""] + builtin_dataset_names(), format_func=any_text,
                                     key="ls_audit_dataset"),
        "decision": cols[1].selectbox("Decision", ["", "deny", "approve"], format_func=any_text,
                                      key="ls_audit_decision"),
        "writer": cols[2].selectbox("Writer", ["", "lora", "template"], format_func=any_text, key="ls_audit_writer"),
        "reason": cols[3].text_input("First reason code", key="ls_audit_reason", placeholder="e.g. DEBT_TO_INCOME"),
        "actor": cols[4].text_input("Actor", key="ls_audit_actor", placeholder="e.g. cli:analyst"),
    }
    if st.checkbox("Only this session's decisions", key="ls_audit_mine"):
        chosen["actor"] = common.actor()
    return {k: (v.strip() if isinstance(v, str) else v) or None for k, v in chosen.items()}


def record_view(store: Any, record: Any) -> None:
    """What was shown (the decision and explanation) and what was sent (the notice), as recorded."""
    content = record.content
    st.subheader(f"Record #{record.id}")
    st.caption(f"{record.created_at} · actor `{record.actor}` · prev hash {record.prev_hash[:16]}… · "
               f"record hash {record.record_hash[:16]}…")
    shown, sent = st.tabs(["What was shown", "What was sent"])
    with shown:
        display.full_decision(record.to_decision(), record.id)
    with sent:
        notice_view(store, record)
    with st.expander("Recorded content (canonical JSON)"):
        st.code(json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True), language="json")


def notice_view(store: Any, record: Any) -> None:
    notice = record.content.get("notice")
    if notice is None:
        st.write("No notice was sent for this decision (approvals get none).")
        return
    st.write(f"Notice **{notice['document_id']}** dated {notice['notice_date']} to "
             f"{tables.md_escape(notice['applicant_name'] or 'an unnamed applicant')}; PDF sha256 "
             f"`{record.notice_sha256}`.")
    st.markdown("**Reasons as printed**\n\n" + "\n".join(f"{i}. {tables.md_escape(r)}"
                                                        for i, r in enumerate(notice["reasons"], 1)))
    if notice.get("explanation"):
        st.markdown("**Explanation as printed**")
        with st.container(border=True):
            st.markdown(tables.md_escape(notice["explanation"]))
    if st.button("Replay the notice from this record", key=f"ls_replay_{record.id}"):
        try:
            st.session_state[REPLAY_KEY] = store.replay(record.id)
        except LendSafeError as exc:
            st.error(f"Replay failed: {tables.md_escape(exc)}")
    replay = st.session_state.get(REPLAY_KEY)
    if replay is not None and replay.record_id == record.id:
        replay_view(replay)


def replay_view(replay: Any) -> None:
    if replay.identical:
        st.success(replay.summary())
    else:
        st.error(replay.summary())
    st.download_button("Download the replayed PDF", replay.pdf, file_name=f"notice-{replay.record_id}.pdf",
                       mime="application/pdf", on_click="ignore", key=f"ls_replay_pdf_{replay.record_id}")
    display.pdf_preview(replay.pdf, f"replay of record {replay.record_id}")


def record_label(record: Any) -> str:
    return (f"#{record.id} · {record.created_at} · {record.dataset} · {record.decision} · "
            f"{record.first_reason or '-'} · {record.actor}")


def render() -> None:
    st.title("Audit")
    store = common.audit_store()
    st.caption(f"Store: `{store.url}` · {store.count()} record(s) · retention per 12 CFR 1002.12(b)")
    verify_chain(store)
    chosen = filters()
    head_id, _ = store.head()
    records = store.list(after_id=max(0, head_id - SEARCH_WINDOW), limit=None, **chosen)[-LIST_LIMIT:][::-1]
    st.write(f"{len(records)} record(s) match (newest first; at most {LIST_LIMIT} of the newest "
             f"{SEARCH_WINDOW:,} records).")
    if not records:
        st.info("No decision matches. Decisions made in the explorer, the notices page and the CLI land here.")
        return
    st.dataframe(tables.records_frame(records), hide_index=True, height=260, width="stretch")
    by_id = {r.id: r for r in records}
    chosen_id = st.selectbox("Open record", list(by_id), key="ls_audit_open", format_func=lambda i: record_label(by_id[i]))
    record_view(store, by_id[chosen_id])


if __name__ == "__main__":
    render()
