"""Audit: browse and filter past decisions, open one to see exactly what was shown and sent, verify
the hash chain, replay a notice from its record.

Everything that came from users or the database (actors, names, reasons, problems, the store URL) is
shown as plain text (``st.text``, ``st.code``, dataframe cells), never as markdown; URLs are redacted."""
from __future__ import annotations

import io
import json
import tempfile
import zipfile
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import streamlit as st

from lendsafe.audit.evidence import export_evidence
from lendsafe.audit.replay import replay_notice
from lendsafe.errors import LendSafeError
from lendsafe.redaction import printable, redact_url
from lendsafe.audit.records import REVIEW_ACTIONS
from lendsafe.ui import common, display, record_rows, review

LIST_LIMIT = 500          # rows listed
SEARCH_WINDOW = 20_000    # newest records searched by the filters
REPLAY_KEY = "ls_replay"


def verify_chain(store: Any) -> None:
    if st.button("Verify the audit chain", key="ls_verify_chain"):
        report = store.verify()
        if report.ok:                  # ids, hashes, the operator's checkpoint path and key id only
            st.success(report.summary())
            return
        st.error("The chain does NOT verify.")      # the problem may quote tampered data: plain text only
        st.code(printable(report.summary()), language=None, wrap_lines=True)


def filters() -> tuple[dict[str, Any], dict[str, str]]:
    """(store filters on indexed columns, text searches over the records' content)."""
    from lendsafe.decide.specs import builtin_dataset_names

    any_text = lambda v: v or "any"  # noqa: E731
    top = st.columns([2, 2, 2])
    text = {"who": top[0].text_input("Applicant or application id", key="ls_audit_who",
                                     placeholder="e.g. Ann Lee or HMDA-ROW-12", help="case-insensitive; part of it is enough"),
            "reason": top[1].text_input("Reason", key="ls_audit_reason", placeholder="e.g. debt or DEBT_TO_INCOME",
                                        help="any principal reason whose code or statement contains this "
                                             "(case-insensitive)")}
    dates = top[2].date_input("Decided between", value=(), key="ls_audit_dates", format="YYYY-MM-DD",
                              help="first and last day (UTC); leave empty for any date")
    cols = st.columns(4)
    chosen = {
        "dataset": cols[0].selectbox("Dataset", [""] + builtin_dataset_names(), format_func=any_text,
                                     key="ls_audit_dataset"),
        "decision": cols[1].selectbox("Decision", ["", *KIND_WORDS],
                                      format_func=lambda v: KIND_WORDS.get(v, v) or "any", key="ls_audit_decision"),
        "writer": cols[2].selectbox("Writer", ["", "lora", "template"], key="ls_audit_writer",
                                    format_func=lambda v: record_rows.WRITER_LABELS.get(v, "any")),
        "actor": cols[3].text_input("Issued by", key="ls_audit_actor", placeholder="e.g. local:alice"),
    }
    if common.actor() and st.checkbox("Only what I issued", key="ls_audit_mine"):
        chosen["actor"] = common.actor()
    chosen.update(date_range(dates))
    return {k: (v.strip() if isinstance(v, str) else v) or None for k, v in chosen.items()}, text


def date_range(dates: Any) -> dict[str, Any]:
    """since/until (UTC, until exclusive) of a picked date range; one date picked = that day."""
    picked = list(dates or ())
    if not picked:
        return {}
    first, last = picked[0], picked[-1]
    start = datetime.combine(first, time.min, tzinfo=timezone.utc)
    return {"since": start, "until": datetime.combine(last, time.min, tzinfo=timezone.utc) + timedelta(days=1)}


KIND_WORDS = {"deny": "denied", "approve": "approved", "incomplete": "notice of incompleteness",
              "refusal": "notice refused (not sent)", "held": "held for review", "edited": "review: paragraph edited",
              "rejected": "review: rejected (not sent)", "reassigned": "review: reassigned"}


