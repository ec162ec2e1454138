"""Append-only, hash-chained audit store: every decision recorded, verifiable and replayable.

Reg B asks lenders to keep, for 25 months after notifying the applicant, the application, the
information used to evaluate it, the notice and the statement of reasons, or to be able to
regenerate them (12 CFR 1002.12(b), comment 12(b)-1). Each record holds the whole ``Decision``
as canonical JSON plus the notice's settings, date, document id and PDF hash, so the notice can be
rebuilt byte for byte. Record kinds (``RECORD_KINDS``): ``decision``; ``incomplete``, a notice of
incompleteness (12 CFR 1002.9(c)(2): the missing fields, the notice, its settings and PDF hash);
``refusal``, a notice that was not issued because it failed its completeness check or its
explanation failed verification at issue (what was refused and why; no PDF); ``purge``.

A record made with an issue key (a batch row: application id or data row, content hash, dataset) is
unique under that key (a unique index since migration 0003): a second process issuing the same
application finds the first one's record instead of committing another. Record ``n`` stores ``sha256(canonical_json(content) + hash of record n-1)``;
the first link uses ``GENESIS_HASH``; after a purge the chain starts from the purge's anchor.

SQLite (WAL, ``synchronous=FULL``; ``?synchronous=NORMAL`` on the URL trades power-loss durability of
the last commits for speed) by default, PostgreSQL (psycopg 3) when ``LENDSAFE_DATABASE_URL`` says so. A write
reads the chain head and inserts under an exclusive lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
``pg_advisory_xact_lock``). ``record`` writes one record per transaction; ``record_many`` appends a
group in one transaction (group commit: one fsync for the group, all of it or none of it). Database
triggers refuse UPDATE and DELETE except for records a logged purge covers.

What the database cannot protect is anchored outside it (``lendsafe.audit.anchor``): every record
hash and purge-log entry is signed with the audit key, and a signed checkpoint file holds the chain
head, so a deleted tail, a re-chained history or a forged record is named by ``verify``. A purge is
itself a chain record, authorised by the retention rule of 12 CFR 1002.12(b) (25 months for consumer
credit, 12 for business credit), and ``verify`` re-checks that rule for every purge-log entry.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from lendsafe.audit.anchor import (EMPTY_STATE, MISSING, OK, WRONG_KEY, AuditKey, ChainState, Checkpoint,
                                   CheckpointReading, checkpoint_path, store_label)
from lendsafe.decide.decision import Decision
from lendsafe import canonical
from lendsafe.errors import AuditIntegrityError, ConfigurationError, LendSafeError
from lendsafe.redaction import CONTROL_WITH_LINES, printable, redact_url

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
RECORD_FORMAT = 1
ISSUE_KEY_PATTERN = re.compile(r"^[0-9a-f]{16,64}$")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "audit_alembic_version"
ADVISORY_LOCK_KEY = 0x1E5D_A0D1          # PostgreSQL advisory lock guarding the chain head
# 12 CFR 1002.12(b)(1) and (b)(5): the shortest lawful retention for each kind of credit
RETENTION_MONTHS = {"consumer": 25, "business": 12}
MIN_RETENTION_MONTHS = min(RETENTION_MONTHS.values())
MAX_RETENTION_MONTHS = 1200
ACTOR_MAX_CHARS = 128
PURGE_KIND = "purge"
DECISION_KIND, INCOMPLETE_KIND, REFUSAL_KIND = "decision", "incomplete", "refusal"
RECORD_KINDS = (DECISION_KIND, INCOMPLETE_KIND, REFUSAL_KIND, PURGE_KIND)
# purge-log columns added by migration 0002; absent (None) on entries written before it
PURGE_COLUMNS_SINCE_0002 = ("credit", "last_created_at", "record_id")
VERIFY_BATCH = 1000
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LIBRARIES_FOR_REPLAY = ("lendsafe", "reportlab")
BACKENDS = ("sqlite", "postgresql")
# SQLite durability, chosen with ?synchronous=... on the URL. FULL (default): every committed record
# is on disk. NORMAL: in WAL mode still crash-consistent, but a power loss may drop the last commits.
SQLITE_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")


# ----------------------------------------------------------------------------- canonical hashing

def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: the bytes the hash chain covers (lendsafe.canonical)."""
    try:
        return canonical.canonical_json(value)
    except canonical.CanonicalValueError as exc:
        raise AuditIntegrityError(f"cannot record this value canonically: {exc}") from exc


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of ``content`` followed by the previous link's hash."""
    return _hash_text(canonical_json(content), prev_hash)


def _hash_text(canonical_text: str, prev_hash: str) -> str:
    return hashlib.sha256((canonical_text + prev_hash).encode("utf-8")).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """Fixed-width ISO 8601 in UTC (naive datetimes are taken as UTC), so text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (clamped to the month's last day)."""
    year, month_index = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month_index + 1)[1])
    return moment.replace(year=year, month=month_index + 1, day=day)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------- result objects

class AuditEntry(NamedTuple):
    """One decision to record: the decision, its notice (denials) and the notice's PDF bytes."""

    decision: Decision
    notice: Any | None = None
    notice_pdf: bytes | None = None
    issue_key: str | None = None     # what the issue is keyed by (batches: application or row + content hash)
    batch: str | None = None         # the id of the batch folder that issued it (32 hex digits)


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


class Appended(NamedTuple):
    """What ``AuditStore.append`` did with one entry: its new record, or the record already issued under its key."""

    record: "AuditRecord"
    new: bool


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


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of walking the chain: ``ok``, how many records, and the first broken link."""

    ok: bool
    checked: int
    anchor_id: int
    anchor_hash: str
    head_id: int
    head_hash: str
    purges: int
    broken_id: int | None = None
    problem: str | None = None
    checkpoint: str | None = None

    def summary(self) -> str:
        if self.ok:
            return (f"chain verifies: {self.checked} records after anchor {self.anchor_id}, "
                    f"{self.purges} purge(s); head {self.head_id} {self.head_hash}; checkpoint: {self.checkpoint}")
        if self.broken_id is None:
            return f"chain not verified: {self.problem}"
        return f"chain broken at record {self.broken_id}: {self.problem}"

    def state(self) -> ChainState:
        """The chain state this walk found (what a checkpoint vouches for)."""
        return ChainState(self.head_id, self.head_hash, self.checked, self.purges, self.purge_hash)

    purge_hash: str = field(default=GENESIS_HASH, repr=False)


@dataclass(frozen=True)
class ReplayResult:
    """A notice rebuilt from a record, compared with what was recorded."""

    record_id: int
    mode: str
    recorded_sha256: str | None
    replayed_sha256: str
    differences: tuple[str, ...]
    pdf: bytes = field(repr=False)

    @property
    def identical(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        if self.identical:
            return (f"record {self.record_id}: notice regenerated byte for byte, {self.mode} "
                    f"(sha256 {self.replayed_sha256})")
        return (f"record {self.record_id}: replay differs ({self.mode}):\n  "
                + "\n  ".join(self.differences))


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed and the anchor the chain now starts from."""

    purged_count: int
    first_id: int | None
    last_id: int | None
    anchor_hash: str | None
    cutoff: str
    record_id: int | None = None

    def summary(self) -> str:
        if not self.purged_count:
            return f"nothing to purge: no record created before {self.cutoff}"
        return (f"purged {self.purged_count} records ({self.first_id}..{self.last_id}) created before "
                f"{self.cutoff}; the chain now starts after anchor {self.anchor_hash}; "
                f"the purge is record {self.record_id}")


