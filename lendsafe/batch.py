"""Notices for a whole CSV of applications: one PDF per denial, a notice of incompleteness per row that
lacks required fields, a manifest, and the rows that failed.

Shared by `lendsafe notices` and the dashboard's batch page. Invalid rows (a wrong value, or an
explanation that fails verification at issue time) are reported with their problems and the rest
are processed.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lendsafe.errors import InvalidApplicationError
from lendsafe.issuance import Issued, IssuedIncomplete, Issuer, default_actor, explanation_failures
from lendsafe.notice import NoticeSettings

INCOMPLETE = "incomplete"          # the manifest's decision for a notice of incompleteness

MANIFEST_COLUMNS = ("row", "id", "decision", "reasons", "sha256", "path", "check", "audit_id")
ERROR_COLUMNS = ("row", "problems")
MANIFEST_NAME = "manifest.csv"
ERRORS_NAME = "errors.csv"
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ManifestRow:
    """One processed application: its notice (denials only) and the notice's sha256."""

    row: int
    id: str            # notice document id ("" for approvals)
    decision: str      # "deny" | "approve" | "incomplete"
    reasons: str       # reason codes, most important first (missing fields for "incomplete"), ";"-separated
    sha256: str        # sha256 of the PDF bytes
    path: str          # PDF file name inside the output folder
    check: str         # "pass" | "fail: <checks>" | "" (no notice)
    audit_id: str = ""  # audit record id ("" when no audit store was given)

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in MANIFEST_COLUMNS}


@dataclass(frozen=True)
class BatchError:
    row: int
    problems: tuple[str, ...]


@dataclass
class BatchResult:
    out_dir: Path
    rows: list[ManifestRow] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return len(self.rows)

    @property
    def documents(self) -> list[ManifestRow]:
        """Rows with a PDF: adverse-action notices and notices of incompleteness."""
        return [r for r in self.rows if r.path]

    @property
    def notices(self) -> list[ManifestRow]:
        """Rows with an adverse-action notice."""
        return [r for r in self.documents if r.decision != INCOMPLETE]

    @property
    def incomplete(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.decision == INCOMPLETE]

    @property
    def failed_checks(self) -> list[ManifestRow]:
        return [r for r in self.rows if r.check.startswith("fail")]

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @property
    def errors_path(self) -> Path:
        return self.out_dir / ERRORS_NAME


def _problems(error: Any) -> tuple[str, ...]:
    problems = getattr(error, "problems", None) or error
    return tuple(str(p) for p in problems) if isinstance(problems, (list, tuple)) else (str(problems),)


def _notice_row(row: int, issued: Issued, out_dir: Path) -> ManifestRow:
    """The manifest row of one issued decision; writes its notice PDF (denials only) into `out_dir`."""
    decision = issued.decision
    codes = ";".join(r.code for r in decision.reasons)
    audit_id = "" if issued.record_id is None else str(issued.record_id)
    if issued.notice is None:
        return ManifestRow(row, "", decision.decision, codes, "", "", "", audit_id)
    name = f"notice_row{row:05d}_{issued.notice.document_id}.pdf"
    (out_dir / name).write_bytes(issued.pdf)
    verdict = "pass" if issued.check.passed else "fail: " + ", ".join(issued.check.failures())
    return ManifestRow(row, issued.notice.document_id, decision.decision, codes,
                       hashlib.sha256(issued.pdf).hexdigest(), name, verdict, audit_id)


def _incomplete_row(row: int, issued: IssuedIncomplete, out_dir: Path) -> ManifestRow:
    """The manifest row of a notice of incompleteness; writes its PDF into `out_dir`."""
    name = f"incomplete_row{row:05d}_{issued.notice.document_id}.pdf"
    (out_dir / name).write_bytes(issued.pdf)
    verdict = "pass" if issued.check.passed else "fail: " + ", ".join(issued.check.failures())
    return ManifestRow(row, issued.notice.document_id, INCOMPLETE, ";".join(issued.record["missing"]),
                       hashlib.sha256(issued.pdf).hexdigest(), name, verdict, "")