def record_view(store: Any, record: Any) -> None:
    """What was shown (the decision and explanation) and what was sent (the notice), as recorded."""
    content = record.content
    st.subheader(f"Record #{int(record.id)}")
    st.text(f"{record.created_at} · actor {printable(record.actor)} · prev hash {record.prev_hash[:16]}… · "
            f"record hash {record.record_hash[:16]}…")
    if record.kind != "decision":
        OTHER_KINDS.get(record.kind, purge_view)(store, record)
        return
    shown, sent = st.tabs(["What was shown", "What was sent"])
    with shown:
        display.full_decision(record.to_decision(), record.id)
    with sent:
        notice_view(store, record)
    with st.expander("Recorded content (canonical JSON)"):
        st.code(json.dumps(content, indent=2, ensure_ascii=False, sort_keys=True), language="json")


def purge_view(store: Any, record: Any) -> None:
    st.write("This record is the chain's own entry for a purge of records past retention:")
    st.json(record.content.get("purge") or {}, expanded=True)


def incomplete_view(store: Any, record: Any) -> None:
    """A notice of incompleteness: what was missing and the notice sent."""
    content = record.content
    st.write("A notice of incompleteness (12 CFR 1002.9(c)(2)) was sent: the application lacked required fields.")
    plain_list("Missing: ", (content.get("record") or {}).get("missing") or [])
    replay_button(store, record)


def refusal_view(store: Any, record: Any) -> None:
    """A notice that was not issued: why, and the decision it was for."""
    refused = record.content.get("refused") or {}
    st.error("This notice was refused and not sent.")
    st.text(f"Reason: {printable(refused.get('reason') or '')}")
    failures = refused.get("failures") or {}
    if failures:
        st.dataframe([{"check": name, "why": printable(why)} for name, why in failures.items()], hide_index=True,
                     width="stretch", column_config={"why": st.column_config.TextColumn(width="large")})
    if refused.get("decision"):
        from lendsafe.decide.decision import Decision

        with st.expander("The decision it was for"):
            display.full_decision(Decision.from_dict(refused["decision"]), record.id)


def plain_list(label: str, items: list[Any]) -> None:
    st.text(label + ", ".join(printable(i) for i in items))


OTHER_KINDS = {"purge": purge_view, "incomplete": incomplete_view, "refusal": refusal_view, "review": review.record_view}


def notice_view(store: Any, record: Any) -> None:
    notice = record.content.get("notice")
    if notice is None:
        st.write("No notice was sent for this decision (approvals get none).")
        return
    st.text(f"Notice {printable(notice['document_id'])} dated {printable(notice['notice_date'])} to "
            f"{printable(notice['applicant_name'] or 'an unnamed applicant')}; PDF sha256 {record.notice_sha256}.")
    st.markdown("**Reasons as printed**")
    st.text("\n".join(f"{i}. {printable(r)}" for i, r in enumerate(notice["reasons"], 1)))
    if notice.get("explanation"):
        st.markdown("**Explanation as printed**")
        with st.container(border=True):
            st.text(printable(notice["explanation"], keep_newlines=True))
    replay_button(store, record)


def replay_button(store: Any, record: Any) -> None:
    if st.button("Replay the notice from this record", key=f"ls_replay_{record.id}"):
        try:
            st.session_state[REPLAY_KEY] = replay_notice(store, record.id)
        except LendSafeError as exc:
            st.error("Replay failed.")
            st.code(printable(exc, keep_newlines=True), language=None, wrap_lines=True)
    replay = st.session_state.get(REPLAY_KEY)
    if replay is not None and replay.record_id == record.id:
        replay_view(replay)


def replay_view(replay: Any) -> None:
    (st.success if replay.identical else st.error)(
        "The notice was regenerated byte for byte." if replay.identical else "The replayed notice differs.")
    st.code(printable(replay.summary(), keep_newlines=True), language=None, wrap_lines=True)
    st.download_button("Download the replayed PDF", replay.pdf, file_name=f"notice-{replay.record_id}.pdf",
                       mime="application/pdf", on_click="ignore", key=f"ls_replay_pdf_{replay.record_id}")
    display.pdf_preview(replay.pdf, f"replay of record {replay.record_id}")


def record_label(record: Any) -> str:
    name, application_id = record_rows.record_applicant(record)
    return printable(f"#{record.id} · {record.created_at[:19].replace('T', ' ')} · {name or 'unnamed'} · "
                     f"{application_id or '-'} · {record.decision} · {record.first_reason or '-'} · {record.actor}")


