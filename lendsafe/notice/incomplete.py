"""Incomplete applications: find the required fields an application lacks and write the Reg B
12 CFR 1002.9(c)(2) notice of incompleteness instead of only reporting an error.

The notice names the missing information, gives a reasonable period to supply it
(``NoticeSettings.incomplete_days``) and says the application will not be considered further if it
does not arrive. An application that lacks fields *and* has a wrong value elsewhere still gets the
field-named error: only absence is incompleteness. Required fields come from the dataset spec
(``FeatureSpec.optional``); what each field rests on comes from the reason catalog.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lendsafe.decide.application import parse_application, row_to_application
from lendsafe.decide.specs import DatasetSpec, FeatureSpec, load_spec
from lendsafe.errors import ArtifactNotFoundError, InvalidApplicationError, LendSafeError
from lendsafe.canonical import canonical_json
from lendsafe.notice.check import CHECKS, SHARED_CHECKS
from lendsafe.notice.context import CheckContext as _Context, CheckResult, NoticeCheck, presence as _result, run_checks
from lendsafe.notice.dates import checked_date, date_problems, format_date
from lendsafe.notice.model import DOCUMENT_ID_PATTERN
from lendsafe.notice.pdf import (creditor_contact, ecoa_section as _ecoa_section, para as _para,
                                 parties_story as _parties_story, render_story, section as _section,
                                 specimen_header as _specimen_header)
from lendsafe.notice.settings import NoticeSettings
from lendsafe.notice.text import TEXT_LIMITS, applicant_text, clean_address, clean_text
from lendsafe.notice.wording import load_wording
from lendsafe.decide.reasons import load_catalog
from lendsafe.redaction import printable

KIND = "incomplete"
# A stand-in value per type: lets the rest of an incomplete application be validated as usual.
STAND_INS = {"float": lambda f: f.min if f.min is not None else 0.0,
             "int": lambda f: int(f.min) if f.min is not None else 0,
             "bool": lambda f: False,
             "category": lambda f: f.categories[0]}


def _spec(dataset: str | DatasetSpec) -> DatasetSpec:
    return dataset if isinstance(dataset, DatasetSpec) else load_spec(dataset)


def is_absent(value: Any) -> bool:
    """True when no value was given: absent, null, NaN or blank text."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def missing_fields(data: dict[str, Any], dataset: str | DatasetSpec) -> tuple[FeatureSpec, ...]:
    """The required input fields `data` does not give, in the spec's order."""
    return tuple(f for f in _spec(dataset).input_fields if not f.optional and is_absent(data.get(f.name)))


@dataclass(frozen=True)
class Triage:
    """An application read for issuing: validated (nothing missing), or what it gives and what it lacks."""

    application: dict[str, Any]        # validated; without the missing fields when incomplete
    missing: tuple[str, ...] = ()      # names of the required fields it lacks

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)


def triage(data: Any, dataset: str | DatasetSpec) -> Triage:
    """Validate `data`; when required fields are missing, validate the rest with stand-ins for them.
    Raises InvalidApplicationError (one message per field) for any problem other than absence."""
    spec = _spec(dataset)
    missing = missing_fields(data, spec) if isinstance(data, dict) else ()
    if not missing:
        return Triage(parse_application(data, spec))
    filled = {**data, **{f.name: STAND_INS[f.type](f) for f in missing}}
    given = parse_application(filled, spec)
    return Triage({k: v for k, v in given.items() if k not in {f.name for f in missing}},
                  tuple(f.name for f in missing))


@dataclass(frozen=True)
class CsvRow:
    data_row: int                              # CSV record after the header: 1 = the first row under it
    triage: Triage | None = None
    error: InvalidApplicationError | None = None
    cells: tuple[tuple[str, str], ...] = ()    # the row as read: (column, text) in header order

    @property
    def content_sha256(self) -> str:
        """sha256 of the row's cells (canonical JSON of the (column, text) pairs)."""
        return hashlib.sha256(canonical_json(self.cells).encode("utf-8", "surrogateescape")).hexdigest()

    def cell(self, column: str) -> str:
        """The row's text in `column`, stripped ("" when the file has no such column)."""
        return next((text.strip() for name, text in self.cells if name.strip() == column), "")

    @property
    def application_id(self) -> str:
        return self.cell("application_id")

    @property
    def applicant_name(self) -> str:
        return self.cell("applicant_name")


MAX_CELL_CHARS = 10_000          # far above any real field; longer cells make the row an error
MAX_FIELD_CHARS = 10_000_000     # the csv module's own limit per field (a longer one refuses the file)
NOT_UTF8 = re.compile("[\udc80-\udcff]")


