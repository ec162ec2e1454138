"""Notices for a whole file of applications (CSV or Parquet, ``lendsafe.issue.inputs``): one PDF per denial,
a notice of incompleteness per row that lacks required fields, a manifest, and the rows that failed.

Shared by `lendsafe notices` and the dashboard's batch page. A row that cannot be decided or issued
(a wrong value, an explanation that fails verification at issue time, a notice that fails its own
completeness check) goes to errors.csv with the reason and the rest are processed.

``issue_rows`` issues a list of rows into a folder: the whole input in one process (``run_batch``), or one
partition on a cluster worker (``lendsafe.issue.cluster``).

Rows are numbered by ``data_row``: 1 is the first CSV record after the header (a blank line counts as a
record, a quoted cell spanning lines does not add one), the same number in manifest.csv, errors.csv, the
PDF file names and ``BatchResult``. Every manifest and error line also names the row's application_id and
applicant_name as the CSV gives them (blank when the file has no such column).

A batch is resumable and idempotent. Every row's issue is keyed by its application id (or its data row
when it has none), its content hash and the dataset; the key also names the notice's document
id, so identical rows get distinct documents. The audit store holds each key once (a unique index):
a row another batch (another folder, another process) issued first is listed with status
"already issued", its document id and audit record, and no PDF here. A notice refused at issue
(completeness check, explanation verification) is recorded as a refusal and listed in errors.csv with
the check that refused it and the refusal's audit record. Without an audit store, only the folder's
own manifest guards against issuing twice. A group of rows is issued in this order: PDFs written
atomically (temporary file, fsync, rename), then the group's audit records committed (each naming its
key and its PDF's sha256), then its manifest.csv and errors.csv lines appended and fsynced. A rerun
into the same folder reads the manifest and the audit store's keys and issues exactly the rows that are
missing (rows listed as errors are tried again); a record whose manifest line was lost is listed again
(its PDF regenerated from the record when it is missing). Another folder is another batch, whose
rows already issued are listed as such, not issued again.

A batch's decisions are recorded without their timings (``without_timings``): the notice's evidence hash
covers its decision, so the same row, models and notice date give the same notice bytes in one process,
on a cluster or in a rerun.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lendsafe.audit.records import REVIEW_KIND, AuditEntry
from lendsafe.audit.replay import replay_notice
from lendsafe.errors import ConfigurationError, InvalidApplicationError, LendSafeError
from lendsafe.issue.batchfolder import (ALREADY_ISSUED, HELD, INCOMPLETE, ISSUED, BatchError, BatchFolder, BatchResult,
                                        ManifestRow, RowId, write_atomic)
from lendsafe.issue.inputs import read_input
from lendsafe.issue.issuer import IssueRefused, Issuer, default_actor
from lendsafe.canonical import canonical_json
from lendsafe.decide.decision import Decision
from lendsafe.notice.settings import NoticeSettings

# hold(decision, issue key, batch id): the record holding a denial for review instead of its notice, or None.
Hold = Callable[[Decision, str, str], Any]
# Document id prefix and PDF file name prefix per kind of notice.
DOCUMENTS = {"deny": ("AAN", "notice"), INCOMPLETE: ("NOI", "incomplete")}


# ----------------------------------------------------------------------------- keys and names

def issue_key(row: Any, dataset: str) -> str:
    """The key of one row's issue: its application id (else its data row), content hash and dataset. The audit
    store holds each key once, so an application is issued once whichever batch, folder or process gets to it
    first; a row without an application id is known by its data row and content only (identical rows at the
    same place of two files are one issue: give rows application ids to tell them apart)."""
    who = f"application_id {row.application_id}" if row.application_id else f"data_row {row.data_row}"
    text = canonical_json({"dataset": dataset, "who": who, "content": row.content_sha256})
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def document_id(kind: str, notice_date: dt.date, key: str) -> str:
    return f"{DOCUMENTS[kind][0]}-{notice_date:%Y%m%d}-{key[:16]}"


def pdf_name(kind: str, data_row: int, doc_id: str) -> str:
    return f"{DOCUMENTS[kind][1]}_row{data_row:05d}_{doc_id}.pdf"


def _problems(error: Any) -> tuple[str, ...]:
    problems = getattr(error, "problems", None) or error
    return tuple(str(p) for p in problems) if isinstance(problems, (list, tuple)) else (str(problems),)


# ----------------------------------------------------------------------------- the run

Progress = Callable[[int, int, float, float], None]   # (done, total, rows per second, ETA in seconds)


class ProgressMeter:
    """Calls `progress(done, total, rows_per_s, eta_s)` once per finished row. The rate counts only the rows
    this run processed (rows an earlier run finished are done at the start); the ETA is the remaining rows
    at that rate (``math.inf`` until a row has been processed)."""

    def __init__(self, progress: Progress | None, total: int, clock: Callable[[], float] = time.monotonic):
        self.progress, self.total, self.clock = progress, total, clock
        self.started, self.done, self.resumed = clock(), 0, 0

    def start(self, resumed: int) -> None:
        self.done = self.resumed = resumed
        self._report()

    def advance(self, rows: int = 1) -> None:
        for _ in range(rows):
            self.done += 1
            self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = (self.done - self.resumed) / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else (0.0 if self.done >= self.total else math.inf)
        self.progress(self.done, self.total, rate, eta)


def run_batch(source: Path | str, out_dir: Path | str, pipeline, settings: NoticeSettings | None = None,
              progress: Progress | None = None, *, dataset: str | None = None,
              notice_date: dt.date | None = None, chunk_size: int = 8, audit: Any = None,
              actor: str | None = None, incomplete: bool = True, hold: Hold | None = None) -> BatchResult:
    """Score every row of `source` (a CSV, a Parquet file or a folder of Parquet parts) with `pipeline` and
    write a notice PDF per denial into `out_dir`.

    Rows are decided `chunk_size` at a time (``pipeline.run_many``: batched scoring and generation);
    `progress(done, total, rows_per_s, eta_s)` is called once at the start (rows an earlier run finished)
    and after every finished row (see ``ProgressMeter``). Every decision is recorded in `audit` (an
    ``AuditStore``) when given, a chunk's decisions in one transaction. A row that lacks required
    fields gets a notice of incompleteness (``incomplete=False``: an error instead). Rows done by an
    earlier run into `out_dir` (or recorded in `audit` under their issue key) are not issued again.
    `hold(decision, key, batch)` (``lendsafe.review.batch_holder``, passed in by the face) returns the record
    that holds a denial for review instead of issuing its notice, or None; it needs an audit store.
    The same rows on a cluster: ``lendsafe.issue.cluster.run_on_cluster``.
    """
    settings = settings or NoticeSettings()
    dataset = dataset or getattr(pipeline, "dataset", None) or getattr(getattr(pipeline, "settings", None),
                                                                        "dataset", "hmda")
    rows = read_input(source, dataset)        # a refused file writes nothing
    issuer = Issuer(pipeline, notice_settings=settings, audit=audit, actor=actor or default_actor("batch"))
    meter = ProgressMeter(progress, len(rows))
    with BatchFolder(out_dir) as folder:
        result = issue_rows(issuer, folder, rows, dataset, notice_date or dt.date.today(), meter,
                            chunk_size=chunk_size, incomplete=incomplete, hold=hold)
        folder.finish(result)
    return result


def issue_rows(issuer: Issuer, folder: Any, rows: list, dataset: str, notice_date: dt.date, meter: ProgressMeter,
               *, chunk_size: int = 8, incomplete: bool = True, hold: Hold | None = None) -> BatchResult:
    """Issue `rows` (read by ``lendsafe.issue.inputs``) into `folder` (a ``BatchFolder``, or one partition's
    ``PartFolder`` on a worker), `chunk_size` at a time, skipping what an earlier run or batch issued; the
    caller finishes the folder. Denials `hold` selects are held for review instead (see ``run_batch``)."""
    if hold is not None and issuer.audit is None:
        raise ConfigurationError("hold: holding notices for review needs an audit store (the queue is kept there)")
    job = _Batch(issuer, folder, dataset, notice_date, incomplete, meter, hold)
    todo = job.resume(rows)
    meter.start(len(rows) - len(todo))
    step = max(chunk_size, 1)
    for start in range(0, len(todo), step):
        job.run_chunk(todo[start:start + step])
    return job.result


@dataclass(frozen=True)
class _Pending:
    """One row ready to record: its audit entry and, for a notice, the PDF written before the record."""

    who: RowId
    key: str
    entry: Any                       # AuditEntry | IncompleteEntry | RefusalEntry
    listing: tuple = ()              # decision, reasons (the manifest's) for an issued row
    pdf: bytes | None = None
    name: str = ""                   # the PDF's file name in the folder
    problems: tuple[str, ...] = ()   # why a refused row was refused
    status: str = ISSUED             # HELD: the entry holds the denial for review


@dataclass
class _Batch:
    issuer: Issuer
    folder: BatchFolder
    dataset: str
    notice_date: dt.date
    incomplete: bool
    meter: ProgressMeter
    hold: Hold | None = None
    result: BatchResult = None
    batch: str = ""

    def __post_init__(self) -> None:
        self.result = BatchResult(self.folder.path)
        self.batch = self.folder.batch_id()

    # -- what an earlier run (or another batch) did
    def resume(self, rows: list) -> list[tuple[Any, str]]:
        """The (row, key) pairs still to issue. Rows an earlier run listed in the manifest (with their PDF)
        or recorded in the audit store under their key are taken as done; rows it listed as errors are
        tried again; a row repeating an earlier one (same application id and content) is an error."""
        done = {r["key"]: ManifestRow.from_row(r) for r in self.folder.manifest.load() if self.folder.has_pdf(r)}
        self.folder.errors.load()
        keyed = [(row, issue_key(row, self.dataset)) for row in rows]
        issued = self.issuer.audit.issued([key for _, key in keyed]) if self.issuer.audit is not None else {}
        todo, first, found = [], {}, []
        for row, key in keyed:
            who = RowId.of(row)
            if key in first:
                found.append(BatchError.of(who, (f"repeats data_row {first[key]} (same application_id and "
                                                 f"content); issued once, for data_row {first[key]}",), key))
                continue
            first[key] = row.data_row
            if key in done:
                self.result.rows.append(done[key])
                self.result.resume(row.data_row)
            elif key in issued:
                found.append(self._listed(who, key, issued[key]))
                self.result.resume(row.data_row)
            else:
                todo.append((row, key))
        self._append(found)
        return todo

    def _listed(self, who: RowId, key: str, record: Any) -> ManifestRow | BatchError:
        """The manifest row of a record already in the audit store under `key`: this batch's own (its
        manifest line was lost; the PDF written again from the record when it is not in the folder), or
        another batch's, listed as already issued with its document id and no PDF here."""
        content = record.content
        kind, codes = _recorded_listing(content)
        values = (content.get("document_id") or "", kind, codes, record.notice_sha256 or "")
        if record.kind == REVIEW_KIND:
            return ManifestRow.listing(who, key, *values, "", "", str(record.id), HELD)
        if content.get("batch") != self.batch:
            return ManifestRow.listing(who, key, *values, "", "", str(record.id), ALREADY_ISSUED)
        if not content.get("notice"):
            return ManifestRow.listing(who, key, *values, "", "", str(record.id), ISSUED)
        name = pdf_name(kind if kind in DOCUMENTS else "deny", who.data_row, content["document_id"])
        manifest_row = ManifestRow.listing(who, key, *values, name, "pass", str(record.id), ISSUED)
        if not self.folder.has_pdf(manifest_row.as_row()):
            replayed = replay_notice(self.issuer.audit, record.id)
            if not replayed.identical:
                return BatchError.of(who, (f"issued earlier as audit record {record.id}, but its notice PDF is not "
                                           "in the folder and does not regenerate identically; export it with "
                                           f"`lendsafe audit export {record.id}`",), key)
            write_atomic(self.folder.path / name, replayed.pdf)
        return manifest_row

    # -- one group of rows
    def run_chunk(self, chunk: list[tuple[Any, str]]) -> None:
        """Decide, verify and render one group of rows; write its PDFs; record the group (decisions, notices of
        incompleteness, refusals) in one transaction; list it."""
        errors = [BatchError.of(RowId.of(row), _problems(row.error), key) for row, key in chunk
                  if row.error is not None]
        lacking = [(row, key) for row, key in chunk if row.triage is not None and row.triage.incomplete]
        valid = [(row, key) for row, key in chunk if row.triage is not None and not row.triage.incomplete]
        prepared = [self._incomplete(row, key) for row, key in lacking] + self._decided(valid)
        pending = [item for item in prepared if isinstance(item, _Pending)]
        errors += [item for item in prepared if isinstance(item, BatchError)]
        for item in pending:
            if item.pdf is not None:
                write_atomic(self.folder.path / item.name, item.pdf)
        appended = self.issuer.append([item.entry for item in pending])
        self._append(errors + [self._outcome(item, done) for item, done in zip(pending, appended)])
        self.meter.advance(len(chunk))

    def _append(self, items: list) -> None:
        rows = [item for item in items if isinstance(item, ManifestRow)]
        errors = [item for item in items if isinstance(item, BatchError)]
        self.folder.manifest.append([r.as_row() for r in rows])
        self.folder.errors.append([e.as_row() for e in errors])
        self.result.rows += rows
        self.result.errors += errors

    def _outcome(self, item: _Pending, appended: Any) -> ManifestRow | BatchError:
        """The listing of a recorded row: issued, refused, or found already issued by another batch (its
        PDF here is removed: it was never issued)."""
        audit_id = "" if appended is None else str(appended.record.id)
        if item.problems:
            return BatchError.of(item.who, item.problems, item.key, item.entry.reason, audit_id)
        if appended is not None and not appended.new:
            if item.name:
                (self.folder.path / item.name).unlink(missing_ok=True)
            return self._listed(item.who, item.key, appended.record)
        sha = hashlib.sha256(item.pdf).hexdigest() if item.pdf is not None else ""
        return ManifestRow.listing(item.who, item.key, getattr(item.entry, "notice", None) and item.entry.notice.document_id
                                   or "", *item.listing, sha, item.name, "pass" if item.name else "", audit_id,
                                   item.status)

    def _incomplete(self, row: Any, key: str) -> _Pending | BatchError:
        who = RowId.of(row)
        if not self.incomplete:
            return BatchError.of(who, tuple(f"{name} is required; it is missing" for name in row.triage.missing), key)
        try:
            issued = self.issuer.render_incomplete(row.triage, self.dataset, notice_date=self.notice_date,
                                                   document_id=document_id(INCOMPLETE, self.notice_date, key))
        except IssueRefused as refused:
            return _Pending(who, key, refused.refusal(key), problems=_problems(refused))
        except LendSafeError as exc:
            return BatchError.of(who, _problems(exc), key)
        return _Pending(who, key, issued.entry(key, self.batch), (INCOMPLETE, ";".join(issued.record["missing"])),
                        issued.pdf, pdf_name(INCOMPLETE, who.data_row, issued.notice.document_id))

    def _decided(self, valid: list[tuple[Any, str]]) -> list[_Pending | BatchError]:
        """Decide every valid row (batched) and render its notice: an entry to record per row, a refusal
        for a notice refused at issue, an error for a row that cannot be decided."""
        outcomes = [without_timings(outcome) for outcome in
                    _decide(self.issuer.pipeline, [row.triage.application for row, _ in valid])]
        return [self._rendered(RowId.of(row), key, outcome) for (row, key), outcome in zip(valid, outcomes)]

    def _rendered(self, who: RowId, key: str, decision: Any) -> _Pending | BatchError:
        try:
            if isinstance(decision, LendSafeError):
                raise decision
            notice, pdf, _ = self.issuer.render(decision, notice_date=self.notice_date,
                                                document_id=document_id("deny", self.notice_date, key))
        except IssueRefused as refused:
            return _Pending(who, key, refused.refusal(key), problems=_problems(refused))
        except LendSafeError as exc:
            return BatchError.of(who, _problems(exc), key)
        listing = (decision.decision, ";".join(r.code for r in decision.reasons))
        held = self.hold(decision, key, self.batch) if self.hold is not None and notice is not None else None
        if held is not None:             # checked as at issue, then held: no notice until a reviewer approves
            return _Pending(who, key, held, listing, status=HELD)
        name = "" if notice is None else pdf_name("deny", who.data_row, notice.document_id)
        return _Pending(who, key, AuditEntry(decision, notice, pdf, key, self.batch), listing, pdf, name)


