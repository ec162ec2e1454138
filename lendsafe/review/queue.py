"""The review queue, folded from the audit chain: each held item with its revisions, assignee and outcome.

Nothing about the queue is kept outside the chain. A ``held`` record opens an item (its id is that
record's id); ``edited`` records add revisions, ``reassigned`` records set the assignee, and the item's
outcome is the record that claimed its outcome key: a ``rejected`` record, or the decision record its
approval issued (found by key, so an approval is seen whichever process made it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any

from lendsafe.audit.records import REVIEW_ACTIONS, AuditRecord, parse_timestamp
from lendsafe.audit.store import AuditStore
from lendsafe.decide.decision import Decision
from lendsafe.errors import AuditIntegrityError
from lendsafe.review.errors import ReviewItemNotFoundError
from lendsafe.review.keys import assignment_key, outcome_key, revision_key

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
KEY_BATCH = 8              # issue keys looked up per query when reading an item's revisions or assignments
STATUSES = (PENDING, APPROVED, REJECTED)


@dataclass(frozen=True)
class Revision:
    """One version of the plain-words paragraph: 0 is the draft as held, 1.. the analysts' edits."""

    number: int
    text: str
    actor: str
    at: str
    record_id: int
    verification: dict[str, Any]
    diff: str = ""
    grounding: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return bool(self.verification.get("passed"))

    @property
    def failures(self) -> dict[str, str]:
        """Check -> detail of every check the text fails."""
        checks = self.verification.get("checks") or {}
        return {name: (checks.get(name) or {}).get("detail", "") for name in self.verification.get("failures") or ()}


@dataclass(frozen=True)
class Outcome:
    """How an item was closed: approved (its issued decision record) or rejected (with the reason)."""

    status: str
    actor: str
    at: str
    record_id: int
    reason: str = ""
    document_id: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    """A decision held for review, as the chain tells it now."""

    id: int                      # the held record's id
    key: str                     # the held record's issue key (keys.hold_key)
    drafted: dict[str, Any] = field(repr=False)   # the decision as held, as recorded (``decision`` parses it)
    held_by: str
    held_at: str
    held_for: tuple[str, ...]
    revisions: tuple[Revision, ...]
    assignee: str | None = None
    assignments: int = 0
    outcome: Outcome | None = None
    history: tuple[AuditRecord, ...] = field(default=(), repr=False)

    @cached_property
    def decision(self) -> Decision:
        """The decision as held (the draft's text in its explanation), parsed when first asked for."""
        return Decision.from_dict(self.drafted)

    @property
    def application(self) -> dict[str, Any]:
        return self.drafted.get("application") or {}

    @property
    def status(self) -> str:
        return self.outcome.status if self.outcome else PENDING

    @property
    def current(self) -> Revision:
        return self.revisions[-1]

    @property
    def editors(self) -> frozenset[str]:
        return frozenset(r.actor for r in self.revisions[1:])

    @property
    def dataset(self) -> str:
        return self.drafted["dataset"]

    @property
    def writer(self) -> str | None:
        return self.drafted.get("writer")

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r["code"] for r in self.drafted.get("reasons") or ())

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(timezone.utc)) - (parse_timestamp(self.held_at) or datetime.now(timezone.utc))

    def current_decision(self) -> Decision:
        """The decision with the current revision's paragraph: what an approval issues."""
        current = self.current
        if current.number == 0:
            return self.decision
        drafted = f"{self.decision.writer or 'unknown'} writer ({self.decision.writer_reason or 'no reason recorded'})"
        return self.decision.with_updates(
            explanation=current.text, verification=dict(current.verification),
            grounding=current.grounding,
            writer_reason=f"edited in review by {current.actor} (revision {current.number}); drafted by the {drafted}")


# ----------------------------------------------------------------------------- folding records

def _held_item(record: AuditRecord) -> ReviewItem:
    drafted, review = record.content["decision"], record.content["review"]
    draft = Revision(0, drafted.get("explanation") or "", record.actor, record.created_at, record.id,
                     dict(review.get("verification") or {}))
    return ReviewItem(record.id, record.issue_key, drafted, record.actor, record.created_at,
                      tuple(review.get("held_for") or ()), (draft,), history=(record,))


def _edited(item: ReviewItem, record: AuditRecord) -> ReviewItem:
    review = record.content["review"]
    revision = Revision(int(review["revision"]), review["text"], record.actor, record.created_at, record.id,
                        dict(review.get("verification") or {}), review.get("diff") or "",
                        tuple(review.get("grounding") or ()))
    return replace(item, revisions=item.revisions + (revision,))


def _reassigned(item: ReviewItem, record: AuditRecord) -> ReviewItem:
    return replace(item, assignee=record.content["review"].get("assignee"), assignments=item.assignments + 1)


def _rejected(item: ReviewItem, record: AuditRecord) -> ReviewItem:
    outcome = Outcome(REJECTED, record.actor, record.created_at, record.id, record.content["review"].get("reason", ""))
    return replace(item, outcome=outcome)


FOLDS = {"edit": _edited, "reassign": _reassigned, "reject": _rejected}


def _approved(item: ReviewItem, record: AuditRecord) -> ReviewItem:
    outcome = Outcome(APPROVED, record.actor, record.created_at, record.id,
                      document_id=record.content.get("document_id"))
    return replace(item, outcome=outcome, history=item.history + (record,))


