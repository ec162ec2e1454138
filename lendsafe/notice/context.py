"""What a notice check looks at and returns: the PDF's text beside the notice as issued (`CheckContext`),
one `CheckResult` per named check and the `NoticeCheck` of them all (`run_checks`). Adverse-action notices
(``lendsafe.notice.check``) and notices of incompleteness share it.

A result is keyed by its check's name in `NoticeCheck.checks`, so `CheckResult` is (passed, detail); the
verifier's ``lendsafe.explain.verify.report.CheckResult`` carries its name instead.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from lendsafe.decide.decision import Decision
from lendsafe.notice.dates import MONTHS
from lendsafe.notice.pdftext import Extracted, extract, specimen_marks
from lendsafe.notice.settings import NoticeSettings
from lendsafe.notice.text import compact, has_rtl


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    detail: str


@dataclass(frozen=True)
class NoticeCheck:
    """Named checks over the text of a notice PDF; `passed` only when every check passed."""

    checks: dict[str, CheckResult]
    text: str = field(default="", repr=False, compare=False)
    specimen: bool = False              # the PDF carries the SPECIMEN header or mark

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())

    def failures(self) -> dict[str, str]:
        return {name: c.detail for name, c in self.checks.items() if not c.passed}

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "specimen": self.specimen,
                "checks": {name: {"passed": c.passed, "detail": c.detail} for name, c in self.checks.items()}}


RTL_WINDOW_LINES = 8
_MIRRORED = str.maketrans(")>]}\u00bb", "(<[{\u00ab")


def _unmirrored(text: str) -> str:
    return text.translate(_MIRRORED)


_DATE_PATTERN = "(?:" + "|".join(MONTHS) + r")\d{1,2},\d{4}"


@dataclass
class CheckContext:
    """What a check looks at: the extracted text, and the notice as issued."""

    text: Extracted
    decision: Decision | None          # None for notices that are not about a decision (incompleteness)
    settings: NoticeSettings
    expected: Any                      # the Notice (or IncompleteNotice) as issued
    flat: str = ""

    def __post_init__(self) -> None:
        self.flat = self.text.compact
        self._line_chars: list | None = None

    @property
    def headings(self) -> dict[str, str]:
        return self.expected.wording["headings"]

    @property
    def wording(self) -> dict[str, str]:
        return self.expected.wording["text"]

    def has(self, *texts: str) -> bool:
        return all(compact(t) in self.flat or (has_rtl(t) and self._has_characters(t)) for t in texts if t)

    def _has_characters(self, text: str) -> bool:
        """Right-to-left text mixed with digits or Latin comes back from pdftotext in an order of its
        own, so only its characters are compared: all of them within a few consecutive lines."""
        if self._line_chars is None:
            self._line_chars = [Counter(_unmirrored(compact(line))) for line in self.text.lines]
        wanted = Counter(_unmirrored(compact(text)))
        for start in range(len(self._line_chars)):
            found = Counter()
            for line in self._line_chars[start:start + RTL_WINDOW_LINES]:
                found += line
                if wanted <= found:
                    return True
        return False

    def has_template(self, template: str, **values: str) -> bool:
        """`template` is present with known values filled in and dates/unknowns matched loosely."""
        pattern = []
        for literal, name, _spec, _conv in string.Formatter().parse(template):
            pattern.append(re.escape(compact(literal)))
            if name is not None:
                value = values.get(name)
                pattern.append(_DATE_PATTERN if name == "date" and value is None
                               else re.escape(compact(str(value))) if value is not None else ".+?")
        return re.search("".join(pattern), self.flat) is not None

    def missing(self, labelled: dict[str, str]) -> list[str]:
        return [label for label, text in labelled.items() if text and not self.has(text)]


def presence(missing: list[str], what: str) -> CheckResult:
    return CheckResult(not missing, f"{what} present" if not missing else f"missing: {', '.join(missing)}")


def run_checks(pdf_bytes: bytes, expected: Any, settings: NoticeSettings, checks: dict[str, Callable],
               decision: Decision | None = None, first: dict[str, CheckResult] | None = None) -> NoticeCheck:
    """Run `checks` (name -> function of the context) over the PDF's text against the `expected` notice."""
    text = extract(pdf_bytes, expected.wording)
    context = CheckContext(text, decision, settings, expected)
    results = dict(first or {}) | {name: check(context) for name, check in checks.items()}
    header, marks = specimen_marks(text, expected.wording)
    return NoticeCheck(results, text=text.body, specimen=header or any(marks))
