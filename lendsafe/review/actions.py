"""Review actions: hold, approve, edit, reject and reassign, each one record of the audit chain.

``Reviewer`` acts on the items of one audit store with one set of notice settings and one policy. An
action reads the item, checks it may be done (the item is still pending; the revision the analyst saw is
the current one; an approval's paragraph passes the verifier; the editor does not approve), then appends
its record claiming its issue key (``keys``) unless the item's outcome, or the next revision, is already
recorded. That check is made again under the store's write lock, so of two analysts acting at once one
wins and the other gets ``ReviewConflictError`` or ``ReviewClosedError``; nothing is issued twice.

``issue_or_hold`` and ``hold_for_review`` are the entry points for issuing code (the dashboard, the CLI,
batches): the first holds what the policy selects and issues the rest, the second holds every denial of
a batch and issues its approvals.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lendsafe.audit.records import AuditRecord, ReviewEntry, check_actor, sha256_hex
from lendsafe.audit.store import AuditStore
from lendsafe.decide.decision import Decision
from lendsafe.errors import AuditIntegrityError
from lendsafe.explain.grounding import grounding
from lendsafe.explain.verify import verify
from lendsafe.issue.issuer import Issued, Issuer, Rendered, render_notice
from lendsafe.notice import NoticeSettings
from lendsafe.review.diff import changed_words, paragraph_diff
from lendsafe.review.errors import (ReviewBlockedError, ReviewClosedError, ReviewConflictError, ReviewError,
                                    SeparationOfDutiesError)
from lendsafe.review.keys import assignment_key, hold_key, outcome_key, revision_key
from lendsafe.review.policy import BATCH, HOLD_WORDS, ReviewPolicy, hold_reasons
from lendsafe.review.queue import PENDING, QueueFilter, ReviewItem, Revision, load_item, queue

MAX_TEXT_CHARS = 4000
MAX_NOTE_CHARS = 1000
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")     # control characters other than a line feed


@dataclass(frozen=True)
class Held:
    """A decision held for review instead of issued: its item id and why (``new`` False: already held)."""

    item_id: int
    decision: Decision
    held_for: tuple[str, ...]
    new: bool = True

    @property
    def why(self) -> str:
        return "; ".join(HOLD_WORDS.get(name, name) for name in self.held_for)


def check_text(text: Any, field: str = "text", limit: int = MAX_TEXT_CHARS) -> str:
    """A non-empty text of at most ``limit`` characters without control characters (line feeds allowed)."""
    if not isinstance(text, str) or not text.strip():
        raise ReviewError(f"{field}: expected a non-empty text; got {str(text)[:40]!r}")
    if len(text) > limit:
        raise ReviewError(f"{field}: expected at most {limit} characters; got {len(text)}")
    if CONTROL.search(text):
        raise ReviewError(f"{field}: expected text without control characters (tabs included)")
    return text


def check_who(actor: Any, field: str = "actor") -> str:
    """An actor name the audit store accepts, or a ReviewError naming the field."""
    try:
        check_actor(actor)
    except AuditIntegrityError as exc:
        raise ReviewError(f"{field}: {exc}") from None
    return actor


def item_details(item: ReviewItem) -> dict[str, Any]:
    """What every action record says about its item (dataset, writer and first reason are indexed)."""
    reasons = item.reason_codes
    return {"item": item.id, "item_key": item.key, "dataset": item.dataset, "writer": item.writer,
            "first_reason": reasons[0] if reasons else None}


def hold_entry(decision: Decision, held_for: Sequence[str], *, issue_key: str | None = None,
               batch: str | None = None) -> ReviewEntry:
    """The record holding ``decision`` (its draft verified now) for the reasons ``held_for``, under
    ``issue_key`` (default: derived from the decision; a batch passes its row's key) and naming ``batch``."""
    reasons = decision.reasons
    details = {"dataset": decision.dataset, "writer": decision.writer,
               "first_reason": reasons[0].code if reasons else None, "held_for": list(held_for),
               "verification": verify(decision, decision.explanation or "").to_dict(),
               **({"batch": batch} if batch else {})}
    return ReviewEntry("hold", details, decision, issue_key or hold_key(decision))


class Reviewer:
    """The review actions on one audit store, issuing with ``notice_settings`` under ``policy``.

    >>> reviewer = Reviewer(open_audit_store(), notice_settings=NoticeSettings.from_file("lender.toml"))
    >>> [held] = reviewer.hold([decision], actor="cli:ann", held_for=("batch",))
    >>> reviewer.edit(held.item_id, "We cannot approve ...", actor="cli:ann").passed
    True
    >>> reviewer.approve(held.item_id, actor="cli:bob").record_id      # issued, on the record
    """

    def __init__(self, store: AuditStore, *, notice_settings: NoticeSettings | None = None,
                 policy: ReviewPolicy | None = None):
        self.store = store
        self.notice_settings = notice_settings or NoticeSettings()
        self.policy = policy or ReviewPolicy()

    def issuer(self, actor: str) -> Issuer:
        return Issuer(None, notice_settings=self.notice_settings, audit=self.store, actor=check_who(actor))

    # -- reading
    def item(self, item_id: int) -> ReviewItem:
        return load_item(self.store, item_id)

    def queue(self, wanted: QueueFilter | None = None, **kwargs: Any) -> list[ReviewItem]:
        return queue(self.store, wanted, **kwargs)

    def preview(self, item: ReviewItem, *, notice_date: Any = None) -> Rendered:
        """The notice the item's current paragraph would issue (recorded nowhere); IssueRefused when it cannot."""
        return render_notice(item.current_decision(), self.notice_settings, notice_date=notice_date)

    # -- holding
    def hold(self, decisions: Sequence[Decision], *, actor: str, held_for: Sequence[str] | None = None) -> list[Held]:
        """Hold denials for review in one transaction (``held_for``: why; default the policy's reasons, else
        "batch"). Each notice is rendered and checked first, as at issue: one that could not be issued is
        refused (recorded, IssueRefused raised) rather than queued. A decision already held is not held twice."""
        issuer = self.issuer(actor)
        reasons = [tuple(held_for or hold_reasons(d, self.policy) or (BATCH,)) for d in decisions]
        for decision in decisions:
            if not decision.denied:
                raise ReviewError(f"decision: only denials are held for review (an approval has no notice); "
                                  f"got {decision.decision!r}")
            with issuer.recording_refusals():
                issuer.render(decision)
        appended = issuer.append([hold_entry(d, why) for d, why in zip(decisions, reasons)])
        return [Held(a.record.id, d, why, a.new) for a, d, why in zip(appended, decisions, reasons)]

    # -- acting on an item
    def approve(self, item_id: int, *, actor: str, revision: int | None = None, notice_date: Any = None) -> Issued:
        """Issue the item's current paragraph as its notice, recorded with who approved which revision."""
        item = self._open_item(item_id, revision)
        current = item.current
        if not current.passed:
            raise ReviewBlockedError(f"item {item.id}: revision {current.number} fails verification and cannot be "
                                     "issued (" + "; ".join(f"{k}: {v}" for k, v in current.failures.items())
                                     + "): edit the paragraph until every check passes", current.failures)
        if self.policy.separate_duties and actor in item.editors:
            raise SeparationOfDutiesError(f"actor: {actor} edited item {item.id}; separation of duties: another "
                                          "reviewer must approve it")
        review = {"item": item.id, "item_key": item.key, "revision": current.number, "approved_by": actor,
                  "text_sha256": sha256_hex(current.text.encode("utf-8")), "held_by": item.held_by,
                  "held_for": list(item.held_for), "edited_by": sorted(item.editors),
                  "diff_from_draft": paragraph_diff(item.revisions[0].text, current.text, before_label="draft",
                                                    after_label=f"revision {current.number} (approved)")}
        issued, new = self.issuer(actor).issue_reviewed(
            item.current_decision(), issue_key=outcome_key(item.key), review=review,
            unless=(revision_key(item.key, current.number + 1),), notice_date=notice_date)
        if not new:
            raise self._overtaken(item, issued.record_id)
        return issued

    def edit(self, item_id: int, text: str, *, actor: str, revision: int | None = None) -> Revision:
        """Record a new paragraph for the item, verified by the same verifier; returns the new revision
        (``passed`` False: the failing checks block its issue until a passing edit)."""
        item = self._open_item(item_id, revision)
        text, before = check_text(text), item.current
        if text == before.text:
            raise ReviewError(f"text: the edit of item {item.id} is the same as revision {before.number}")
        number = before.number + 1
        details = {**item_details(item), "revision": number, "based_on": before.number, "text": text,
                   "text_sha256": sha256_hex(text.encode("utf-8")), "verification": verify(item.decision, text).to_dict(),
                   "grounding": grounding(item.decision, text),
                   "diff": paragraph_diff(before.text, text, before_label=f"revision {before.number}",
                                          after_label=f"revision {number}"),
                   "words_changed": list(changed_words(before.text, text))}
        record = self._append(item, actor, ReviewEntry("edit", details, None, revision_key(item.key, number)))
        return Revision(number, text, actor, record.created_at, record.id, details["verification"], details["diff"],
                        tuple(details["grounding"]))

    def reject(self, item_id: int, reason: str, *, actor: str) -> AuditRecord:
        """Close the item without issuing anything, recording why."""
        item = self._open_item(item_id)
        details = {**item_details(item), "reason": check_text(reason, "reason", MAX_NOTE_CHARS),
                   "revision": item.current.number}
        return self._append(item, actor, ReviewEntry("reject", details, None, outcome_key(item.key)), claims_outcome=True)

    def reassign(self, item_id: int, assignee: str, *, actor: str) -> AuditRecord:
        """Give the item to another analyst (the assignee is recorded; the item stays pending)."""
        item = self._open_item(item_id)
        details = {**item_details(item), "assignee": check_who(assignee, "assignee"), "previous": item.assignee}
        entry = ReviewEntry("reassign", details, None, assignment_key(item.key, item.assignments + 1))
        return self._append(item, actor, entry)

    # -- helpers
    def _open_item(self, item_id: int, revision: int | None = None) -> ReviewItem:
        item = self.item(item_id)
        if item.status != PENDING:
            raise ReviewClosedError(closed_message(item))
        if revision is not None and revision != item.current.number:
            raise ReviewConflictError(f"revision: item {item.id} is at revision {item.current.number} "
                                      f"(by {item.current.actor} at {item.current.at}); you acted on revision "
                                      f"{revision}: reload it and decide again")
        return item

    def _append(self, item: ReviewItem, actor: str, entry: ReviewEntry, claims_outcome: bool = False) -> AuditRecord:
        unless = () if claims_outcome else (outcome_key(item.key),)
        [appended] = self.issuer(actor).append([entry], unless=unless)
        if not appended.new:
            raise self._overtaken(item, appended.record.id)
        return appended.record

    def _overtaken(self, item: ReviewItem, record_id: int | None) -> ReviewError:
        """The error for an action another analyst's record overtook (the item read afresh from the store)."""
        fresh = self.item(item.id)
        if fresh.status != PENDING:
            return ReviewClosedError(closed_message(fresh))
        record = self.store.get(record_id)
        return ReviewConflictError(f"item {item.id}: {record.actor} {OVERTAKEN_WORDS.get(record.decision, 'acted on it')} "
                                   f"at {record.created_at} (audit record {record.id}) while you were acting on "
                                   f"revision {item.current.number}: reload it and decide again")


OVERTAKEN_WORDS = {"edited": "saved a newer revision", "reassigned": "reassigned it"}


def closed_message(item: ReviewItem) -> str:
    outcome = item.outcome
    what = (f"approved: notice {outcome.document_id} issued" if outcome.status == "approved"
            else f"rejected ({outcome.reason})")
    return (f"item {item.id} was already {what} by {outcome.actor} at {outcome.at} (audit record "
            f"{outcome.record_id}); it cannot be acted on again")


# ----------------------------------------------------------------------------- entry points for issuing code

def issue_or_hold(issuer: Issuer, decision: Decision, policy: ReviewPolicy | None = None, **issue: Any) -> Issued | Held:
    """Hold ``decision`` for review when the policy selects it; otherwise issue it with ``issuer``."""
    reasons = hold_reasons(decision, policy or ReviewPolicy())
    if not reasons or issuer.audit is None:
        return issuer.issue(decision, **issue)
    reviewer = Reviewer(issuer.audit, notice_settings=issuer.notice_settings, policy=policy)
    [held] = reviewer.hold([decision], actor=issuer.actor, held_for=reasons)
    return held


def hold_for_review(issuer: Issuer, decisions: Sequence[Decision], *, held_for: Sequence[str] = (BATCH,),
                    notice_date: Any = None) -> list[Issued | Held]:
    """A whole batch held for review: its denials are held (``held_for``), its approvals recorded at once
    (they have no notice); results in the batch's order."""
    if issuer.audit is None:
        raise ReviewError("issuer: holding for review needs an audit store (the queue is kept in the audit chain)")
    approvals = [d for d in decisions if not d.denied]
    issued = iter(issuer.issue_decisions(approvals, notice_date=notice_date) if approvals else [])
    denials = [d for d in decisions if d.denied]
    reviewer = Reviewer(issuer.audit, notice_settings=issuer.notice_settings)
    held = iter(reviewer.hold(denials, actor=issuer.actor, held_for=held_for) if denials else [])
    return [next(held) if d.denied else next(issued) for d in decisions]


@dataclass(frozen=True)
class BatchHolder:
    """For the batch runner (``lendsafe.issue.batch``, which may not import this package: the face passes
    one in; plain data, so it travels to cluster workers): ``holder(decision, row_key, batch)`` is the hold
    entry to record instead of the decision's notice, or None to issue it. Every denial when ``hold_all``
    ("whole batches when asked"), else those the policy selects; approvals are never held. The entry claims
    the row's key, so a resumed batch finds it."""

    policy: ReviewPolicy = field(default_factory=ReviewPolicy)
    hold_all: bool = False

    def __call__(self, decision: Decision, row_key: str, batch: str | None = None) -> ReviewEntry | None:
        if not decision.denied:
            return None
        reasons = (BATCH,) if self.hold_all else hold_reasons(decision, self.policy)
        return hold_entry(decision, reasons, issue_key=row_key, batch=batch) if reasons else None


def batch_holder(policy: ReviewPolicy | None = None, *, hold_all: bool = False) -> BatchHolder:
    """The ``BatchHolder`` of a policy (default: the built-in one)."""
    return BatchHolder(policy or ReviewPolicy(), hold_all)
