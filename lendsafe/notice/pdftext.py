"""A notice PDF's own text as poppler's `pdftotext -layout` reads it: per page, with and without diagonal
text (the SPECIMEN mark), the footers (document id, evidence hash, page) taken apart from the body.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest

from lendsafe.errors import ArtifactNotFoundError, LendSafeError
from lendsafe.notice.text import clean_text, compact
from lendsafe.notice.wording import template_parts


def pdf_text(pdf_bytes: bytes, *, diagonal: bool = True) -> list[str]:
    """Text of each page from `pdftotext -layout` (poppler-utils); `diagonal=False` leaves out
    diagonal text such as the SPECIMEN mark."""
    [pages] = _pdftotext(pdf_bytes, (diagonal,))
    return pages


def _pdftotext(pdf_bytes: bytes, variants: tuple[bool, ...]) -> list[list[str]]:
    """Pages per variant (True: all text, False: without diagonal text), the runs side by side."""
    exe = shutil.which("pdftotext")
    if exe is None:
        raise ArtifactNotFoundError("pdftotext not found: install the Debian package poppler-utils")
    runs = [subprocess.Popen([exe, "-layout", *(() if diagonal else ("-nodiag",)), "-enc", "UTF-8", "-", "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for diagonal in variants]
    return [_pages_of(run, pdf_bytes) for run in runs]


def _pages_of(run: subprocess.Popen, pdf_bytes: bytes) -> list[str]:
    out, err = run.communicate(pdf_bytes, timeout=60)
    if run.returncode != 0:
        raise LendSafeError(f"pdftotext could not read the PDF (exit {run.returncode}): "
                            f"{err.decode(errors='replace').strip()}")
    pages = out.decode("utf-8", errors="replace").split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def diagonal_text(horizontal: list[str], everything: list[str]) -> list[Counter]:
    """Per page, the characters only the extraction with diagonal text has (the diagonal marks)."""
    return [Counter(compact(full)) - Counter(compact(flat))
            for flat, full in zip_longest(horizontal, everything, fillvalue="")]


@dataclass
class Extracted:
    """The PDF's text without footers, and what the footers said."""

    lines: list[str]
    pages: int
    document_ids: list[str]
    evidence: list[str]
    diagonal: list[Counter] = field(default_factory=list)   # per page, characters of diagonal text

    @property
    def body(self) -> str:
        return "\n".join(self.lines)

    @property
    def compact(self) -> str:
        return compact(self.body)


def extract(pdf_bytes: bytes, wording: dict[str, dict[str, str]]) -> Extracted:
    """The PDF's text, its footer lines (found by `wording`'s footer labels) taken apart from the body."""
    text = wording["text"]
    label = {key: re.escape(compact(template_parts(text[key])[0]))
             for key in ("footer_document", "footer_evidence", "footer_page")}
    page_suffix = rf"(?:{label['footer_page']}\d+)?"
    document_re = re.compile(rf"{label['footer_document']}(.+?){page_suffix}")
    evidence_re = re.compile(rf"{label['footer_evidence']}(.+?){page_suffix}")
    page_re = re.compile(rf"{label['footer_page']}\d+")
    pages, everything = _pdftotext(pdf_bytes, (False, True))
    lines, ids, evidence = [], [], []
    for page in pages:
        for line in page.splitlines():
            flat = compact(line)
            if found := document_re.fullmatch(flat):
                ids.append(found.group(1))
            elif found := evidence_re.fullmatch(flat):
                evidence.append(found.group(1))
            elif not page_re.fullmatch(flat):
                lines.append(line)
    return Extracted(lines, len(pages), ids, evidence, diagonal_text(pages, everything))


def marked_pages(text: Extracted, mark: str) -> list[bool]:
    """Per page, whether the diagonal `mark` is drawn on it."""
    wanted = Counter(compact(mark))
    return [bool(wanted) and wanted <= found for found in text.diagonal]


def specimen_marks(text: Extracted, wording: dict[str, dict[str, str]]) -> tuple[bool, list[bool]]:
    """(header line present, diagonal mark per page) as read from the PDF."""
    t = wording["text"]
    header = compact(t["specimen_header"]) in text.compact
    return header, marked_pages(text, clean_text(t["specimen_mark"], 40))