# ----------------------------------------------------------------------------- schema and engine

@cache
def _last_record_query() -> Any:
    from sqlalchemy import select

    records, _ = _tables()
    return select(records.c.id, records.c.record_hash).order_by(records.c.id.desc()).limit(1)


@cache
def _tables() -> Any:
    """SQLAlchemy Core table objects matching the migrations (imported lazily)."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    records = sa.Table(
        "audit_records", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.String) for name in (
            "created_at", "dataset", "decision", "writer", "actor", "first_reason",
            "notice_sha256", "prev_hash", "record_hash")),
        sa.Column("content", sa.Text),
        sa.Column("record_mac", sa.String),
        sa.Column("issue_key", sa.String),
    )
    purges = sa.Table(
        "audit_purges", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.String) for name in (
            "purged_at", "actor", "cutoff", "anchor_hash", "prev_entry_hash", "entry_hash", "credit",
            "last_created_at", "entry_mac")),
        *(sa.Column(name, sa.Integer) for name in ("months", "first_id", "last_id", "purged_count", "record_id")),
    )
    return records, purges


SQLITE_LOCK_WAIT_SECONDS = 60


def run_pragmas(cursor, pragmas, wait_seconds: float = SQLITE_LOCK_WAIT_SECONDS, sleep=None) -> None:
    """Each ``PRAGMA``, retried while SQLite answers 'database is locked'.

    Connections that open a new file together and switch it to WAL can deadlock on the lock
    escalation; SQLite then answers one of them at once, without calling its busy handler.
    """
    import sqlite3
    import time

    sleep = sleep or time.sleep
    deadline = time.monotonic() + wait_seconds
    for pragma in pragmas:
        while True:
            try:
                cursor.execute(f"PRAGMA {pragma}")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                sleep(0.05)


def _sqlite_engine(url: Any) -> Any:
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    synchronous = url.query.get("synchronous", "FULL").upper()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ConfigurationError(f"sqlite synchronous must be one of {SQLITE_SYNCHRONOUS}; got {synchronous!r}")
    url = url.difference_update_query(["synchronous"])
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        _sqlite_folder(url.database)
    extra = {"poolclass": StaticPool} if in_memory else {}
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **extra)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None          # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        run_pragmas(cursor, ("busy_timeout=60000", "journal_mode=WAL", f"synchronous={synchronous}"))
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _sqlite_folder(database: str) -> None:
    """Make the folder of a SQLite store; ConfigurationError naming the URL when it cannot be made."""
    try:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"audit store URL names a SQLite file whose folder cannot be made: "
                                 f"{printable(database)[:200]} ({getattr(exc, 'strerror', None) or exc})") from None


def _postgres_engine(url: Any) -> Any:
    from sqlalchemy import create_engine

    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True)


ENGINE_FACTORIES = {"sqlite": _sqlite_engine, "postgresql": _postgres_engine}


def _create_engine(url_text: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(url_text)
        backend = url.get_backend_name()
        if backend not in ENGINE_FACTORIES:
            raise ConfigurationError(f"audit store URL must be one of {BACKENDS}; got {printable(backend)!r} "
                                     f"({printable(redact_url(url_text))})")
        return ENGINE_FACTORIES[backend](url)
    except (ArgumentError, ValueError, TypeError) as exc:       # ValueError: e.g. a port that is not a number
        raise ConfigurationError(f"audit store URL is not valid ({printable(redact_url(url_text))}): "
                                 f"{printable(redact_url(str(exc).splitlines()[0]))}") from None


# ----------------------------------------------------------------------------- record content

def _encode_date(value: Any) -> dict[str, str] | None:
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


def _decode_date(encoded: dict[str, str] | None) -> Any:
    return None if encoded is None else DATE_DECODERS[encoded["type"]](encoded["value"])


@cache
def _library_versions() -> dict[str, str | None]:
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
        "notice_date": None if notice is None else _encode_date(notice.notice_date),
        "document_id": None if notice is None else notice.document_id,
        "notice_sha256": None if notice_pdf is None else sha256_hex(notice_pdf),
        "notice_pdf_bytes": None if notice_pdf is None else len(notice_pdf),
    }


def _check_actor(actor: Any) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise AuditIntegrityError(f"every audit record names its actor; expected a non-empty string, got {actor!r}")
    if len(actor) > ACTOR_MAX_CHARS or CONTROL_WITH_LINES.search(actor):
        raise AuditIntegrityError(f"actor must be at most {ACTOR_MAX_CHARS} characters without control "
                                  f"characters; got {actor[:ACTOR_MAX_CHARS]!r}")


def _entry_bodies(entries: Sequence[Any], actor: str, notice_settings: Any) -> list[dict[str, Any]]:
    """The record body of every entry, or an error naming the first entry that cannot be recorded."""
    _check_actor(actor)
    bodies = []
    for index, item in enumerate(entries):
        try:
            entry = _as_entry(item)
            bodies.append(ENTRY_BODIES[type(entry)](entry, actor, notice_settings))
        except AuditIntegrityError as exc:
            raise AuditIntegrityError(f"entry {index + 1} of {len(entries)}: {exc}") from exc
    return bodies


def _checked_key(issue_key: Any, name: str = "issue_key") -> dict[str, str]:
    """``{name: issue_key}`` (nothing without a key); a key that is not 16-64 hex digits is refused."""
    if issue_key is None:
        return {}
    if not ISSUE_KEY_PATTERN.match(str(issue_key)):
        raise AuditIntegrityError(f"{name} must be 16-64 hex digits; got {str(issue_key)[:80]!r}")
    return {name: issue_key}


def _stored(body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(canonical_json(body))          # exactly what will be stored and hashed


def record_body(decision: Decision, notice: Any, notice_pdf: bytes | None, actor: str,
                notice_settings: Any = None, *, issue_key: str | None = None,
                batch: str | None = None) -> dict[str, Any]:
    """Everything recorded for one decision except its place in the chain (id, created_at)."""
    _check_actor(actor)
    _check_decision(decision)
    return _stored({"format": RECORD_FORMAT, "actor": actor, "decision": decision.to_dict(),
                    "versions": _library_versions(), **_notice_fields(notice, notice_pdf, notice_settings),
                    **_checked_key(issue_key), **_checked_key(batch, "batch")})


def _check_decision(decision: Any) -> None:
    if not isinstance(decision, Decision):
        raise AuditIntegrityError(f"expected a lendsafe.decide.decision.Decision; got {type(decision).__name__}")


def _decision_body(entry: AuditEntry, actor: str, notice_settings: Any) -> dict[str, Any]:
    return record_body(entry.decision, entry.notice, entry.notice_pdf, actor, notice_settings,
                       issue_key=entry.issue_key, batch=entry.batch)


def _incomplete_body(entry: IncompleteEntry, actor: str, notice_settings: Any) -> dict[str, Any]:
    """A notice of incompleteness: the missing fields and application as stated, the notice and its PDF hash."""
    if entry.notice is None or entry.notice_pdf is None or not (entry.record or {}).get("missing"):
        raise AuditIntegrityError("a notice of incompleteness is recorded with its record (naming the missing "
                                  "fields), its notice and its PDF bytes")
    return _stored({"format": RECORD_FORMAT, "kind": INCOMPLETE_KIND, "actor": actor, "record": entry.record,
                    "versions": _library_versions(), **_notice_fields(entry.notice, entry.notice_pdf, notice_settings),
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
                    "versions": _library_versions(), **_checked_key(entry.issue_key, "refused_key")})


ENTRY_BODIES = {AuditEntry: _decision_body, IncompleteEntry: _incomplete_body, RefusalEntry: _refusal_body}


def _decision_columns(decision: dict[str, Any]) -> dict[str, Any]:
    reasons = decision.get("reasons") or ()
    return {"dataset": decision["dataset"], "writer": decision.get("writer"),
            "first_reason": reasons[0]["code"] if reasons else None}


def _kind_columns(content: dict[str, Any]) -> dict[str, Any]:
    """Dataset, decision, writer and first reason of a record, by its kind."""
    kind = content.get("kind", DECISION_KIND)
    if kind == PURGE_KIND:
        return {"dataset": "audit", "decision": PURGE_KIND, "writer": None, "first_reason": None}
    if kind == INCOMPLETE_KIND:
        return {"dataset": content["record"]["dataset"], "decision": INCOMPLETE_KIND, "writer": None,
                "first_reason": None}
    if kind == REFUSAL_KIND:
        refused = content["refused"]
        columns = (_decision_columns(refused["decision"]) if refused["decision"] is not None
                   else {"dataset": refused["record"]["dataset"], "writer": None, "first_reason": None})
        return {**columns, "decision": REFUSAL_KIND}
    return {**_decision_columns(content["decision"]), "decision": content["decision"]["decision"]}


def index_columns(content: dict[str, Any]) -> dict[str, Any]:
    """The indexed, filterable columns, all derived from the hashed content."""
    return {"id": content["id"], "created_at": content["created_at"], "actor": content["actor"],
            **_kind_columns(content), "notice_sha256": content.get("notice_sha256"),
            "issue_key": content.get("issue_key")}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in items:
        path = f"{prefix}{key}" if str(key).startswith("[") else f"{prefix}.{key}" if prefix else str(key)
        flat.update(_flatten(child, path) if isinstance(child, (dict, list)) and child else {path: child})
    return flat


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_differences(recorded: Any, replayed: Any, label: str = "notice") -> list[str]:
    """One line per field whose recorded and replayed values differ (dotted paths)."""
    left, right = _flatten(json.loads(canonical_json(recorded))), _flatten(json.loads(canonical_json(replayed)))
    return [f"{label} field {key!r}: recorded {_short(left.get(key, '<absent>'))}, "
            f"replayed {_short(right.get(key, '<absent>'))}"
            for key in sorted(set(left) | set(right)) if left.get(key, ...) != right.get(key, ...)]


# ----------------------------------------------------------------------------- the store

class AuditStore:
    """Append-only store of decisions; ``record`` is the one way in, ``purge`` the one way out."""

    def __init__(self, url: str | None = None, *, clock: Callable[[], datetime] | None = None,
                 key: AuditKey | bytes | str | None = None, checkpoint: str | Path | None = None):
        """``key``: the audit key (default ``LENDSAFE_AUDIT_KEY`` or ``<home>/audit.key``);
        ``checkpoint``: the checkpoint file (default: see ``lendsafe.audit.anchor.checkpoint_path``)."""
        from sqlalchemy.engine import make_url

        from lendsafe.config import Settings

        settings = Settings() if url is None or key is None or checkpoint is None else None
        url = url if url is not None else settings.database_url
        self.url = url
        self._clock = clock or _utc_now
        self._engine = _create_engine(url)
        self.backend = self._engine.dialect.name
        self.key = key if isinstance(key, AuditKey) else AuditKey(key) if key is not None else \
            AuditKey.load(settings.home)
        parsed = make_url(url)
        path = Path(checkpoint) if checkpoint is not None else checkpoint_path(parsed, settings.home)
        self.checkpoint = Checkpoint(path, self.key, store_label(parsed))
        self._open()

    @property
    def safe_url(self) -> str:
        """The store's URL with any password replaced by ``***`` (for pages and logs)."""
        return redact_url(self.url)

    # -- lifecycle
    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "AuditStore":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def _open(self) -> None:
        """Migrate; a store that cannot be opened (unreachable server, unopenable file) is a ConfigurationError."""
        from sqlalchemy.exc import DBAPIError

        try:
            self._migrate()
        except DBAPIError as exc:
            self._engine.dispose()
            detail = printable(redact_url(str(getattr(exc, "orig", exc)).splitlines()[0]))[:300]
            raise ConfigurationError(f"audit store {self.safe_url} cannot be opened: {detail}") from None

    def _migrate(self) -> None:
        """Upgrade the schema to head under the write lock (several processes may open at once)."""
        from alembic import command
        from alembic.config import Config
        from alembic.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        with self._engine.connect() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current == head:
            return
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._locked() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """One transaction holding the store's exclusive write lock."""
        from sqlalchemy import text

        with self._engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.backend == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._engine.connect() as conn:
            with conn.begin():
                yield conn

    # -- writing
    def record(self, decision: Decision, *, notice: Any | None, notice_pdf: bytes | None,
               actor: str, notice_settings: Any | None = None) -> AuditRecord:
        """Append one decision (with its notice, if any) to the chain; returns the stored record.

        The notice's settings come from ``notice.settings`` or, when a ``Notice`` does not carry
        them, from ``notice_settings``; without either, replay can only re-render the recorded notice.
        """
        [stored] = self.record_many([AuditEntry(decision, notice, notice_pdf)], actor=actor,
                                    notice_settings=notice_settings)
        return stored

    def record_many(self, entries: Sequence[Any], *, actor: str,
                    notice_settings: Any | None = None) -> list[AuditRecord]:
        """Append several entries in one transaction, each linked to the one before; returns them in order
        (an entry whose issue key is already recorded: that record, see ``append``)."""
        return [appended.record for appended in self.append(entries, actor=actor, notice_settings=notice_settings)]

    def append(self, entries: Sequence[Any], *, actor: str, notice_settings: Any | None = None) -> list[Appended]:
        """Append several entries in one transaction, each linked to the one before.

        ``entries`` are ``AuditEntry(decision, notice, notice_pdf, issue_key)`` (or plain 3-tuples),
        ``IncompleteEntry`` or ``RefusalEntry``. All of them are checked and serialised before the lock is
        taken, so one bad entry writes nothing. One commit (one fsync on SQLite) covers the whole group.
        An entry whose issue key is already recorded (by another process, or earlier in the group) is not
        recorded again: ``Appended(existing record, new=False)`` stands in its place.
        """
        bodies = _entry_bodies(entries, actor, notice_settings)
        if not bodies:
            return []
        records, _ = _tables()
        with self._locked() as conn:
            before = self._state(conn)
            taken = self._keyed(conn, [body.get("issue_key") for body in bodies])
            head, linked, appended = (before.head_id, before.head_hash), [], []
            for body in bodies:
                key = body.get("issue_key")
                if key in taken:
                    appended.append(Appended(taken[key], False))
                    continue
                row, content = self._next_row(body, *head)
                record = AuditRecord(**{**row, "content": content})
                linked.append(row)
                appended.append(Appended(record, True))
                taken.update({key: record} if key else {})
                head = (row["id"], row["record_hash"])
            if not linked:
                return appended
            conn.execute(records.insert(), linked)
            after = _advanced(before, *head, added=len(linked))
            self.checkpoint.advance(before, after)
        self.checkpoint.settle(after)
        return appended

    def _keyed(self, conn: Any, keys: list[str | None]) -> dict[str, AuditRecord]:
        """Issue key -> record for those of `keys` already recorded."""
        from sqlalchemy import select

        records, _ = _tables()
        wanted = sorted({key for key in keys if key})
        found: dict[str, AuditRecord] = {}
        for start in range(0, len(wanted), VERIFY_BATCH):
            query = select(records).where(records.c.issue_key.in_(wanted[start:start + VERIFY_BATCH]))
            found.update({row.issue_key: self._to_record(row) for row in conn.execute(query)})
        return found

    def _next_row(self, body: dict[str, Any], head_id: int, head_hash: str,
                  created_at: str | None = None) -> tuple[dict[str, Any], dict]:
        """Table row and content of the record following (head_id, head_hash): id, timestamp, chain hash,
        signature."""
        content = {**body, "id": head_id + 1, "created_at": created_at or format_timestamp(self._clock())}
        text = canonical_json(content)
        record_hash = _hash_text(text, head_hash)
        row = {**index_columns(content), "prev_hash": head_hash, "record_hash": record_hash, "content": text,
               "record_mac": self.key.sign("record", record_hash)}
        return row, content

    def update(self, *_args: Any, **_kwargs: Any) -> None:
        raise AuditIntegrityError("audit records are append-only: update refused (record a new decision instead)")

    def delete(self, *_args: Any, **_kwargs: Any) -> None:
        raise AuditIntegrityError("audit records are append-only: delete refused (only `purge` of records "
                                  "past retention removes records)")

    # -- reading
    def _head(self, conn: Any) -> tuple[int, str]:
        """Id and hash of the last record, else of the latest purge anchor, else genesis."""
        row = conn.execute(_last_record_query()).first()
        return (row.id, row.record_hash) if row else self._anchor(conn)

    def _anchor(self, conn: Any) -> tuple[int, str]:
        from sqlalchemy import select

        _, purges = _tables()
        row = conn.execute(select(purges.c.last_id, purges.c.anchor_hash)
                           .order_by(purges.c.id.desc()).limit(1)).first()
        return (row.last_id, row.anchor_hash) if row else (0, GENESIS_HASH)

    def head(self) -> tuple[int, str]:
        with self._reading() as conn:
            return self._head(conn)

    def _state(self, conn: Any) -> ChainState:
        """Head, record count and purge-log head, read cheaply (ids are contiguous after the anchor)."""
        from sqlalchemy import select

        _, purges = _tables()
        last_purge = conn.execute(select(purges.c.id, purges.c.entry_hash, purges.c.last_id)
                                  .order_by(purges.c.id.desc()).limit(1)).first()
        head_id, head_hash = self._head(conn)
        anchor_id = last_purge.last_id if last_purge else 0
        return ChainState(head_id, head_hash, head_id - anchor_id, last_purge.id if last_purge else 0,
                          last_purge.entry_hash if last_purge else GENESIS_HASH)

    @staticmethod
    def _to_record(row: Any) -> AuditRecord:
        values = dict(row._mapping)
        return AuditRecord(**{**values, "content": json.loads(values["content"])})

    def get(self, record_id: int) -> AuditRecord:
        from sqlalchemy import select

        records, _ = _tables()
        with self._reading() as conn:
            row = conn.execute(select(records).where(records.c.id == int(record_id))).first()
        if row is None:
            raise AuditIntegrityError(f"no audit record with id {record_id} (purged or never written)")
        return self._to_record(row)

    def list(self, *, dataset: str | None = None, decision: str | None = None, writer: str | None = None,
             actor: str | None = None, reason: str | None = None, since: datetime | str | None = None,
             until: datetime | str | None = None, after_id: int = 0, limit: int | None = 100) -> list[AuditRecord]:
        """Records in chain order, filtered on the indexed columns (reason = first reason code)."""
        from sqlalchemy import select

        records, _ = _tables()
        equal = {"dataset": dataset, "decision": decision, "writer": writer, "actor": actor,
                 "first_reason": reason}
        query = select(records).where(records.c.id > after_id).order_by(records.c.id).limit(limit)
        for column, wanted in equal.items():
            if wanted is not None:
                query = query.where(records.c[column] == wanted)
        if since is not None:
            query = query.where(records.c.created_at >= _as_timestamp(since))
        if until is not None:
            query = query.where(records.c.created_at < _as_timestamp(until))
        with self._reading() as conn:
            return [self._to_record(row) for row in conn.execute(query)]

    def issued(self, keys: Sequence[str] | None = None) -> dict[str, AuditRecord]:
        """Issue key -> record, for every record made with an issue key, or for those of `keys` (batches look
        here before issuing)."""
        from sqlalchemy import select

        records, _ = _tables()
        with self._reading() as conn:
            if keys is not None:
                return self._keyed(conn, list(keys))
            query = select(records).where(records.c.issue_key.is_not(None)).order_by(records.c.id)
            return {row.issue_key: self._to_record(row) for row in conn.execute(query)}

    def count(self) -> int:
        from sqlalchemy import func, select

        records, _ = _tables()
        with self._reading() as conn:
            return conn.execute(select(func.count()).select_from(records)).scalar_one()

    def purges(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        _, purges = _tables()
        with self._reading() as conn:
            return [dict(row._mapping) for row in conn.execute(select(purges).order_by(purges.c.id))]

    # -- verification
    def verify(self) -> VerifyReport:
        """Walk the purge log and the record chain, check every signature and the retention rule of every
        purge, then compare the head with the signed checkpoint; name the first broken link.

        The walk reads without blocking writers; a checkpoint mismatch (which a write committed during
        the walk could cause) is re-checked under the write lock before it is reported."""
        with self._reading() as conn:
            report = self._verify(conn)
        if report.ok or report.checkpoint != CHECKPOINT_MISMATCH:
            return report
        with self._locked() as conn:
            return self._verify(conn)

    def _verify(self, conn: Any) -> VerifyReport:
        reading = self.checkpoint.read()
        walk = _ChainWalk(self.key, self._purge_rows(conn), reading.limits())
        if reading.status == WRONG_KEY:
            return walk.report((None, f"checkpoint {reading.path} is {reading.detail}"), reading.status)
        problem = walk.purge_log_problem() or walk.records_problem(self._rows_in_order(conn))
        if problem:
            return walk.report(problem, reading.status)
        problem = _checkpoint_problem(reading, walk.state())
        if problem:
            return walk.report(problem, CHECKPOINT_MISMATCH if reading.status == OK else reading.status)
        return walk.report(None, f"{reading.path}, key {self.key.key_id}" if reading.status == OK
                           else f"none yet at {reading.path}: the store is empty")

    def anchor_checkpoint(self, *, accept: bool = False) -> tuple[VerifyReport, ChainState]:
        """Write the signed checkpoint at the current head.

        Without ``accept`` the store must verify against its checkpoint (or be empty); with it, the
        current head is anchored afresh after a review (the chain must still verify internally; records
        and purge entries written before signing existed are accepted unsigned). The old file is kept.
        """
        with self._locked() as conn:
            report = self._verify(conn)
            if report.ok:
                self.checkpoint.reset(report.state(), self.checkpoint.read().limits(), keep_old=False)
                return report, report.state()
            if not accept:
                raise AuditIntegrityError(f"checkpoint not written: {report.summary()} (after a review, "
                                          "`lendsafe audit checkpoint --accept` anchors the current head)")
            return self._accept(conn)

    def _accept(self, conn: Any) -> tuple[VerifyReport, ChainState]:
        purge_rows = self._purge_rows(conn)
        limits = {"record": self._first_unsigned_after(conn), "purge": 1 + max(
            (row.id for row in purge_rows if row.entry_mac is None), default=0)}
        walk = _ChainWalk(self.key, purge_rows, limits)
        problem = walk.purge_log_problem() or walk.records_problem(self._rows_in_order(conn))
        report = walk.report(problem, "accepted")
        if problem:
            raise AuditIntegrityError(f"checkpoint not written: the chain itself is broken: {report.summary()}")
        self.checkpoint.reset(walk.state(), limits)
        log.warning("audit checkpoint %s re-anchored at %s after review", self.checkpoint.where,
                    walk.state().describe())
        return report, walk.state()

    def _first_unsigned_after(self, conn: Any) -> int:
        from sqlalchemy import func, select

        records, _ = _tables()
        last_unsigned = conn.execute(select(func.max(records.c.id)).where(records.c.record_mac.is_(None))).scalar()
        return 1 + (last_unsigned or 0)

    def _purge_rows(self, conn: Any) -> list[Any]:
        from sqlalchemy import select

        _, purges = _tables()
        return list(conn.execute(select(purges).order_by(purges.c.id)))

    def _rows_in_order(self, conn: Any) -> Iterator[Any]:
        from sqlalchemy import select

        records, _ = _tables()
        last_id = None
        while True:
            query = select(records).order_by(records.c.id).limit(VERIFY_BATCH)
            if last_id is not None:
                query = query.where(records.c.id > last_id)
            rows = list(conn.execute(query))
            yield from rows
            if len(rows) < VERIFY_BATCH:
                return
            last_id = rows[-1].id

    # -- replay and evidence
    def replay(self, record_id: int) -> ReplayResult:
        """Rebuild the notice from the record alone and compare it with what was recorded.

        With recorded notice settings: ``Decision.from_dict`` -> ``build_notice`` (recorded settings,
        date, document id) -> ``render_pdf``. Without them: ``render_pdf(Notice.from_dict(recorded))``.
        A notice of incompleteness: ``build_incomplete_notice`` (recorded record, settings, date, id) ->
        ``render_incomplete_pdf``. Each differing field, the PDF hash and changed library versions are named.
        """
        record = self.get(record_id)
        _check_own_hash(record)
        content = record.content
        mode = _replay_mode(record)
        try:
            notice, pdf = REPLAY_MODES[mode](content)
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditIntegrityError(f"record {record.id} cannot be replayed: its recorded notice inputs are "
                                      f"incomplete ({type(exc).__name__}: {exc})") from None
        differences = field_differences(content["notice"], notice.to_dict())
        replayed_sha = sha256_hex(pdf)
        if content["notice_sha256"] is None:
            differences.append("notice PDF sha256: none recorded, so the bytes cannot be compared")
        elif replayed_sha != content["notice_sha256"]:
            differences.append(f"notice PDF sha256: recorded {content['notice_sha256']}, replayed {replayed_sha}")
            differences.extend(_version_notes(content.get("versions") or {}))
        return ReplayResult(record.id, mode, content["notice_sha256"], replayed_sha, tuple(differences), pdf)

    def export(self, record_id: int, out_dir: str | Path) -> dict[str, Any]:
        """Evidence pack: ``record-<id>.json`` (content, chain hashes, replay outcome) and, when the
        notice regenerates byte for byte, ``notice-<id>.pdf``. Returns the sidecar dict."""
        record = self.get(record_id)
        _check_own_hash(record)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        replay_section, pdf = self._replay_section(record)
        if pdf is not None:
            (out / f"notice-{record.id}.pdf").write_bytes(pdf)
        sidecar = {"record": record.content, "chain": self._chain_section(record), "replay": replay_section,
                   "notice_pdf": f"notice-{record.id}.pdf" if pdf is not None else None}
        (out / f"record-{record.id}.json").write_text(json.dumps(sidecar, indent=2, sort_keys=True,
                                                                 ensure_ascii=False) + "\n", encoding="utf-8")
        return sidecar

    def _chain_section(self, record: AuditRecord) -> dict[str, Any]:
        report = self.verify()
        return {"id": record.id, "prev_hash": record.prev_hash, "record_hash": record.record_hash,
                "hash_rule": "sha256(canonical_json(record) + prev_hash); canonical_json = sorted keys, "
                             "separators (',', ':'), UTF-8, no NaN",
                "genesis_hash": GENESIS_HASH, "anchor_id": report.anchor_id, "anchor_hash": report.anchor_hash,
                "head_id": report.head_id, "head_hash": report.head_hash, "chain_verifies": report.ok,
                "chain_problem": report.problem}

    def _replay_section(self, record: AuditRecord) -> tuple[dict[str, Any], bytes | None]:
        if record.content.get("notice") is None or record.kind in NOT_REPLAYABLE:
            return {"status": "no notice recorded"}, None
        try:
            result = self.replay(record.id)
        except (ImportError, LendSafeError) as exc:
            return {"status": "unavailable", "reason": str(exc)}, None
        status = "identical" if result.identical else "differs"
        section = {"status": status, "mode": result.mode, "recorded_sha256": result.recorded_sha256,
                   "replayed_sha256": result.replayed_sha256, "differences": list(result.differences)}
        return section, result.pdf if result.identical else None

    # -- retention
    def past_retention(self, months: int = 25, *, credit: str = "consumer",
                       now: datetime | None = None) -> list[AuditRecord]:
        """Records created before ``now`` minus ``months`` (candidates for purge), oldest first."""
        check_retention(months, credit)
        return self.list(until=months_before(now or self._clock(), months), limit=None)

    def purge(self, months: int = 25, *, actor: str, confirm: bool = False, credit: str = "consumer",
              now: datetime | None = None) -> PurgeResult:
        """Remove the oldest contiguous records past retention; the purge is logged and is itself a record.

        ``months`` must be at least the retention 12 CFR 1002.12(b) sets for ``credit`` (25 months for
        consumer credit, 12 for business credit). The chain must verify first.
        """
        if not confirm:
            raise AuditIntegrityError("purge removes records for good; expected confirm=True (CLI: --confirm)")
        check_retention(months, credit)
        _check_actor(actor)
        moment = now or self._clock()
        purge = {"months": months, "credit": credit, "actor": actor, "purged_at": format_timestamp(moment),
                 "cutoff": format_timestamp(months_before(moment, months))}
        with self._locked() as conn:
            report = self._verify(conn)
            if not report.ok:
                raise AuditIntegrityError(f"purge refused: the chain does not verify ({report.summary()})")
            result, after = self._purge_locked(conn, purge, report.state())
            if after is not None:
                self.checkpoint.advance(report.state(), after)
        if after is not None:
            self.checkpoint.settle(after)
        return result

    def _purge_locked(self, conn: Any, purge: dict[str, Any], before: ChainState
                      ) -> tuple[PurgeResult, ChainState | None]:
        from sqlalchemy import func, select

        records, purges = _tables()
        first_kept = conn.execute(select(func.min(records.c.id))
                                  .where(records.c.created_at >= purge["cutoff"])).scalar()
        doomed = select(records.c.id, records.c.record_hash, records.c.created_at)
        if first_kept is not None:
            doomed = doomed.where(records.c.id < first_kept)
        rows = list(conn.execute(doomed.order_by(records.c.id)))
        if not rows:
            return PurgeResult(0, None, None, None, purge["cutoff"]), None
        entry = _purge_entry(self.key, rows, purge, before)
        conn.execute(purges.insert().values(**entry))
        body = {"format": RECORD_FORMAT, "kind": PURGE_KIND, "actor": purge["actor"], "purge": _purge_fields(entry)}
        row, _ = self._next_row(body, before.head_id, before.head_hash, created_at=purge["purged_at"])
        conn.execute(records.insert().values(**row))
        conn.execute(records.delete().where(records.c.id <= entry["last_id"]))
        log.warning("audit purge by %s: removed records %d..%d created before %s (%d months, %s credit); "
                    "anchor %s; purge record %d", purge["actor"], entry["first_id"], entry["last_id"],
                    purge["cutoff"], purge["months"], purge["credit"], entry["anchor_hash"], row["id"])
        after = ChainState(row["id"], row["record_hash"], row["id"] - entry["last_id"], entry["id"],
                           entry["entry_hash"])
        return PurgeResult(len(rows), entry["first_id"], entry["last_id"], entry["anchor_hash"], purge["cutoff"],
                           row["id"]), after


def check_retention(months: Any, credit: str = "consumer") -> None:
    """Refuse a retention period shorter than 12 CFR 1002.12(b) allows for this kind of credit."""
    if credit not in RETENTION_MONTHS:
        raise ConfigurationError(f"credit must be one of {tuple(RETENTION_MONTHS)}; got {credit!r}")
    minimum = RETENTION_MONTHS[credit]
    if isinstance(months, bool) or not isinstance(months, int) or not minimum <= months <= MAX_RETENTION_MONTHS:
        raise AuditIntegrityError(f"retention months must be a whole number of at least {minimum} months for "
                                  f"{credit} credit (12 CFR 1002.12(b)) and at most {MAX_RETENTION_MONTHS}; "
                                  f"got {months!r}")


def _purge_entry(key: AuditKey, rows: list[Any], purge: dict[str, Any], before: ChainState) -> dict[str, Any]:
    """The purge-log row: what was removed, under which rule, its record id, hash link and signature."""
    entry = {"id": before.purges + 1, **purge, "first_id": rows[0].id, "last_id": rows[-1].id,
             "purged_count": len(rows), "anchor_hash": rows[-1].record_hash, "last_created_at": rows[-1].created_at,
             "record_id": before.head_id + 1, "prev_entry_hash": before.purge_hash}
    entry_hash = chain_hash(entry["prev_entry_hash"], entry)
    return {**entry, "entry_hash": entry_hash, "entry_mac": key.sign("purge", entry_hash)}


def _purge_fields(entry: Any) -> dict[str, Any]:
    """A purge-log entry as hashed and as copied into its chain record (columns added later only when set)."""
    values = dict(entry)
    return {k: v for k, v in values.items()
            if k != "entry_mac" and not (k in PURGE_COLUMNS_SINCE_0002 and v is None)}


def _advanced(before: ChainState, head_id: int, head_hash: str, *, added: int) -> ChainState:
    return ChainState(head_id, head_hash, before.count + added, before.purges, before.purge_hash)


# ----------------------------------------------------------------------------- helpers

def _as_entry(item: Any) -> AuditEntry | IncompleteEntry | RefusalEntry:
    """An entry as given, or an ``AuditEntry`` from a (decision, notice, notice_pdf) tuple; else a clear error."""
    if type(item) in ENTRY_BODIES:
        return item
    if isinstance(item, tuple) and 3 <= len(item) <= len(AuditEntry._fields):
        return AuditEntry(*item)
    raise AuditIntegrityError(f"expected an AuditEntry or a (decision, notice, notice_pdf) tuple; "
                              f"got {type(item).__name__}")


def _as_timestamp(value: datetime | str) -> str:
    return format_timestamp(value) if isinstance(value, datetime) else value


CHECKPOINT_MISMATCH = "does not match the store"
Problem = tuple[int | None, str]           # (first broken record id or None, what is wrong)


class _ChainWalk:
    """One pass over the purge log and the records: hash links, contents, signatures, retention rule."""

    def __init__(self, key: AuditKey, purge_rows: list[Any], signed_from: dict[str, int]):
        self.key, self.purge_rows, self.signed_from = key, purge_rows, signed_from
        last = purge_rows[-1] if purge_rows else None
        self.anchor = (last.last_id, last.anchor_hash) if last else (0, GENESIS_HASH)
        self.purge_hash = last.entry_hash if last else GENESIS_HASH
        self.head = self.anchor
        self.checked = 0
        self.entries = {row.entry_hash: row for row in purge_rows}
        self.purge_records_seen: set[int] = set()

    def purge_log_problem(self) -> Problem | None:
        """The first purge-log entry whose link, retention rule or signature is wrong."""
        prev_hash, next_first = GENESIS_HASH, 1
        for number, row in enumerate(self.purge_rows, start=1):
            fields = _purge_fields(row._mapping)
            entry = {k: v for k, v in fields.items() if k != "entry_hash"}
            if row.id != number or row.prev_entry_hash != prev_hash or chain_hash(prev_hash, entry) != row.entry_hash:
                return row.first_id, f"purge-log entry {row.id} was altered or removed (its hash link does not match)"
            problem = _retention_problem(row) or self._signature_problem(
                "purge", row.id, row.entry_hash, row.entry_mac, f"purge-log entry {row.id}")
            if problem:
                return row.first_id, problem
            if row.first_id != next_first:
                return row.first_id, f"purge-log entry {row.id} starts at record {row.first_id}; expected {next_first}"
            prev_hash, next_first = row.entry_hash, row.last_id + 1
        return None

    def records_problem(self, rows: Iterator[Any]) -> Problem | None:
        """The first record that is not the valid, signed next link; then purges missing their record."""
        expected = {"id": self.anchor[0] + 1, "prev_hash": self.anchor[1]}
        for row in rows:
            problem = _link_problem(row, expected) or self._signature_problem(
                "record", row.id, row.record_hash, row.record_mac, "record") or self._purge_record_problem(row)
            if problem:
                return row.id, problem
            self.checked += 1
            self.head = (row.id, row.record_hash)
            expected = {"id": row.id + 1, "prev_hash": row.record_hash}
        return self._missing_purge_record()

    def _signature_problem(self, kind: str, number: int, hashed: str, mac: str | None, what: str) -> str | None:
        if mac is None:
            return None if number < self.signed_from[kind] else (
                f"{what} is not signed with the audit key (written outside LendSafe)")
        if not self.key.check(kind, hashed, mac):
            return (f"{what}'s signature does not match the audit key {self.key.key_id} (forged or re-chained "
                    "outside LendSafe, or the store was written with another key)")
        return None

    def _purge_record_problem(self, row: Any) -> str | None:
        content = json.loads(row.content)
        if content.get("kind") != PURGE_KIND:
            return None
        recorded = content.get("purge") or {}
        logged = self.entries.get(recorded.get("entry_hash"))
        if logged is None:
            return "purge record names a purge-log entry that is not in the purge log (the log entry was removed)"
        if _purge_fields(logged._mapping) != recorded or logged.record_id != row.id:
            return f"purge record disagrees with purge-log entry {logged.id}"
        self.purge_records_seen.add(logged.id)
        return None

    def _missing_purge_record(self) -> Problem | None:
        for row in self.purge_rows:
            if row.record_id is not None and row.record_id > self.anchor[0] and row.id not in self.purge_records_seen:
                return row.record_id, (f"record {row.record_id}, the chain record of purge-log entry {row.id}, "
                                       "is missing (removed, or the purge-log entry was forged)")
        return None

    def state(self) -> ChainState:
        return ChainState(self.head[0], self.head[1], self.checked, len(self.purge_rows), self.purge_hash)

    def report(self, problem: Problem | None, checkpoint: str) -> VerifyReport:
        broken_id, text = problem if problem else (None, None)
        return VerifyReport(problem is None, self.checked, self.anchor[0], self.anchor[1], self.head[0], self.head[1],
                            len(self.purge_rows), broken_id, text, checkpoint, self.purge_hash)


def _link_problem(row: Any, expected: dict[str, Any]) -> str | None:
    """Why this row is not the valid next link, or None."""
    if row.id != expected["id"]:
        return f"expected record {expected['id']} next in the chain; found record {row.id} (a record is missing)"
    if row.prev_hash != expected["prev_hash"]:
        return (f"previous-hash link is {row.prev_hash}; expected {expected['prev_hash']} "
                f"(the record before it was removed, replaced or reordered)")
    try:
        content = json.loads(row.content)
    except ValueError as exc:
        return f"content is not valid JSON ({exc})"
    if chain_hash(row.prev_hash, content) != row.record_hash:
        return "stored hash does not match the record's content (the content was altered)"
    try:
        derived = index_columns(content)
    except (KeyError, TypeError, IndexError) as exc:
        return f"content lacks a field every record has ({exc!r})"
    mismatched = [name for name, value in derived.items() if getattr(row, name) != value]
    if mismatched:
        return f"indexed column(s) {', '.join(mismatched)} disagree with the hashed content (altered)"
    return None


def _parse_timestamp(text: Any) -> datetime | None:
    try:
        return datetime.strptime(str(text), TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _retention_problem(row: Any) -> str | None:
    """Whether a purge-log entry was lawful: the period, its cutoff, its count, the newest record it removed."""
    what = f"purge-log entry {row.id} (records {row.first_id}..{row.last_id})"
    credit = row.credit or "business"          # entries written before 0002 were held to the 12-month floor
    minimum = RETENTION_MONTHS.get(credit)
    if minimum is None:
        return f"{what} names credit {credit!r}; expected one of {tuple(RETENTION_MONTHS)}"
    if not isinstance(row.months, int) or row.months < minimum:
        return (f"{what} used a {row.months}-month retention period; 12 CFR 1002.12(b) requires at least "
                f"{minimum} months for {credit} credit (an unlawful or forged purge)")
    purged_at = _parse_timestamp(row.purged_at)
    if purged_at is None or format_timestamp(months_before(purged_at, row.months)) != row.cutoff:
        return f"{what} has cutoff {row.cutoff}; expected {row.months} months before its time {row.purged_at}"
    if row.purged_count != row.last_id - row.first_id + 1:
        return f"{what} claims {row.purged_count} records removed; its range holds {row.last_id - row.first_id + 1}"
    if row.last_created_at is not None and row.last_created_at >= row.cutoff:
        return f"{what} removed a record created at {row.last_created_at}, not before its cutoff {row.cutoff}"
    return None


def _checkpoint_problem(reading: CheckpointReading, state: ChainState) -> Problem | None:
    """How the store differs from what the signed checkpoint vouches for, naming the first broken link."""
    if reading.vouches_for(state):
        return None
    first_unanchored = state.head_id - state.count + 1 if state.count else None
    if reading.status == MISSING:
        return first_unanchored, (f"no checkpoint at {reading.path} while the store holds {state.describe()}: "
                                  "the anchor was removed, or the store was never anchored (review it, then "
                                  "`lendsafe audit checkpoint --accept`)")
    if reading.status != OK:
        return None, f"checkpoint {reading.path} {reading.detail}"
    vouched = reading.pending or reading.confirmed
    return _head_difference(state, vouched) or _purge_difference(state, vouched)


def _head_difference(state: ChainState, vouched: ChainState) -> Problem | None:
    if state.head_id < vouched.head_id:
        return state.head_id + 1, (f"records {state.head_id + 1}..{vouched.head_id}, which the signed checkpoint "
                                   "vouches for, are missing (the tail was deleted or an older copy restored)")
    if state.head_id > vouched.head_id:
        return vouched.head_id + 1, (f"records {vouched.head_id + 1}..{state.head_id} are not vouched for by the "
                                     f"signed checkpoint, whose head is record {vouched.head_id} (written outside "
                                     "LendSafe)")
    if state.head_hash != vouched.head_hash:
        return state.head_id, (f"record {state.head_id} has hash {state.head_hash}; the signed checkpoint vouches "
                               f"for {vouched.head_hash} (the chain was rewritten)")
    return None


def _purge_difference(state: ChainState, vouched: ChainState) -> Problem | None:
    if (state.purges, state.purge_hash) != (vouched.purges, vouched.purge_hash):
        return state.head_id - state.count + 1, (
            f"the purge log has {state.purges} entries (head {state.purge_hash[:16]}…); the signed checkpoint "
            f"vouches for {vouched.purges} (head {vouched.purge_hash[:16]}…)")
    return None, (f"the store ({state.describe()}) differs from what the signed checkpoint vouches for "
                  f"({vouched.describe()})")


def _check_own_hash(record: AuditRecord) -> None:
    if chain_hash(record.prev_hash, record.content) != record.record_hash:
        raise AuditIntegrityError(f"record {record.id}: stored hash does not match its content; "
                                  "refusing to replay or export altered evidence")


def _notice_module() -> Any:
    try:
        import lendsafe.notice.document as notice_module
    except ImportError as exc:
        raise AuditIntegrityError(f"cannot replay: the notice module is not available ({exc})") from exc
    return notice_module


# build_notice keyword -> how to read it back from the recorded notice dict (when both exist)
BUILD_ARGUMENTS_FROM_NOTICE = {
    "application_date": lambda notice: notice.get("application_date"),
    "counteroffer": lambda notice: notice.get("counteroffer_terms") or None,
}


def _rebuild_notice(content: dict[str, Any]) -> tuple[Any, bytes]:
    """Decision.from_dict -> build_notice with the recorded settings, date and id -> render_pdf."""
    import inspect

    module = _notice_module()
    accepted = inspect.signature(module.build_notice).parameters
    extra = {name: read(content["notice"]) for name, read in BUILD_ARGUMENTS_FROM_NOTICE.items()
             if name in accepted}
    notice = module.build_notice(Decision.from_dict(content["decision"]),
                                 module.NoticeSettings.from_dict(content["notice_settings"]),
                                 notice_date=_decode_date(content["notice_date"]),
                                 document_id=content["document_id"], **extra)
    return notice, module.render_pdf(notice)


def _rerender_notice(content: dict[str, Any]) -> tuple[Any, bytes]:
    """No settings recorded: render the recorded notice itself (checks the rendering step only)."""
    module = _notice_module()
    notice = module.Notice.from_dict(content["notice"])
    return notice, module.render_pdf(notice)


def _rebuild_incomplete(content: dict[str, Any]) -> tuple[Any, bytes]:
    """Incompleteness record -> build_incomplete_notice with the recorded settings, date and id -> render."""
    from lendsafe.notice.incomplete import build_incomplete_notice, render_incomplete_pdf

    module = _notice_module()
    notice = build_incomplete_notice(content["record"], module.NoticeSettings.from_dict(content["notice_settings"]),
                                     notice_date=_decode_date(content["notice_date"]),
                                     document_id=content["document_id"])
    return notice, render_incomplete_pdf(notice)


REBUILT = "rebuilt from the recorded decision and notice settings"
RERENDERED = "re-rendered from the recorded notice (no notice settings were recorded)"
REBUILT_INCOMPLETE = "rebuilt from the recorded incompleteness record and notice settings"
REPLAY_MODES = {REBUILT: _rebuild_notice, RERENDERED: _rerender_notice, REBUILT_INCOMPLETE: _rebuild_incomplete}
NOT_REPLAYABLE = {REFUSAL_KIND: "is a refusal: no notice was issued, so there is nothing to replay",
                  PURGE_KIND: "is the chain record of a purge: it has no notice"}


def _replay_mode(record: AuditRecord) -> str:
    """How the record's notice is rebuilt; AuditIntegrityError saying why when it has none."""
    content = record.content
    if record.kind in NOT_REPLAYABLE:
        raise AuditIntegrityError(f"record {record.id} {NOT_REPLAYABLE[record.kind]}")
    if content.get("notice") is None:
        raise AuditIntegrityError(f"record {record.id} has no notice to replay (decision {record.decision!r})")
    if record.kind == INCOMPLETE_KIND:
        return REBUILT_INCOMPLETE
    return REBUILT if content.get("notice_settings") is not None else RERENDERED


def _version_notes(recorded: dict[str, str | None]) -> list[str]:
    now = _library_versions()
    return [f"library {name}: recorded version {recorded.get(name)}, now {now.get(name)}"
            for name in LIBRARIES_FOR_REPLAY if recorded.get(name) != now.get(name)]
