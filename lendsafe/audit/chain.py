"""The hash chain: how records and purge-log entries are linked and signed, and the walk that verifies
them, naming the first broken record.

Record ``n`` stores ``sha256(canonical_json(content) + hash of record n-1)`` (canonical JSON:
``lendsafe.canonical``); the first link uses ``GENESIS_HASH``; after a purge the chain starts from the
purge's anchor (the hash of the last record it removed). The purge log is a second chain of the same
form. Every record hash and purge-log entry is signed with the audit key (``anchor.AuditKey``), and the
signed checkpoint (``anchor.Checkpoint``) vouches for the chain head, so a deleted tail, a re-chained
history or a forged record is named by ``verify``.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lendsafe.audit.anchor import MISSING, OK, WRONG_KEY, AuditKey, ChainState, CheckpointReading
from lendsafe.audit.records import PURGE_KIND, AuditRecord, canonical_json, index_columns
from lendsafe.audit.retention import purge_fields, retention_problem
from lendsafe.errors import AuditIntegrityError

GENESIS_HASH = "0" * 64
CHECKPOINT_MISMATCH = "does not match the store"
Problem = tuple[int | None, str]           # (first broken record id or None, what is wrong)


# ----------------------------------------------------------------------------- links

def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of ``content`` followed by the previous link's hash."""
    return _hash_text(canonical_json(content), prev_hash)


def _hash_text(canonical_text: str, prev_hash: str) -> str:
    return hashlib.sha256((canonical_text + prev_hash).encode("utf-8")).hexdigest()


def link(body: dict[str, Any], head_id: int, head_hash: str, created_at: str,
         key: AuditKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Table row and content of the record following (head_id, head_hash): id, timestamp, chain hash,
    signature."""
    content = {**body, "id": head_id + 1, "created_at": created_at}
    text = canonical_json(content)
    record_hash = _hash_text(text, head_hash)
    row = {**index_columns(content), "prev_hash": head_hash, "record_hash": record_hash, "content": text,
           "record_mac": key.sign("record", record_hash)}
    return row, content


def purge_log_entry(key: AuditKey, rows: list[Any], purge: dict[str, Any], before: ChainState) -> dict[str, Any]:
    """The purge-log row: what was removed, under which rule, its record id, hash link and signature."""
    entry = {"id": before.purges + 1, **purge, "first_id": rows[0].id, "last_id": rows[-1].id,
             "purged_count": len(rows), "anchor_hash": rows[-1].record_hash, "last_created_at": rows[-1].created_at,
             "record_id": before.head_id + 1, "prev_entry_hash": before.purge_hash}
    entry_hash = chain_hash(entry["prev_entry_hash"], entry)
    return {**entry, "entry_hash": entry_hash, "entry_mac": key.sign("purge", entry_hash)}


def check_own_hash(record: AuditRecord) -> None:
    """Refuse a record whose stored hash does not match its content (before replaying or exporting it)."""
    if chain_hash(record.prev_hash, record.content) != record.record_hash:
        raise AuditIntegrityError(f"record {record.id}: stored hash does not match its content; "
                                  "refusing to replay or export altered evidence")


# ----------------------------------------------------------------------------- the report

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


# ----------------------------------------------------------------------------- verification

def verify(key: AuditKey, reading: CheckpointReading, purge_rows: list[Any], rows: Iterator[Any]) -> VerifyReport:
    """Walk the purge log and the record rows (in chain order), check every signature and the retention rule
    of every purge, then compare the head with the checkpoint ``reading``; name the first broken link."""
    walk = _ChainWalk(key, purge_rows, reading.limits())
    if reading.status == WRONG_KEY:
        return walk.report((None, f"checkpoint {reading.path} is {reading.detail}"), reading.status)
    problem = walk.purge_log_problem() or walk.records_problem(rows)
    if problem:
        return walk.report(problem, reading.status)
    problem = _checkpoint_problem(reading, walk.state())
    if problem:
        return walk.report(problem, CHECKPOINT_MISMATCH if reading.status == OK else reading.status)
    return walk.report(None, f"{reading.path}, key {key.key_id}" if reading.status == OK
                       else f"none yet at {reading.path}: the store is empty")


def verify_for_acceptance(key: AuditKey, purge_rows: list[Any], first_signed_record: int,
                          rows: Iterator[Any]) -> tuple[VerifyReport, dict[str, int]]:
    """The chain walked without a checkpoint, records and purge entries written before signing accepted
    unsigned; the report and those limits. AuditIntegrityError when the chain itself is broken."""
    limits = {"record": first_signed_record, "purge": 1 + max(
        (row.id for row in purge_rows if row.entry_mac is None), default=0)}
    walk = _ChainWalk(key, purge_rows, limits)
    problem = walk.purge_log_problem() or walk.records_problem(rows)
    report = walk.report(problem, "accepted")
    if problem:
        raise AuditIntegrityError(f"checkpoint not written: the chain itself is broken: {report.summary()}")
    return report, limits


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
            fields = purge_fields(row._mapping)
            entry = {k: v for k, v in fields.items() if k != "entry_hash"}
            if row.id != number or row.prev_entry_hash != prev_hash or chain_hash(prev_hash, entry) != row.entry_hash:
                return row.first_id, f"purge-log entry {row.id} was altered or removed (its hash link does not match)"
            problem = retention_problem(row) or self._signature_problem(
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
        if purge_fields(logged._mapping) != recorded or logged.record_id != row.id:
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


# ----------------------------------------------------------------------------- against the checkpoint

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