def fold(records: Iterable[AuditRecord], issued: dict[str, AuditRecord] | None = None) -> dict[int, ReviewItem]:
    """Item id -> item, from review records in chain order and the approvals' issued records by outcome key."""
    items: dict[int, ReviewItem] = {}
    for record in records:
        review = record.content.get("review") or {}
        if review.get("action") == "hold":
            items[record.id] = _held_item(record)
        elif review.get("item") in items:
            item = items[review["item"]]
            items[item.id] = replace(FOLDS[review["action"]](item, record), history=item.history + (record,))
    for item_id, item in items.items():
        approval = (issued or {}).get(outcome_key(item.key))
        if approval is not None and approval.kind == "decision":
            items[item_id] = _approved(item, approval)
    return items


def review_records(store: AuditStore, dataset: str | None = None, after_id: int = 0) -> list[AuditRecord]:
    """Every review record (held, edited, rejected, reassigned) in chain order."""
    return store.list(decision=tuple(REVIEW_ACTIONS.values()), dataset=dataset, after_id=after_id, limit=None)


def load_items(store: AuditStore, dataset: str | None = None) -> dict[int, ReviewItem]:
    """Every review item of the store (of one dataset), with the approvals found by their outcome keys."""
    records = review_records(store, dataset)
    keys = [outcome_key(r.issue_key) for r in records if r.content["review"]["action"] == "hold"]
    return fold(records, store.issued(keys) if keys else {})


def load_pending(store: AuditStore, dataset: str | None = None) -> dict[int, ReviewItem]:
    """The pending items only, without reading the records of closed ones: held ids and keys from the index,
    the outcome keys already recorded, then the open items' records and the edits and reassignments made
    since the oldest of them (so the queue stays fast however long the review history grows)."""
    held = store.keyed_ids(decision=REVIEW_ACTIONS["hold"], dataset=dataset)
    closed = store.recorded_keys([outcome_key(key) for _, key in held if key])
    open_ids = [record_id for record_id, key in held if key and outcome_key(key) not in closed]
    if not open_ids:
        return {}
    later = store.list(decision=(REVIEW_ACTIONS["edit"], REVIEW_ACTIONS["reassign"]), dataset=dataset,
                       after_id=open_ids[0], limit=None)
    return fold(sorted([*store.get_many(open_ids), *later], key=lambda r: r.id))


def load_item(store: AuditStore, item_id: int) -> ReviewItem:
    """One item by id, read through its records' issue keys (indexed: as fast with a million records);
    ReviewItemNotFoundError when no held record has that id."""
    try:
        held = store.get(int(item_id))
    except (AuditIntegrityError, ValueError, TypeError):
        raise ReviewItemNotFoundError(f"item: no review item {item_id!r} (no audit record with that id)") from None
    if held.kind != "review" or held.content["review"].get("action") != "hold":
        raise ReviewItemNotFoundError(f"item: record {item_id} is not a held review item "
                                      f"(it is a {held.kind} record: {held.decision})")
    later = [*numbered(store, lambda n: revision_key(held.issue_key, n)),
             *numbered(store, lambda n: assignment_key(held.issue_key, n))]
    outcome = store.issued([outcome_key(held.issue_key)])
    rejection = [r for r in outcome.values() if r.kind == "review"]
    return fold(sorted([held, *later, *rejection], key=lambda r: r.id), outcome)[held.id]


def numbered(store: AuditStore, key_of: Any, batch: int = KEY_BATCH) -> list[AuditRecord]:
    """The records claiming key_of(1), key_of(2), ... up to the first number not recorded."""
    found: list[AuditRecord] = []
    while True:
        keys = [key_of(n) for n in range(len(found) + 1, len(found) + 1 + batch)]
        hits = store.issued(keys)
        for key in keys:
            if key not in hits:
                return found
            found.append(hits[key])


# ----------------------------------------------------------------------------- filtering

@dataclass(frozen=True)
class QueueFilter:
    """Which items the queue shows: status, dataset, writer, any principal reason, why held, assignee, age."""

    status: str | None = PENDING
    dataset: str | None = None
    writer: str | None = None
    reason: str | None = None          # a reason code any of the item's reasons has
    held_for: str | None = None
    assignee: str | None = None
    min_age_hours: float | None = None
    max_age_hours: float | None = None

    def matches(self, item: ReviewItem, now: datetime) -> bool:
        hours = item.age(now).total_seconds() / 3600
        tests = (
            self.status is None or item.status == self.status,
            self.dataset is None or item.dataset == self.dataset,
            self.writer is None or item.writer == self.writer,
            self.reason is None or self.reason in item.reason_codes,
            self.held_for is None or self.held_for in item.held_for,
            self.assignee is None or item.assignee == self.assignee,
            self.min_age_hours is None or hours >= self.min_age_hours,
            self.max_age_hours is None or hours <= self.max_age_hours,
        )
        return all(tests)


def queue(store: AuditStore, wanted: QueueFilter | None = None, now: datetime | None = None) -> list[ReviewItem]:
    """The items ``wanted`` selects (pending ones by default), oldest first."""
    wanted = wanted or QueueFilter()
    now = now or datetime.now(timezone.utc)
    loaded = load_pending(store, wanted.dataset) if wanted.status == PENDING else load_items(store, wanted.dataset)
    return [item for item in loaded.values() if wanted.matches(item, now)]