def _recorded_listing(content: dict[str, Any]) -> tuple[str, str]:
    """The manifest's decision and reasons of a recorded decision, notice of incompleteness or hold."""
    if content.get("kind") == "incomplete":
        return INCOMPLETE, ";".join(content["record"]["missing"])
    decision = content["decision"]
    return decision["decision"], ";".join(r["code"] for r in decision.get("reasons") or ())


# Measurements a decision carries that are not evidence (how long it took, whether a text came from a cache).
TIMINGS = ("latency_ms", "load_ms")
ATTEMPT_TIMINGS = ("latency_ms", "cached")


def without_timings(decision: Any) -> Any:
    """A batch's decision without its timings: its notice, whose evidence hash covers the decision, is then a
    pure function of the row, the models and the notice date (the same bytes in one process, on a cluster or
    in a rerun). Anything else (an error) is returned as it is."""
    if not isinstance(decision, Decision):
        return decision
    verification = decision.verification
    if verification and verification.get("attempts"):
        attempts = [{**attempt, **dict.fromkeys(ATTEMPT_TIMINGS)} for attempt in verification["attempts"]]
        verification = {**verification, "attempts": attempts}
    return decision.with_updates(verification=verification, **dict.fromkeys(TIMINGS))


def _decide(pipeline, applications: list[dict]) -> list[Any]:
    """A Decision or InvalidApplicationError per application: batched when the pipeline can, one by one
    when the batch is refused, so one bad row does not sink the others."""
    if not applications:
        return []
    if hasattr(pipeline, "run_many"):
        try:
            return list(pipeline.run_many(applications))
        except InvalidApplicationError:
            pass
    outcomes = []
    for application in applications:
        try:
            outcomes.append(pipeline.run(application))
        except InvalidApplicationError as exc:
            outcomes.append(exc)
    return outcomes
