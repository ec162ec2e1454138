"""``AuditStore``: the append-only, hash-chained store of every decision, refusal and purge.

``append`` is the one way in (``record`` and ``record_many`` wrap it), ``purge`` the one way out.
A write reads the chain head and inserts under the store's exclusive lock (``database.locked``);
``record`` writes one record per transaction, ``record_many`` appends a group in one transaction (group
commit: one fsync for the group, all of it or none of it). A record made with an issue key (a batch
row: application id or data row, content hash, dataset) is unique under that key (a unique index since
migration 0003): a second process issuing the same application finds the first one's record instead of
committing another. Each write carries the signed checkpoint forward (``anchor.Checkpoint``).

What each record holds is ``records``; how records link, are signed and verified is ``chain``; the
retention rule is ``retention``; rebuilding the notice a record holds is ``replay``, and the evidence
pack ``evidence`` (both above this module).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lendsafe.audit import chain, database
from lendsafe.audit.anchor import AuditKey, ChainState, Checkpoint, checkpoint_path, store_label
from lendsafe.audit.chain import CHECKPOINT_MISMATCH, GENESIS_HASH, VerifyReport
from lendsafe.audit.database import last_record_query, tables
from lendsafe.audit.records import (AuditEntry, AuditRecord, Appended, check_actor, entry_bodies, format_timestamp,
                                    purge_body)
from lendsafe.audit.retention import PurgeResult, check_retention, months_before, purge_fields, purge_request
from lendsafe.config import Settings
from lendsafe.decide.decision import Decision
from lendsafe.errors import AuditIntegrityError, ConfigurationError
from lendsafe.redaction import printable, redact_url

log = logging.getLogger(__name__)

READ_BATCH = 1000          # rows per query when walking the chain or looking up issue keys


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class AuditStore:
    """Append-only store of decisions; ``record`` is the one way in, ``purge`` the one way out."""

    def __init__(self, url: str | None = None, *, clock: Callable[[], datetime] | None = None,
                 key: AuditKey | bytes | str | None = None, checkpoint: str | Path | None = None):
        """``key``: the audit key (default ``LENDSAFE_AUDIT_KEY`` or ``<home>/audit.key``);
        ``checkpoint``: the checkpoint file (default: see ``lendsafe.audit.anchor.checkpoint_path``)."""
        from sqlalchemy.engine import make_url

        settings = Settings() if url is None or key is None or checkpoint is None else None
        url = url if url is not None else settings.database_url
        self.url = url
        self._clock = clock or _utc_now
        self._engine = database.create_engine(url)
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
            database.migrate(self._engine)
        except DBAPIError as exc:
            self._engine.dispose()
            detail = printable(redact_url(str(getattr(exc, "orig", exc)).splitlines()[0]))[:300]
            raise ConfigurationError(f"audit store {self.safe_url} cannot be opened: {detail}") from None

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

    def append(self, entries: Sequence[Any], *, actor: str, notice_settings: Any | None = None,
               unless: Sequence[str] = ()) -> list[Appended]:
        """Append several entries in one transaction, each linked to the one before.

        ``entries`` are ``AuditEntry(decision, notice, notice_pdf, issue_key)`` (or plain 3-tuples),
        ``IncompleteEntry`` or ``RefusalEntry``. All of them are checked and serialised before the lock is
        taken, so one bad entry writes nothing. One commit (one fsync on SQLite) covers the whole group.
        An entry whose issue key is already recorded (by another process, or earlier in the group) is not
        recorded again: ``Appended(existing record, new=False)`` stands in its place. When any of the
        issue keys ``unless`` is already recorded (checked under the same lock), nothing is appended: every
        entry gets ``Appended(that record, new=False)`` (a review action the item's outcome or a newer
        revision has overtaken).
        """
        bodies = entry_bodies(entries, actor, notice_settings)
        if not bodies:
            return []
        records, _ = tables()
        with database.locked(self._engine) as conn:
            before = self._state(conn)
            overtaken = self._keyed(conn, list(unless))
            if overtaken:
                return [Appended(next(iter(overtaken.values())), False) for _ in bodies]
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
            after = ChainState(*head, before.count + len(linked), before.purges, before.purge_hash)
            self.checkpoint.advance(before, after)
        self.checkpoint.settle(after)
        return appended

    def _keyed(self, conn: Any, keys: list[str | None]) -> dict[str, AuditRecord]:
        """Issue key -> record for those of `keys` already recorded."""
        from sqlalchemy import select

        records, _ = tables()
        wanted = sorted({key for key in keys if key})
        found: dict[str, AuditRecord] = {}
        for start in range(0, len(wanted), READ_BATCH):
            query = select(records).where(records.c.issue_key.in_(wanted[start:start + READ_BATCH]))
            found.update({row.issue_key: self._to_record(row) for row in conn.execute(query)})
        return found

    def _next_row(self, body: dict[str, Any], head_id: int, head_hash: str,
                  created_at: str | None = None) -> tuple[dict[str, Any], dict]:
        """Table row and content of the record following (head_id, head_hash), stamped now unless told."""
        return chain.link(body, head_id, head_hash, created_at or format_timestamp(self._clock()), self.key)

    def update(self, *_args: Any, **_kwargs: Any) -> None:
        raise AuditIntegrityError("audit records are append-only: update refused (record a new decision instead)")

    def delete(self, *_args: Any, **_kwargs: Any) -> None:
        raise AuditIntegrityError("audit records are append-only: delete refused (only `purge` of records "
                                  "past retention removes records)")

    # -- reading
    def _head(self, conn: Any) -> tuple[int, str]:
        """Id and hash of the last record, else of the latest purge anchor, else genesis."""
        row = conn.execute(last_record_query()).first()
        return (row.id, row.record_hash) if row else self._anchor(conn)

    def _anchor(self, conn: Any) -> tuple[int, str]:
        from sqlalchemy import select

        _, purges = tables()
        row = conn.execute(select(purges.c.last_id, purges.c.anchor_hash)
                           .order_by(purges.c.id.desc()).limit(1)).first()
        return (row.last_id, row.anchor_hash) if row else (0, GENESIS_HASH)

    def head(self) -> tuple[int, str]:
        with database.reading(self._engine) as conn:
            return self._head(conn)

    def _state(self, conn: Any) -> ChainState:
        """Head, record count and purge-log head, read cheaply (ids are contiguous after the anchor)."""
        from sqlalchemy import select

        _, purges = tables()
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

        records, _ = tables()
        with database.reading(self._engine) as conn:
            row = conn.execute(select(records).where(records.c.id == int(record_id))).first()
        if row is None:
            raise AuditIntegrityError(f"no audit record with id {record_id} (purged or never written)")
        return self._to_record(row)

    def list(self, *, dataset: str | None = None, decision: str | Sequence[str] | None = None,
             writer: str | None = None, actor: str | None = None, reason: str | None = None, since: datetime | str | None = None,
             until: datetime | str | None = None, after_id: int = 0, limit: int | None = 100) -> list[AuditRecord]:
        """Records in chain order, filtered on the indexed columns (reason = first reason code; a tuple or
        list of values matches any of them)."""
        from sqlalchemy import select

        records, _ = tables()
        equal = {"dataset": dataset, "decision": decision, "writer": writer, "actor": actor,
                 "first_reason": reason}
        query = select(records).where(records.c.id > after_id).order_by(records.c.id).limit(limit)
        for column, wanted in equal.items():
            if isinstance(wanted, (tuple, list)):
                query = query.where(records.c[column].in_(list(wanted)))
            elif wanted is not None:
                query = query.where(records.c[column] == wanted)
        if since is not None:
            query = query.where(records.c.created_at >= _as_timestamp(since))
        if until is not None:
            query = query.where(records.c.created_at < _as_timestamp(until))
        with database.reading(self._engine) as conn:
            return [self._to_record(row) for row in conn.execute(query)]

    def keyed_ids(self, *, decision: str, dataset: str | None = None) -> list[tuple[int, str | None]]:
        """(id, issue key) of every record of one decision column, in chain order, without reading content
        (the review queue finds its open items this way)."""
        from sqlalchemy import select

        records, _ = tables()
        query = select(records.c.id, records.c.issue_key).where(records.c.decision == decision).order_by(records.c.id)
        if dataset is not None:
            query = query.where(records.c.dataset == dataset)
        with database.reading(self._engine) as conn:
            return [(row.id, row.issue_key) for row in conn.execute(query)]

    def recorded_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` that some record holds as its issue key (content not read)."""
        from sqlalchemy import select

        records, _ = tables()
        wanted, found = sorted(set(keys)), set()
        with database.reading(self._engine) as conn:
            for start in range(0, len(wanted), READ_BATCH):
                query = select(records.c.issue_key).where(records.c.issue_key.in_(wanted[start:start + READ_BATCH]))
                found.update(row.issue_key for row in conn.execute(query))
        return found

    def get_many(self, ids: Sequence[int]) -> list[AuditRecord]:
        """The records with these ids that exist, in chain order."""
        from sqlalchemy import select

        records, _ = tables()
        wanted, found = sorted({int(i) for i in ids}), []
        with database.reading(self._engine) as conn:
            for start in range(0, len(wanted), READ_BATCH):
                query = select(records).where(records.c.id.in_(wanted[start:start + READ_BATCH])).order_by(records.c.id)
                found += [self._to_record(row) for row in conn.execute(query)]
        return found

    def issued(self, keys: Sequence[str] | None = None) -> dict[str, AuditRecord]:
        """Issue key -> record, for every record made with an issue key, or for those of `keys` (batches look
        here before issuing)."""
        from sqlalchemy import select

        records, _ = tables()
        with database.reading(self._engine) as conn:
            if keys is not None:
                return self._keyed(conn, list(keys))
            query = select(records).where(records.c.issue_key.is_not(None)).order_by(records.c.id)
            return {row.issue_key: self._to_record(row) for row in conn.execute(query)}

    def count(self) -> int:
        from sqlalchemy import func, select

        records, _ = tables()
        with database.reading(self._engine) as conn:
            return conn.execute(select(func.count()).select_from(records)).scalar_one()

    def purges(self) -> list[dict[str, Any]]:
        with database.reading(self._engine) as conn:
            return [dict(row._mapping) for row in self._purge_rows(conn)]

    def _purge_rows(self, conn: Any) -> list[Any]:
        from sqlalchemy import select

        _, purges = tables()
        return list(conn.execute(select(purges).order_by(purges.c.id)))

    def _rows_in_order(self, conn: Any) -> Iterator[Any]:
        from sqlalchemy import select

        records, _ = tables()
        last_id = None
        while True:
            query = select(records).order_by(records.c.id).limit(READ_BATCH)
            if last_id is not None:
                query = query.where(records.c.id > last_id)
            rows = list(conn.execute(query))
            yield from rows
            if len(rows) < READ_BATCH:
                return
            last_id = rows[-1].id

    # -- verification
    def verify(self) -> VerifyReport:
        """Walk the purge log and the record chain, check every signature and the retention rule of every
        purge, then compare the head with the signed checkpoint; name the first broken link (``chain.verify``).

        The walk reads without blocking writers; a checkpoint mismatch (which a write committed during
        the walk could cause) is re-checked under the write lock before it is reported."""
        with database.reading(self._engine) as conn:
            report = self._verify(conn)
        if report.ok or report.checkpoint != CHECKPOINT_MISMATCH:
            return report
        with database.locked(self._engine) as conn:
            return self._verify(conn)

    def _verify(self, conn: Any) -> VerifyReport:
        return chain.verify(self.key, self.checkpoint.read(), self._purge_rows(conn), self._rows_in_order(conn))

    def anchor_checkpoint(self, *, accept: bool = False) -> tuple[VerifyReport, ChainState]:
        """Write the signed checkpoint at the current head.

        Without ``accept`` the store must verify against its checkpoint (or be empty); with it, the
        current head is anchored afresh after a review (the chain must still verify internally; records
        and purge entries written before signing existed are accepted unsigned). The old file is kept.
        """
        with database.locked(self._engine) as conn:
            report = self._verify(conn)
            if report.ok:
                self.checkpoint.reset(report.state(), self.checkpoint.read().limits(), keep_old=False)
                return report, report.state()
            if not accept:
                raise AuditIntegrityError(f"checkpoint not written: {report.summary()} (after a review, "
                                          "`lendsafe audit checkpoint --accept` anchors the current head)")
            return self._accept(conn)

    def _accept(self, conn: Any) -> tuple[VerifyReport, ChainState]:
        report, limits = chain.verify_for_acceptance(self.key, self._purge_rows(conn),
                                                     self._first_unsigned_after(conn), self._rows_in_order(conn))
        self.checkpoint.reset(report.state(), limits)
        log.warning("audit checkpoint %s re-anchored at %s after review", self.checkpoint.where,
                    report.state().describe())
        return report, report.state()

    def _first_unsigned_after(self, conn: Any) -> int:
        from sqlalchemy import func, select

        records, _ = tables()
        last_unsigned = conn.execute(select(func.max(records.c.id)).where(records.c.record_mac.is_(None))).scalar()
        return 1 + (last_unsigned or 0)

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
        check_actor(actor)
        purge = purge_request(months, credit, actor, now or self._clock())
        with database.locked(self._engine) as conn:
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

        records, purges = tables()
        first_kept = conn.execute(select(func.min(records.c.id))
                                  .where(records.c.created_at >= purge["cutoff"])).scalar()
        doomed = select(records.c.id, records.c.record_hash, records.c.created_at)
        if first_kept is not None:
            doomed = doomed.where(records.c.id < first_kept)
        rows = list(conn.execute(doomed.order_by(records.c.id)))
        if not rows:
            return PurgeResult(0, None, None, None, purge["cutoff"]), None
        entry = chain.purge_log_entry(self.key, rows, purge, before)
        conn.execute(purges.insert().values(**entry))
        body = purge_body(purge["actor"], purge_fields(entry))
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


def _as_timestamp(value: datetime | str) -> str:
    return format_timestamp(value) if isinstance(value, datetime) else value
