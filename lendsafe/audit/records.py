"""What an audit record holds: its kinds, the entries callers hand in, the canonical body of each, and
``AuditRecord``, a record as stored.

Reg B asks lenders to keep, for 25 months after notifying the applicant, the application, the
information used to evaluate it, the notice and the statement of reasons, or to be able to
regenerate them (12 CFR 1002.12(b), comment 12(b)-1). A ``decision`` record holds the whole ``Decision``
as canonical JSON plus the notice's settings, date, document id and PDF hash, so the notice can be
rebuilt byte for byte. The other kinds (``RECORD_KINDS``): ``incomplete``, a notice of incompleteness
(12 CFR 1002.9(c)(2): the missing fields, the notice, its settings and PDF hash); ``refusal``, a notice
that was not issued because it failed its completeness check or its explanation failed verification at
issue (what was refused and why; no PDF); ``purge``, the chain record of a purge (``retention``); ``review``,
an analyst's action on a notice held for review (``lendsafe.review``: held, edited, rejected, reassigned; an
approval is the ``decision`` record it issues, carrying a ``review`` section).

A body is everything recorded except the record's place in the chain (id, created_at: ``chain.link``).
The indexed, filterable columns of a record are all derived from its hashed content (``index_columns``).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from functools import cache
from typing import Any, NamedTuple

from lendsafe import canonical
from lendsafe.decide.decision import Decision
from lendsafe.errors import AuditIntegrityError
from lendsafe.redaction import CONTROL_WITH_LINES

RECORD_FORMAT = 1
PURGE_KIND = "purge"
DECISION_KIND, INCOMPLETE_KIND, REFUSAL_KIND, REVIEW_KIND = "decision", "incomplete", "refusal", "review"
RECORD_KINDS = (DECISION_KIND, INCOMPLETE_KIND, REFUSAL_KIND, PURGE_KIND, REVIEW_KIND)
# review action -> the decision column of its record (what `lendsafe audit list` shows)
REVIEW_ACTIONS = {"hold": "held", "edit": "edited", "reject": "rejected", "reassign": "reassigned"}
ISSUE_KEY_PATTERN = re.compile(r"^[0-9a-f]{16,64}$")
ACTOR_MAX_CHARS = 128
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LIBRARIES_FOR_REPLAY = ("lendsafe", "reportlab")


# ----------------------------------------------------------------------------- bytes and timestamps

def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: the bytes the hash chain covers (lendsafe.canonical)."""
    try:
        return canonical.canonical_json(value)
    except canonical.CanonicalValueError as exc:
        raise AuditIntegrityError(f"cannot record this value canonically: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """Fixed-width ISO 8601 in UTC (naive datetimes are taken as UTC), so text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: Any) -> datetime | None:
    """The moment a ``format_timestamp`` text names; None for any other text."""
    try:
        return datetime.strptime(str(text), TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- entries and records

class AuditEntry(NamedTuple):
    """One decision to record: the decision, its notice (denials) and the notice's PDF bytes."""

    decision: Decision
    notice: Any | None = None
    notice_pdf: bytes | None = None
    issue_key: str | None = None     # what the issue is keyed by (batches: application or row + content hash)
    batch: str | None = None         # the id of the batch folder that issued it (32 hex digits)
    review: dict[str, Any] | None = None  # the review that approved it (lendsafe.review): item, revision, who


class IncompleteEntry(NamedTuple):
    """A notice of incompleteness to record: what it states (``lendsafe.notice.incomplete.incompleteness_record``),
    the notice (``IncompleteNotice``) and its PDF bytes."""

    record: dict[str, Any]
    notice: Any
    notice_pdf: bytes
    issue_key: str | None = None
    batch: str | None = None


class RefusalEntry(NamedTuple):
    """A notice refused at issue (nothing sent): which document, why, and what it was for."""

    document: str                    # "adverse-action notice" | "notice of incompleteness"
    reason: str                      # "completeness check" | "explanation verification"
    failures: dict[str, str]         # check name -> what failed
    decision: Decision | None = None     # the decision an adverse-action notice was for
    record: dict[str, Any] | None = None  # the incompleteness record a notice of incompleteness was for
    notice: Any | None = None        # the refused notice, when one was built
    issue_key: str | None = None     # the key it would have been issued under (kept as refused_key: not taken)


class ReviewEntry(NamedTuple):
    """An analyst's action on a notice held for review (``REVIEW_ACTIONS``); a hold carries the drafted decision."""

    action: str                      # "hold" | "edit" | "reject" | "reassign"
    details: dict[str, Any]          # what the action did: item, dataset, writer, first_reason, text, diff, ...
    decision: Decision | None = None  # the decision held (hold only)
    issue_key: str | None = None     # the key the action claims (one hold per decision, one edit per revision,
    # one outcome per item): a second process claiming it finds the first one's record instead


@dataclass(frozen=True)
class AuditRecord:
    """One stored decision: indexed columns, chain hashes and the full canonical content."""

    id: int
    created_at: str
    dataset: str
    decision: str
    writer: str | None
    actor: str
    first_reason: str | None
    notice_sha256: str | None
    prev_hash: str
    record_hash: str
    content: dict[str, Any] = field(repr=False)
    record_mac: str | None = field(default=None, repr=False)

    issue_key: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """One of ``RECORD_KINDS`` (records without a kind are decisions)."""
        return self.content.get("kind", DECISION_KIND)

    def to_decision(self) -> Decision:
        if self.kind != DECISION_KIND:
            raise AuditIntegrityError(f"record {self.id} is a {self.kind} record, not a decision")
        return Decision.from_dict(self.content["decision"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.id:>6}  {self.created_at}  {self.dataset:<8} {self.decision:<7} "
                f"{self.first_reason or '-':<26} {self.writer or '-':<9} {self.actor}")


class Appended(NamedTuple):
    """What ``AuditStore.append`` did with one entry: its new record, or the record already issued under its key."""

    record: AuditRecord
    new: bool


# ----------------------------------------------------------------------------- notice fields

def encode_date(value: Any) -> dict[str, str] | None:
    """Keep a notice date's type so replay passes back exactly what was used."""
    if value is None:
        return None
    kind = next(name for name, cls in (("datetime", datetime), ("date", date), ("str", str))
                if isinstance(value, cls))
    return {"type": kind, "value": value if kind == "str" else value.isoformat()}


def _iso_date_or_text(value: str) -> date | str:
    """An ISO date string goes back as a ``date`` (what ``build_notice`` takes); other text as is."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        return value


DATE_DECODERS = {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "str": _iso_date_or_text}


def decode_date(encoded: dict[str, str] | None) -> Any:
    """The notice date as it was passed when the notice was built (see ``encode_date``)."""
    return None if encoded is None else DATE_DECODERS[encoded["type"]](encoded["value"])


@cache
def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a notice's bytes depend on (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {name: installed(name) for name in LIBRARIES_FOR_REPLAY}


def _notice_fields(notice: Any, notice_pdf: bytes | None, settings: Any) -> dict[str, Any]:
    settings = getattr(notice, "settings", None) or settings
    return {
        "notice": None if notice is None else notice.to_dict(),
        "notice_settings": None if notice is None or settings is None else settings.to_dict(),
        "notice_date": None if notice is None else encode_date(notice.notice_date),
        "document_id": None if notice is None else notice.document_id,
        "notice_sha256": None if notice_pdf is None else sha256_hex(notice_pdf),
        "notice_pdf_bytes": None if notice_pdf is None else len(notice_pdf),
    }


# ----------------------------------------------------------------------------- bodies

def check_actor(actor: Any) -> None:
    """Every record names its actor: a non-empty string of at most ``ACTOR_MAX_CHARS`` without control characters."""
    if not isinstance(actor, str) or not actor.strip():
        raise AuditIntegrityError(f"every audit record names its actor; expected a non-empty string, got {actor!r}")
    if len(actor) > ACTOR_MAX_CHARS or CONTROL_WITH_LINES.search(actor):
        raise AuditIntegrityError(f"actor must be at most {ACTOR_MAX_CHARS} characters without control "
                                  f"characters; got {actor[:ACTOR_MAX_CHARS]!r}")


def _checked_key(issue_key: Any, name: str = "issue_key") -> dict[str, str]:
    """``{name: issue_key}`` (nothing without a key); a key that is not 16-64 hex digits is refused."""
    if issue_key is None:
        return {}
    if not ISSUE_KEY_PATTERN.match(str(issue_key)):
        raise AuditIntegrityError(f"{name} must be 16-64 hex digits; got {str(issue_key)[:80]!r}")
    return {name: issue_key}


def _check_decision(decision: Any) -> None:
    if not isinstance(decision, Decision):
        raise AuditIntegrityError(f"expected a lendsafe.decide.decision.Decision; got {type(decision).__name__}")


def _stored(body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(canonical_json(body))          # exactly what will be stored and hashed


def record_body(decision: Decision, notice: Any, notice_pdf: bytes | None, actor: str,
                notice_settings: Any = None, *, issue_key: str | None = None,
                batch: str | None = None, review: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything recorded for one decision except its place in the chain (id, created_at)."""
    check_actor(actor)
    _check_decision(decision)
    return _stored({"format": RECORD_FORMAT, "actor": actor, "decision": decision.to_dict(),
                    "versions": library_versions(), **_notice_fields(notice, notice_pdf, notice_settings),
                    **_checked_key(issue_key), **_checked_key(batch, "batch"),
                    **({"review": dict(review)} if review else {})})


def _decision_body(entry: AuditEntry, actor: str, notice_settings: Any) -> dict[str, Any]:
    return record_body(entry.decision, entry.notice, entry.notice_pdf, actor, notice_settings,
                       issue_key=entry.issue_key, batch=entry.batch, review=entry.review)


def _incomplete_body(entry: IncompleteEntry, actor: str, notice_settings: Any) -> dict[str, Any]:
    """A notice of incompleteness: the missing fields and application as stated, the notice and its PDF hash."""
    if entry.notice is None or entry.notice_pdf is None or not (entry.record or {}).get("missing"):
        raise AuditIntegrityError("a notice of incompleteness is recorded with its record (naming the missing "
                                  "fields), its notice and its PDF bytes")
    return _stored({"format": RECORD_FORMAT, "kind": INCOMPLETE_KIND, "actor": actor, "record": entry.record,
                    "versions": library_versions(), **_notice_fields(entry.notice, entry.notice_pdf, notice_settings),
                    **_checked_key(entry.issue_key), **_checked_key(entry.batch, "batch")})


def _refusal_body(entry: RefusalEntry, actor: str, notice_settings: Any) -> dict[str, Any]:
    """A refused notice: the document and what it was for, the check that refused it and each failure."""
    if entry.decision is not None:
        _check_decision(entry.decision)
    if entry.decision is None and not entry.record:
        raise AuditIntegrityError("a refusal names the decision or the incompleteness record it was for")
    refused = {"document": entry.document, "reason": entry.reason, "failures": dict(entry.failures),
               "decision": None if entry.decision is None else entry.decision.to_dict(), "record": entry.record,
               "notice": None if entry.notice is None else entry.notice.to_dict(),
               "document_id": getattr(entry.notice, "document_id", None)}
    return _stored({"format": RECORD_FORMAT, "kind": REFUSAL_KIND, "actor": actor, "refused": refused,
                    "notice_settings": None if notice_settings is None else notice_settings.to_dict(),
                    "versions": library_versions(), **_checked_key(entry.issue_key, "refused_key")})


def _review_body(entry: ReviewEntry, actor: str, notice_settings: Any) -> dict[str, Any]:
    """A review action: what it did (``details`` names the item and its dataset), the decision a hold holds."""
    if entry.action not in REVIEW_ACTIONS:
        raise AuditIntegrityError(f"review action must be one of {sorted(REVIEW_ACTIONS)}; got {entry.action!r}")
    if not (entry.details or {}).get("dataset"):
        raise AuditIntegrityError("a review record names the dataset of its item (details['dataset'])")
    if (entry.action == "hold") != (entry.decision is not None):
        raise AuditIntegrityError("a hold records the decision it holds; other review actions record none")
    if entry.decision is not None:
        _check_decision(entry.decision)
    decision = {} if entry.decision is None else {"decision": entry.decision.to_dict()}
    return _stored({"format": RECORD_FORMAT, "kind": REVIEW_KIND, "actor": actor,
                    "review": {"action": entry.action, **entry.details}, **decision,
                    "notice_settings": None if notice_settings is None else notice_settings.to_dict(),
                    "versions": library_versions(), **_checked_key(entry.issue_key)})


def purge_body(actor: str, purge_fields: dict[str, Any]) -> dict[str, Any]:
    """The chain record of a purge: who purged, and the purge-log entry as hashed."""
    return {"format": RECORD_FORMAT, "kind": PURGE_KIND, "actor": actor, "purge": purge_fields}


ENTRY_BODIES = {AuditEntry: _decision_body, IncompleteEntry: _incomplete_body, RefusalEntry: _refusal_body,
                ReviewEntry: _review_body}


def _as_entry(item: Any) -> AuditEntry | IncompleteEntry | RefusalEntry | ReviewEntry:
    """An entry as given, or an ``AuditEntry`` from a (decision, notice, notice_pdf) tuple; else a clear error."""
    if type(item) in ENTRY_BODIES:
        return item
    if isinstance(item, tuple) and 3 <= len(item) <= len(AuditEntry._fields):
        return AuditEntry(*item)
    raise AuditIntegrityError(f"expected an AuditEntry or a (decision, notice, notice_pdf) tuple; "
                              f"got {type(item).__name__}")


def entry_bodies(entries: Sequence[Any], actor: str, notice_settings: Any) -> list[dict[str, Any]]:
    """The record body of every entry, or an error naming the first entry that cannot be recorded."""
    check_actor(actor)
    bodies = []
    for index, item in enumerate(entries):
        try:
            entry = _as_entry(item)
            bodies.append(ENTRY_BODIES[type(entry)](entry, actor, notice_settings))
        except AuditIntegrityError as exc:
            raise AuditIntegrityError(f"entry {index + 1} of {len(entries)}: {exc}") from exc
    return bodies


# ----------------------------------------------------------------------------- indexed columns

def _decision_columns(decision: dict[str, Any]) -> dict[str, Any]:
    reasons = decision.get("reasons") or ()
    return {"dataset": decision["dataset"], "writer": decision.get("writer"),
            "first_reason": reasons[0]["code"] if reasons else None}


def _refusal_columns(content: dict[str, Any]) -> dict[str, Any]:
    refused = content["refused"]
    columns = (_decision_columns(refused["decision"]) if refused["decision"] is not None
               else {"dataset": refused["record"]["dataset"], "writer": None, "first_reason": None})
    return {**columns, "decision": REFUSAL_KIND}


def _review_columns(content: dict[str, Any]) -> dict[str, Any]:
    review = content["review"]
    return {"dataset": review["dataset"], "decision": REVIEW_ACTIONS[review["action"]],
            "writer": review.get("writer"), "first_reason": review.get("first_reason")}


def _decision_kind_columns(content: dict[str, Any]) -> dict[str, Any]:
    return {**_decision_columns(content["decision"]), "decision": content["decision"]["decision"]}


# record kind -> its dataset, decision, writer and first reason (a record without a known kind is a decision)
KIND_COLUMNS = {
    PURGE_KIND: lambda content: {"dataset": "audit", "decision": PURGE_KIND, "writer": None, "first_reason": None},
    INCOMPLETE_KIND: lambda content: {"dataset": content["record"]["dataset"], "decision": INCOMPLETE_KIND,
                                      "writer": None, "first_reason": None},
    REFUSAL_KIND: _refusal_columns,
    REVIEW_KIND: _review_columns,
    DECISION_KIND: _decision_kind_columns,
}


def index_columns(content: dict[str, Any]) -> dict[str, Any]:
    """The indexed, filterable columns, all derived from the hashed content."""
    kind = content.get("kind")
    by_kind = KIND_COLUMNS.get(kind, _decision_kind_columns) if isinstance(kind, str) else _decision_kind_columns
    return {"id": content["id"], "created_at": content["created_at"], "actor": content["actor"],
            **by_kind(content), "notice_sha256": content.get("notice_sha256"), "issue_key": content.get("issue_key")}