def evidence_pack(store: Any, record: Any) -> None:
    """Export the record's evidence pack (canonical record, chain proof, replay, PDF) as a zip."""
    key = f"ls_evidence_{record.id}"
    if st.button("Prepare the evidence pack", key=f"{key}_make", help="the same pack as `lendsafe audit export`"):
        try:
            st.session_state[key] = evidence_zip(store, record.id)
        except LendSafeError as exc:
            st.error("The evidence pack could not be made.")
            st.code(printable(exc, keep_newlines=True), language=None, wrap_lines=True)
            return
        st.toast(f"Evidence pack for record #{record.id} ready", icon=":material/inventory_2:")
    if key in st.session_state:
        st.download_button("Download the evidence pack (zip)", st.session_state[key],
                           file_name=f"evidence-record-{record.id}.zip", mime="application/zip", type="primary",
                           key=f"{key}_download", on_click=lambda: st.toast("Evidence pack downloaded"))


def evidence_zip(store: Any, record_id: int) -> bytes:
    """The files ``export_evidence`` writes, zipped in memory."""
    with tempfile.TemporaryDirectory(prefix="lendsafe-evidence-") as folder:
        export_evidence(store, record_id, folder)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).iterdir()):
                archive.write(path, path.name)
        return buffer.getvalue()


LIST_COLUMNS = {"id": st.column_config.NumberColumn("record", format="#%d", width="small"),
                "created": st.column_config.TextColumn("decided (UTC)", width="medium"),
                "applicant": st.column_config.TextColumn(width="medium"),
                "application id": st.column_config.TextColumn(width="medium"),
                "first reason": st.column_config.TextColumn(width="medium"),
                "actor": st.column_config.TextColumn("issued by", width="medium")}


def matching(store: Any, chosen: dict[str, Any], text: dict[str, str]) -> list[Any]:
    """Newest first: records passing the store filters and the text searches."""
    head_id, _ = store.head()
    found = store.list(after_id=max(0, head_id - SEARCH_WINDOW), limit=None, **chosen)
    found = [r for r in found if r.kind == "purge" or (record_rows.record_matches(r, text["who"])
                                                       and record_rows.reason_matches(r, text["reason"]))]
    if text["who"] or text["reason"]:
        found = [r for r in found if r.kind != "purge"]
    return found[-LIST_LIMIT:][::-1]


def linked_record(store: Any) -> Any | None:
    """The record named in the URL (``?record=12``), or None."""
    wanted = st.query_params.get("record")
    if not wanted:
        return None
    try:
        return store.get(int(wanted))
    except (ValueError, LendSafeError):
        st.warning(f"No audit record {printable(wanted)[:20]} (the link names a record that does not exist).")
        return None


def _open_changed() -> None:
    st.query_params["record"] = str(st.session_state["ls_audit_open"])


def render() -> None:
    st.title("Audit")
    store = common.audit_store()
    st.caption("Every issued decision and its notice, hash-chained. Retention per 12 CFR 1002.12(b): 25 months "
               "for consumer credit, 12 for business credit. Drafts from the explorer are never recorded.")
    st.text(f"Store: {redact_url(store.url)} · {store.count()} record(s)")
    verify_chain(store)
    chosen, text = filters()
    records = matching(store, chosen, text)
    linked = linked_record(store)
    st.write(f"{len(records)} record(s) match (newest first; at most {LIST_LIMIT} of the newest "
             f"{SEARCH_WINDOW:,} records).")
    if not records:
        st.info("No decision matches. Decisions issued in the explorer, the notices page and the CLI land here."
                + (" The record the link names is shown below." if linked is not None else ""))
        if linked is None:
            return
    else:
        st.dataframe(record_rows.records_frame(records), hide_index=True, height=260, width="stretch",
                     column_config=LIST_COLUMNS)
    by_id = {r.id: r for r in records}
    if linked is not None:
        by_id.setdefault(linked.id, linked)
        st.session_state["ls_audit_open"] = linked.id
    elif st.session_state.get("ls_audit_open") not in by_id:
        st.session_state.pop("ls_audit_open", None)
    chosen_id = st.selectbox("Open record", list(by_id), key="ls_audit_open", format_func=lambda i: record_label(by_id[i]),
                             on_change=_open_changed)
    record = by_id[chosen_id]
    st.caption(f"Link to this record: add ?record={record.id} to this page's address.")
    evidence_pack(store, record)
    record_view(store, record)


if __name__ == "__main__":
    render()
