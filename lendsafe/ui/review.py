"""Review: the notices held for review before issue. Filter the queue, open an item (reasons and
contributions from the model, the verification report, the revisions with their diffs, the draft notice)
and approve, edit, reject or reassign it as the signed-in analyst. Every action is an audit record.

Everything that came from users or the database is shown as plain text (``st.text``, ``st.code``,
dataframe cells), never as markdown.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from lendsafe.errors import LendSafeError
from lendsafe.redaction import printable
from lendsafe.review import Held, QueueFilter, Reviewer, ReviewPolicy, issue_or_hold
from lendsafe.review.policy import HOLD_WORDS
from lendsafe.review.queue import STATUSES
from lendsafe.ui import common, display

OPEN_KEY = "ls_review_open"
FLASH_KEY = "ls_review_flash"
QUEUE_COLUMNS = ("item", "held (UTC)", "applicant", "application id", "dataset", "first reason", "writer",
                 "held for", "revision", "checks", "assignee", "status")


def reviewer() -> Reviewer:
    try:
        policy = ReviewPolicy.from_env()
    except LendSafeError as exc:
        common.stop_with(f"Review settings are invalid: {exc}", kind="error")
    return Reviewer(common.audit_store(), notice_settings=common.notice_settings(), policy=policy)


# ---------------------------------------------------------------------------- issuing from other pages

def issue_or_hold_entry(entry: dict[str, Any], reference: str) -> Any | None:
    """Issue the draft shown as the signed-in user, or hold it for review when the review policy says so
    (the explorer's Issue button)."""
    from lendsafe.issue.issuer import Issuer

    draft, who = entry["drafts"].get(reference), common.identity()
    if draft is None or who is None or not who.can_issue:
        st.error("Only a signed-in analyst, reviewer or admin can issue a notice.")
        return None
    issuer = Issuer(common.pipeline(entry["dataset"], reference), notice_settings=common.notice_settings(),
                    audit=common.audit_store(), actor=who.actor)
    try:
        outcome = issue_or_hold(issuer, draft.decision, ReviewPolicy.from_env())
    except LendSafeError as exc:
        st.error("Nothing was issued:")
        st.text(printable(exc, keep_newlines=True))
        return None
    if isinstance(outcome, Held):
        entry.setdefault("held", {})[reference] = outcome
        st.toast(f"Held for review: item #{outcome.item_id} ({outcome.why})", icon=":material/pending_actions:")
        return outcome
    entry["issued"][reference] = outcome
    common.work(entry["dataset"])["issued"].append({"entry": entry, "reference": reference, "issued": outcome,
                                                    "actor": who.actor})
    what = f"notice {outcome.notice.document_id}" if outcome.notice is not None else "approval"
    st.toast(f"Issued {what}: audit record #{outcome.record_id} by {who.actor}", icon=":material/verified:")
    return outcome


def held_note(held: Held) -> None:
    """What the explorer says about a draft held for review."""
    st.info(f"Held for review: item #{held.item_id} ({held.why}). Nothing is sent until a reviewer approves "
            "it on the Review page.")


# ---------------------------------------------------------------------------- the queue

def filters(datasets: list[str]) -> QueueFilter:
    cols = st.columns([1, 1, 1, 1.3, 1.3, 1])
    status = cols[0].selectbox("Status", list(STATUSES) + ["any"], key="ls_review_status")
    dataset = cols[1].selectbox("Dataset", [""] + datasets, key="ls_review_dataset", format_func=lambda v: v or "any")
    writer = cols[2].selectbox("Writer", ["", "lora", "template"], key="ls_review_writer",
                               format_func=lambda v: v or "any")
    reason = cols[3].text_input("Reason code", key="ls_review_reason", placeholder="e.g. DEBT_TO_INCOME")
    held_for = cols[4].selectbox("Held for", [""] + list(HOLD_WORDS), key="ls_review_held_for",
                                 format_func=lambda v: HOLD_WORDS.get(v, "any reason"))
    age = cols[5].number_input("Held at least (hours)", min_value=0.0, value=0.0, step=1.0, key="ls_review_age")
    return QueueFilter(None if status == "any" else status, dataset or None, writer or None,
                       reason.strip().upper() or None, held_for or None, None, age or None)


def queue_frame(items: list[Any]) -> pd.DataFrame:
    rows = []
    for item in items:
        application = item.application
        applicant = application.get("applicant") or {}
        rows.append({"item": item.id, "held (UTC)": item.held_at[:19].replace("T", " "),
                     "applicant": applicant.get("name", "") if isinstance(applicant, dict) else str(applicant),
                     "application id": str(application.get("application_id") or ""), "dataset": item.dataset,
                     "first reason": (item.reason_codes or ("",))[0], "writer": item.writer or "",
                     "held for": ", ".join(item.held_for), "revision": item.current.number,
                     "checks": "pass" if item.current.passed else "FAIL", "assignee": item.assignee or "",
                     "status": item.status})
    return pd.DataFrame(rows, columns=list(QUEUE_COLUMNS))


def item_label(item: Any) -> str:
    application_id = item.application.get("application_id") or "-"
    return printable(f"#{item.id} · {item.held_at[:16].replace('T', ' ')} · {application_id} · "
                     f"{(item.reason_codes or ('-',))[0]} · r{item.current.number} · {item.status}")


# ---------------------------------------------------------------------------- one item

def evidence(item: Any) -> None:
    """Reasons and contributions (from the model: not editable) and the current verification report."""
    decision = item.decision
    st.text(f"Risk {decision.risk:.3f} against the cutoff {decision.threshold:.3f} ({decision.reference} reference) · "
            f"drafted by the {decision.writer or 'unknown'} writer · held by {item.held_by} at {item.held_at[:19]} "
            f"for: {', '.join(HOLD_WORDS.get(h, h) for h in item.held_for)}"
            + (f" · assigned to {item.assignee}" if item.assignee else ""))
    left, right = st.columns(2)
    with left:
        st.markdown("**Principal reasons** (from the model; not editable)")
        st.dataframe(pd.DataFrame([{"#": i, "code": r.code, "statement": r.statement, "value": r.display_value,
                                    "contribution": round(r.contribution, 4)} for i, r in enumerate(decision.reasons, 1)]),
                     hide_index=True, width="stretch")
    with right:
        st.markdown("**Contributions to risk** (log-odds against the reference)")
        st.dataframe(pd.DataFrame(sorted(decision.contributions.items(), key=lambda kv: -kv[1]),
                                  columns=["feature", "contribution"]), hide_index=True, width="stretch", height=200)
    verification_report(item.current)


def verification_report(revision: Any) -> None:
    if revision.passed:
        st.success(f"Revision {revision.number} passes every verifier check.")
    else:
        st.error(f"Revision {revision.number} fails {len(revision.failures)} check(s): it cannot be issued.")
        for name, why in revision.failures.items():
            st.text(f"✗ {name}: {printable(why)}")
    checks = revision.verification.get("checks") or {}
    with st.expander("Verification report (every check)"):
        st.dataframe(pd.DataFrame([{"check": name, "passed": bool(c.get("passed")), "detail": printable(c.get("detail", ""))}
                                   for name, c in checks.items()]), hide_index=True, width="stretch")


def revisions(item: Any) -> None:
    with st.expander(f"Revisions ({len(item.revisions)}) and what each changed"):
        for revision in item.revisions:
            st.text(f"Revision {revision.number} by {revision.actor} at {revision.at[:19]} (audit record "
                    f"{revision.record_id}): {'passes' if revision.passed else 'FAILS'}")
            if revision.diff:
                st.code(revision.diff, language="diff")


def preview(rev: Reviewer, item: Any) -> None:
    key = f"ls_review_preview_{item.id}_{item.current.number}"
    if st.button("Preview the draft notice", key=f"{key}_button"):
        try:
            st.session_state[key] = rev.preview(item).pdf
        except LendSafeError as exc:
            st.session_state[key] = str(exc)
    shown = st.session_state.get(key)
    if isinstance(shown, bytes):
        display.pdf_preview(shown, f"draft notice of item {item.id} (not issued)", pages=1)
    elif shown:
        st.warning("The draft notice cannot be made:")
        st.text(printable(shown, keep_newlines=True))


# ---------------------------------------------------------------------------- actions

def flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def act(action: str, function: Any, *args: Any, **kwargs: Any) -> None:
    """Run a review action (a button's callback) and keep its outcome for the next run."""
    try:
        result = function(*args, **kwargs)
    except LendSafeError as exc:
        flash("error", f"{action} refused: {exc}")
        return
    flash("success" if getattr(result, "passed", True) else "error", SUCCESS[action](result))


SUCCESS = {
    "Approve": lambda issued: f"Approved: notice {issued.notice.document_id} issued, audit record #{issued.record_id}.",
    "Edit": lambda revision: (f"Revision {revision.number} saved (audit record #{revision.record_id}): "
                              + ("it passes every check." if revision.passed else
                                 "it FAILS verification and cannot be issued: " + "; ".join(revision.failures))),
    "Reject": lambda record: f"Rejected: nothing issued (audit record #{record.id}).",
    "Reassign": lambda record: f"Reassigned (audit record #{record.id}).",
}


def _edit(rev: Reviewer, item: Any, actor: str, key: str) -> None:
    act("Edit", rev.edit, item.id, st.session_state.get(key, ""), actor=actor, revision=item.current.number)


def _reject(rev: Reviewer, item: Any, actor: str, key: str) -> None:
    act("Reject", rev.reject, item.id, st.session_state.get(key, ""), actor=actor)


def _reassign(rev: Reviewer, item: Any, actor: str, key: str) -> None:
    act("Reassign", rev.reassign, item.id, st.session_state.get(key, "").strip(), actor=actor)


def approval_barred(rev: Reviewer, item: Any, who: Any) -> str:
    """Why this signed-in user may not approve the item now ("" when she may)."""
    if not item.current.passed:
        return "The current paragraph fails a verifier check: edit it until every check passes."
    if not who.at_least(rev.policy.approver_role):
        return f"Approving needs the {rev.policy.approver_role} role (yours: {who.role})."
    if rev.policy.separate_duties and who.actor in item.editors:
        return "Separation of duties: you edited this item, so another reviewer must approve it."
    return ""


def actions(rev: Reviewer, item: Any) -> None:
    who = common.identity()
    actor = who.actor if who is not None and who.can_issue else None
    if item.status != "pending":
        outcome = item.outcome
        st.info(f"This item was {outcome.status} by {outcome.actor} at {outcome.at[:19]} (audit record "
                f"#{outcome.record_id}){': ' + outcome.reason if outcome.reason else ''}. It cannot be acted on again.")
        return
    if actor is None:
        st.caption("Sign in (sidebar) as an analyst, reviewer or admin to approve, edit, reject or reassign.")
        return
    tag = f"{item.id}_{item.current.number}"
    why_not = approval_barred(rev, item, who)
    st.button("Approve and issue", type="primary", key=f"ls_review_approve_{tag}", disabled=bool(why_not),
              on_click=act, args=("Approve", rev.approve, item.id), kwargs={"actor": actor, "revision": item.current.number},
              help=why_not or "issues the notice with the current paragraph")
    if why_not:
        st.caption(why_not)
    text_key = f"ls_review_text_{tag}"
    st.session_state.setdefault(text_key, item.current.text)
    st.text_area("Plain-words paragraph (the reasons above are not editable)", key=text_key, height=200)
    st.button("Save edit", key=f"ls_review_edit_{tag}", on_click=_edit, args=(rev, item, actor, text_key),
              help="re-verified by the same verifier; a text that fails a check cannot be issued")
    left, right = st.columns(2)
    with left:
        reason_key = f"ls_review_reason_{tag}"
        st.text_input("Reason for rejecting", key=reason_key)
        st.button("Reject (nothing is issued)", key=f"ls_review_reject_{tag}", on_click=_reject,
                  args=(rev, item, actor, reason_key))
    with right:
        assignee_key = f"ls_review_assignee_{tag}"
        st.text_input("Assign to (actor, e.g. local:bob)", key=assignee_key)
        st.button("Reassign", key=f"ls_review_reassign_{tag}", on_click=_reassign, args=(rev, item, actor, assignee_key))


def record_view(store: Any, record: Any) -> None:
    """One review record as the Audit page shows it: the action, its item, what it changed (for the Audit
    page's table of record kinds: ``OTHER_KINDS["review"] = review.record_view``)."""
    details = dict(record.content.get("review") or {})
    action = details.pop("action", "")
    item = record.id if action == "hold" else details.get("item")
    st.write(f"A review action: **{ACTION_WORDS.get(action, action)}** on review item #{int(item or 0)}.")
    if details.get("diff"):
        st.code(details["diff"], language="diff")
    failures = (details.get("verification") or {}).get("failures") or []
    if action in ("hold", "edit"):
        (st.error if failures else st.success)("The paragraph fails: " + ", ".join(failures) if failures
                                               else "The paragraph passes every verifier check.")
    shown = {k: v for k, v in details.items() if k in ("reason", "assignee", "previous", "held_for", "revision", "batch")}
    if shown:
        st.json(shown, expanded=True)
    if record.content.get("decision"):
        from lendsafe.decide.decision import Decision

        with st.expander("The decision held"):
            display.full_decision(Decision.from_dict(record.content["decision"]), record.id)


ACTION_WORDS = {"hold": "held for review (not issued)", "edit": "paragraph edited", "reject": "rejected (nothing issued)",
                "reassign": "reassigned"}


def show_flash() -> None:
    kind, text = st.session_state.pop(FLASH_KEY, (None, None))
    if kind:
        getattr(st, kind)(printable(text))


def render() -> None:
    st.title("Review")
    st.caption("Notices held for review before issue: the language model's texts that needed a retry or the "
               "composer's fallback, decisions near the cutoff, and batches held on request. Approve issues the "
               "notice; an edit is re-verified and cannot be issued while a check fails; reject issues nothing. "
               "Every action is an audit record.")
    rev = reviewer()
    show_flash()
    items = rev.queue(filters(common.available_datasets()))
    st.write(f"{len(items)} item(s) match.")
    if not items:
        st.info("Nothing to review. Decisions the review policy holds (explorer, batches, `lendsafe review`) land here.")
        return
    st.dataframe(queue_frame(items), hide_index=True, height=260, width="stretch")
    by_id = {item.id: item for item in items}
    if st.session_state.get(OPEN_KEY) not in by_id:
        st.session_state.pop(OPEN_KEY, None)
    item = by_id[st.selectbox("Open item", list(by_id), key=OPEN_KEY, format_func=lambda i: item_label(by_id[i]))]
    st.subheader(f"Item #{item.id}")
    evidence(item)
    revisions(item)
    preview(rev, item)
    actions(rev, item)


if __name__ == "__main__":
    render()