def read_csv(path: str | Path, dataset: str | DatasetSpec) -> list[CsvRow]:
    """Each data row triaged. A blank cell of a required column is missing information; a required
    column absent from the header is a file problem, reported as a field-named error on every row.
    A file that is missing, not a file, has no header or repeats a column is refused
    (InvalidApplicationError naming the column); a row with bytes that are not UTF-8, too long a cell
    or more cells than the header is an error of that row only."""
    spec = _spec(dataset)
    header, records = _csv_records(Path(path))
    absent_columns = any(not f.optional and f.name not in header for f in spec.input_fields)
    return [read_row(number, header, cells, spec, absent_columns) for number, cells in records]


def _csv_records(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(data row, cells)]) of a CSV file (data row 1 = the first record after the header; blank
    lines count, so the numbers match a spreadsheet's rows minus the header); bytes that are not UTF-8 kept
    as surrogates."""
    shown = printable(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"applications CSV not found: expected a file at {shown}")
    csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            records = [(number, cells) for number, cells in enumerate(reader, start=1) if cells]
    except csv.Error as exc:
        raise InvalidApplicationError([f"{shown} is not a readable CSV file: {printable(exc)} (line "
                                       f"{reader.line_num})"]) from None
    check_header(header, shown)
    return header, records


def check_header(header: list[str], shown: str) -> None:
    """InvalidApplicationError when a CSV's header row is empty, not UTF-8 or names a column twice."""
    if not any(header):
        raise InvalidApplicationError([f"{shown} has no header row; expected column names on the first line"])
    if any(NOT_UTF8.search(name) for name in header):
        raise InvalidApplicationError([f"{shown}: the header row is not UTF-8 text"])
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise InvalidApplicationError([f"column {printable(repr(name))} appears {header.count(name)} times in the "
                                       "header; expected each column once" for name in repeated])


def _cell_problems(header: list[str], cells: list[str]) -> list[str]:
    problems = [f"the row has {len(cells)} cells; the header has {len(header)} columns"] if len(cells) > len(header) else []
    for name, text in zip(header, cells):
        if NOT_UTF8.search(text):
            problems.append(f"{printable(name)} is not UTF-8 text; got bytes that are not")
        elif len(text) > MAX_CELL_CHARS:
            problems.append(f"{printable(name)} must be at most {MAX_CELL_CHARS:,} characters; got {len(text):,}")
    return problems


def read_row(number: int, header: list[str], cells: list[str], spec: DatasetSpec, strict: bool) -> CsvRow:
    """One CSV record as a ``CsvRow`` (its problems, or its triage against the spec), as ``read_csv`` reads it."""
    pairs = tuple(zip(header, cells + [""] * (len(header) - len(cells))))
    problems = _cell_problems(header, cells)
    try:
        if problems:
            raise InvalidApplicationError(problems)
        data = row_to_application(dict(pairs), spec)
        triaged = Triage(parse_application(data, spec)) if strict else triage(data, spec)
        problems = date_problems(triaged.application)
        if problems:
            raise InvalidApplicationError(problems)
        return CsvRow(number, triaged, cells=pairs)
    except InvalidApplicationError as exc:
        return CsvRow(number, error=exc, cells=pairs)


# ------------------------------------------------------------------------------- the notice

@dataclass(frozen=True)
class IncompleteNotice:
    """Everything printed on a notice of incompleteness; the PDF is a pure function of it."""

    document_id: str
    notice_date: str                         # ISO date
    application_date: str | None
    deadline: str                            # ISO date by which the information must arrive
    days: int
    creditor_name: str
    creditor_address: str
    creditor_phone: str
    applicant_name: str
    applicant_address: str
    missing: tuple[str, ...]                 # one printed item per missing field
    agencies: tuple[tuple[str, str], ...]
    evidence_sha256: str
    wording: dict[str, dict[str, str]]
    specimen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def incompleteness_record(triaged: Triage, dataset: str | DatasetSpec) -> dict[str, Any]:
    """What the notice states, as JSON (the `--decision-out` of an incompleteness notice)."""
    return {"kind": KIND, "dataset": _spec(dataset).name, "application": triaged.application,
            "missing": list(triaged.missing)}


def missing_item(feature: FeatureSpec, wording: dict[str, dict[str, str]]) -> str:
    """How a missing field is named to the applicant, by where its information comes from."""
    entry = load_catalog().get(feature.reason or "")
    source = entry.source if entry and feature.model_input else "application"
    return wording["text"][f"incomplete_item_{source}"].format(label=feature.label)


def build_incomplete_notice(record: dict[str, Any], settings: NoticeSettings, *,
                            notice_date: dt.date | str | None = None,
                            document_id: str | None = None) -> IncompleteNotice:
    """The notice of incompleteness for an incompleteness record (see `incompleteness_record`)."""
    if not record.get("missing"):
        raise LendSafeError("a notice of incompleteness needs at least one missing field; got none")
    spec, wording = load_spec(record["dataset"]), load_wording(settings.template_path)
    day = checked_date("notice_date", notice_date) if notice_date else dt.date.today()
    sha = hashlib.sha256(canonical_json(record).encode("utf-8")).hexdigest()
    app = record["application"]
    applicant = app.get("applicant") or {}
    return IncompleteNotice(
        document_id=_document_id(document_id, day, sha), notice_date=day.isoformat(),
        application_date=checked_date("application_date", app["application_date"]).isoformat()
        if app.get("application_date") else None,
        deadline=(day + dt.timedelta(days=settings.incomplete_days)).isoformat(), days=settings.incomplete_days,
        creditor_name=clean_text(settings.creditor_name, TEXT_LIMITS["name"]),
        creditor_address=clean_address(settings.creditor_address),
        creditor_phone=clean_text(settings.creditor_phone, TEXT_LIMITS["phone"]),
        applicant_name=applicant_text("name", applicant.get("name")),
        applicant_address=applicant_text("address", applicant.get("address")),
        missing=tuple(missing_item(spec.feature(name), wording) for name in record["missing"]),
        agencies=tuple((clean_text(n, 200), clean_address(a)) for n, a in settings.agencies()),
        evidence_sha256=sha, wording=wording, specimen=settings.is_specimen)


def _document_id(document_id: str | None, day: dt.date, sha: str) -> str:
    document_id = document_id or f"NOI-{day:%Y%m%d}-{sha[:12]}"
    if not DOCUMENT_ID_PATTERN.match(document_id):
        raise LendSafeError(f"document_id must be 1-64 characters of A-Z a-z 0-9 . _ : -; got {document_id!r}")
    return document_id


def _story(n: IncompleteNotice) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    applied = (t["application_date"].format(date=format_date(n.application_date)) if n.application_date
               else t["application_date_missing"])
    items = [_para(item, "item", bullet=f"{i}.") for i, item in enumerate(n.missing, 1)]
    return [*_specimen_header(n), _para(h["incomplete_title"], "title"),
            _para(t["notice_date"].format(date=format_date(n.notice_date))), _para(applied), *_parties_story(n),
            _section(h["incomplete_missing"], _para(t["incomplete_intro"]), *items,
                     _para(t["incomplete_deadline"].format(date=format_date(n.deadline), days=n.days)),
                     _para(t["incomplete_consequence"]), _para(t["incomplete_contact"]),
                     _para(creditor_contact(n), "block")),
            _ecoa_section(n)]


def render_incomplete_pdf(notice: IncompleteNotice) -> bytes:
    """The notice of incompleteness as PDF bytes (identical bytes for an identical notice)."""
    return render_story(notice, lambda: _story(notice), notice.wording["headings"]["incomplete_title"])


# ------------------------------------------------------------------------------- its check

def _check_title(c: _Context) -> CheckResult:
    return _result([] if c.has(c.headings["incomplete_title"]) else ["title"], "title")


def _check_dates(c: _Context) -> CheckResult:
    e = c.expected
    missing = [] if c.has_template(c.wording["notice_date"], date=format_date(e.notice_date)) else ["notice date"]
    return _result(missing, "notice date")


def _check_missing(c: _Context) -> CheckResult:
    labelled = {"heading": c.headings["incomplete_missing"], "intro": c.wording["incomplete_intro"]}
    labelled |= {f"item {i}": item for i, item in enumerate(c.expected.missing, 1)}
    return _result(c.missing(labelled), f"{len(c.expected.missing)} missing item(s) named")


def _check_deadline(c: _Context) -> CheckResult:
    e = c.expected
    ok = c.has_template(c.wording["incomplete_deadline"], date=format_date(e.deadline), days=str(e.days))
    return _result([] if ok else [f"deadline {e.deadline} ({e.days} days)"], "period to supply the information")


def _check_consequence(c: _Context) -> CheckResult:
    return _result(c.missing({"no further consideration": c.wording["incomplete_consequence"],
                              "contact": c.wording["incomplete_contact"]}), "consequence and contact")


INCOMPLETE_CHECKS = {"title": _check_title, "dates": _check_dates, "missing_information": _check_missing,
                     "deadline": _check_deadline, "consequence": _check_consequence,
                     **{name: CHECKS[name] for name in SHARED_CHECKS}}


def check_incomplete_pdf(pdf_bytes: bytes, record: dict[str, Any], settings: NoticeSettings | None = None, *,
                         notice_date: dt.date | str, document_id: str | None = None) -> NoticeCheck:
    """Check a notice of incompleteness from its PDF's text: missing information named, the period
    to supply it, the consequence, creditor, ECOA notice, footers, SPECIMEN marking, no forbidden content."""
    settings = settings or NoticeSettings()
    try:
        expected = build_incomplete_notice(record, settings, notice_date=notice_date, document_id=document_id)
    except (LendSafeError, KeyError) as exc:
        return NoticeCheck({"incomplete_application": CheckResult(False, str(exc))})
    return run_checks(pdf_bytes, expected, settings, INCOMPLETE_CHECKS,
                      first={"incomplete_application": CheckResult(True, f"missing {record['missing']}")})