def run_batch(csv_path: Path | str, out_dir: Path | str, pipeline, settings: NoticeSettings | None = None,
              progress: Callable[[int, int], None] | None = None, *, dataset: str | None = None,
              notice_date: dt.date | None = None, chunk_size: int = 8, audit: Any = None,
              actor: str | None = None, incomplete: bool = True) -> BatchResult:
    """Score every row of `csv_path` with `pipeline` and write a notice PDF per denial into `out_dir`.

    Rows are decided `chunk_size` at a time (``pipeline.run_many``: batched scoring and generation);
    `progress(done, total)` is called after each chunk. Every decision is recorded in `audit` (an
    ``AuditStore``) when given, a chunk's decisions in one transaction. A row that lacks required
    fields gets a notice of incompleteness (``incomplete=False``: an error instead). A denial whose
    explanation fails verification at issue time is not issued and is listed as an error. The
    manifest and error list are written as CSV files in `out_dir`.
    """
    from lendsafe.incomplete import read_csv

    settings = settings or NoticeSettings()
    notice_date = notice_date or dt.date.today()
    dataset = dataset or getattr(pipeline, "dataset", None) or getattr(getattr(pipeline, "settings", None),
                                                                        "dataset", "hmda")
    issuer = Issuer(pipeline, notice_settings=settings, audit=audit, actor=actor or default_actor("batch"))
    result = BatchResult(Path(out_dir))
    result.out_dir.mkdir(parents=True, exist_ok=True)
    rows = read_csv(Path(csv_path), dataset)
    step = max(chunk_size, 1)
    for start in range(0, len(rows), step):
        _run_chunk(rows[start:start + step], pipeline, issuer, result, dataset, notice_date, incomplete)
        if progress:
            progress(min(start + step, len(rows)), len(rows))
    result.rows.sort(key=lambda r: r.row)
    result.errors.sort(key=lambda e: e.row)
    write_manifest(result)
    return result


def _run_chunk(chunk: list, pipeline, issuer: Issuer, result: BatchResult, dataset: str,
               notice_date: dt.date, incomplete: bool) -> None:
    """Decide, verify, issue and record one chunk of rows, adding to `result`."""
    result.errors += [BatchError(r.row, _problems(r.error)) for r in chunk if r.error is not None]
    lacking = [r for r in chunk if r.triage is not None and r.triage.incomplete]
    if incomplete:
        result.rows += [_incomplete_row(r.row, issuer.issue_incomplete(r.triage, dataset, notice_date=notice_date),
                                        result.out_dir) for r in lacking]
    else:
        result.errors += [BatchError(r.row, tuple(f"{name} is required; it is missing" for name in r.triage.missing))
                          for r in lacking]
    valid = [(r.row, r.triage.application) for r in chunk if r.triage is not None and not r.triage.incomplete]
    judged = [(row, outcome, _refusal(outcome)) for row, outcome in _decide(pipeline, valid)]
    result.errors += [BatchError(row, refusal) for row, _, refusal in judged if refusal]
    decided = [(row, outcome) for row, outcome, refusal in judged if not refusal]
    issued = issuer.issue_decisions([decision for _, decision in decided], notice_date=notice_date)
    result.rows += [_notice_row(row, one, result.out_dir) for (row, _), one in zip(decided, issued)]


def _refusal(outcome: Any) -> tuple[str, ...]:
    """Why an outcome cannot be issued: the pipeline refused the row, or its explanation fails the verifier."""
    if isinstance(outcome, InvalidApplicationError):
        return tuple(outcome.problems)
    failures = explanation_failures(outcome)
    return tuple(f"explanation fails verification at issue time ({name}: {detail}); not issued"
                 for name, detail in failures.items())


def _decide(pipeline, valid: list[tuple[int, dict]]) -> list[tuple[int, Any]]:
    """(row, Decision or InvalidApplicationError) per application: batched when the pipeline can,
    one by one when the batch is refused, so one bad row does not sink the others."""
    if not valid:
        return []
    if hasattr(pipeline, "run_many"):
        try:
            return list(zip((row for row, _ in valid), pipeline.run_many([app for _, app in valid])))
        except InvalidApplicationError:
            pass
    outcomes = []
    for row, application in valid:
        try:
            outcomes.append((row, pipeline.run(application)))
        except InvalidApplicationError as exc:
            outcomes.append((row, exc))
    return outcomes


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def manifest_csv(result: BatchResult) -> str:
    return _csv_text(MANIFEST_COLUMNS, [r.as_row() for r in result.rows])


def errors_csv(result: BatchResult) -> str:
    return _csv_text(ERROR_COLUMNS, [{"row": e.row, "problems": "; ".join(e.problems)} for e in result.errors])


def write_manifest(result: BatchResult) -> None:
    result.manifest_path.write_text(manifest_csv(result), encoding="utf-8")
    result.errors_path.write_text(errors_csv(result), encoding="utf-8")


def zip_batch(result: BatchResult) -> bytes:
    """The manifest, the error list and every PDF as one zip (same bytes for the same batch)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [(MANIFEST_NAME, manifest_csv(result).encode("utf-8")),
                   (ERRORS_NAME, errors_csv(result).encode("utf-8"))]
        entries += [(r.path, (result.out_dir / r.path).read_bytes()) for r in result.documents]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
