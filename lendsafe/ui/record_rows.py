"""Notices and audit records as the dashboard shows them, computed without Streamlit: PDF page images,
the notice check as rows, and audit records as rows with their applicant, reasons and search matches.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from lendsafe.errors import ArtifactNotFoundError
from lendsafe.ui.tables import CHECK_MARKS

PREVIEW_DPI = 110


def pdf_page_images(pdf: bytes, dpi: int = PREVIEW_DPI) -> list[bytes]:
    """Each page of a PDF as PNG bytes, rendered by poppler's ``pdftoppm``."""
    if not shutil.which("pdftoppm"):
        raise ArtifactNotFoundError("pdftoppm not found: install Debian's poppler-utils (make system-run)")
    with tempfile.TemporaryDirectory(prefix="lendsafe-preview-") as folder:
        source = Path(folder) / "notice.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(source), str(Path(folder) / "page")],
                       check=True, capture_output=True, timeout=60)
        pages = sorted(Path(folder).glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        return [page.read_bytes() for page in pages]


def notice_check_frame(check: Any) -> pd.DataFrame:
    """The notice completeness check (``lendsafe.notice.check.check_pdf``) as rows."""
    results = check.to_dict().get("checks", {}) if check is not None else {}
    return pd.DataFrame([{"check": name.replace("_", " "), "result": CHECK_MARKS[bool(r["passed"])],
                          "detail": r.get("detail", "")} for name, r in results.items()],
                        columns=["check", "result", "detail"])


RECORD_COLUMNS = ("id", "created", "applicant", "application id", "dataset", "decision", "first reason",
                  "writer", "actor")


def record_application(record: Any) -> dict[str, Any]:
    """The application a record is about, whatever its kind (decision, incomplete, refusal); {} for a purge."""
    content = record.content or {}
    refused = content.get("refused") or {}
    holder = content.get("decision") or content.get("record") or refused.get("decision") or refused.get("record") or {}
    return holder.get("application") or {}


def record_reasons(record: Any) -> list[dict[str, Any]]:
    content = record.content or {}
    decision = content.get("decision") or (content.get("refused") or {}).get("decision") or {}
    return list(decision.get("reasons") or ())


def record_applicant(record: Any) -> tuple[str, str]:
    """(applicant name, application id) of a record ("" when not given)."""
    application = record_application(record)
    applicant = application.get("applicant") or {}
    name = applicant.get("name", "") if isinstance(applicant, dict) else str(applicant)
    return str(name or ""), str(application.get("application_id") or "")


def records_frame(records: Iterable[Any]) -> pd.DataFrame:
    """Audit records as rows an analyst reads: when, who applied, what was decided, who acted."""
    lines = []
    for r in records:
        name, application_id = record_applicant(r)
        lines.append({"id": r.id, "created": r.created_at[:19].replace("T", " "), "applicant": name,
                      "application id": application_id, "dataset": r.dataset, "decision": r.decision,
                      "first reason": r.first_reason or "", "writer": WRITER_LABELS.get(r.writer or "", r.writer or ""),
                      "actor": r.actor})
    return pd.DataFrame(lines, columns=list(RECORD_COLUMNS))


WRITER_LABELS = {"lora": "language model", "template": "template writer"}


def record_matches(record: Any, text: str) -> bool:
    """Whether a record's applicant name, application id, reason codes or statements contain ``text``
    (case-insensitive); an empty text matches every record."""
    wanted = text.strip().casefold()
    if not wanted:
        return True
    reasons = record_reasons(record)
    fields = [*record_applicant(record), *(r.get("code", "") for r in reasons), *(r.get("statement", "") for r in reasons)]
    return any(wanted in str(value).casefold() for value in fields)


def reason_matches(record: Any, text: str) -> bool:
    """Whether any principal reason's code or statement contains ``text`` (case-insensitive)."""
    wanted = text.strip().casefold().replace(" ", "_")
    if not wanted:
        return True
    reasons = record_reasons(record)
    return any(wanted in r.get("code", "").casefold() or text.strip().casefold() in r.get("statement", "").casefold()
               for r in reasons)
