"""Adverse-action notices: a pure model (`build_notice`), a deterministic PDF (`render_pdf`) and a
completeness check over the PDF's own text (`check_pdf`).

The notice carries what 12 CFR 1002.9(a)(2) and (b) and FCRA section 615 (15 U.S.C. 1681m) ask
for: creditor, dates, the action taken, up to four principal reasons in the catalog's words (or the
right to request them), the ECOA notice with the supervising agency, the consumer-report block
(615(a)) when a consumer report was used, the outside-source block (615(b)(1)) when a principal
reason rests on a third party that is not a consumer reporting agency and, when a score was used,
the credit-score block. Until the lender's own settings replace the demonstration values, every
page is stamped SPECIMEN. The wording lives in a TOML template the lender can replace. reportlab
is imported inside the functions that draw.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import threading
import tomllib
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from lendsafe.decide.decision import Decision
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError, InvalidApplicationError, LendSafeError
from lendsafe.explain.grounding import information_sources
from lendsafe.redaction import printable
from lendsafe.explain.verify import FORBIDDEN_PATTERNS, INTERNAL_PATTERNS

MAX_REASONS = 4
MAX_PAGES = 2
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = TEMPLATE_DIR / "notice_en.toml"
REASONS_MODES = ("specific", "request")
ACTIONS = ("deny", "counteroffer")
ELLIPSIS = "\u2026"

# Federal agencies named in the ECOA notice, from Reg B Appendix A (12 CFR part 1002).
# Addresses change over time: verify every entry against the current eCFR text of Appendix A
# before sending notices, and override it in NoticeSettings (agency_name / agency_address) if needed.
AGENCIES: dict[str, tuple[str, str]] = {
    "cfpb": ("Bureau of Consumer Financial Protection", "1700 G Street NW, Washington, DC 20006"),
    "occ": ("Office of the Comptroller of the Currency, Customer Assistance Group",
            "1301 McKinney Street, Suite 3450, Houston, TX 77010-9050"),
    "frb": ("Federal Reserve Consumer Help Center", "P.O. Box 1200, Minneapolis, MN 55480"),
    "fdic": ("FDIC Consumer Response Center", "1100 Walnut Street, Box #11, Kansas City, MO 64106"),
    "ncua": ("National Credit Union Administration, Office of Consumer Protection",
             "1775 Duke Street, Alexandria, VA 22314"),
    "fca": ("Farm Credit Administration", "1501 Farm Credit Drive, McLean, VA 22102-5090"),
    "sba": ("Associate Deputy Administrator for Capital Access, United States Small Business Administration",
            "409 Third Street SW, 8th Floor, Washington, DC 20416"),
    "sec": ("Securities and Exchange Commission", "Washington, DC 20549"),
    "dot": ("Assistant General Counsel for Aviation Enforcement and Proceedings, Department of Transportation",
            "400 Seventh Street SW, Washington, DC 20590"),
    "ftc": ("Federal Trade Commission, Equal Credit Opportunity", "Washington, DC 20580"),
}

# Creditor type -> agencies listed in its notice (Appendix A, in the order listed there).
CREDITOR_TYPES: dict[str, tuple[str, ...]] = {
    "large_bank": ("cfpb",),                       # banks, savings assns, credit unions > $10bn assets
    "large_bank_nonbank_affiliate": ("cfpb", "ftc"),
    "national_bank": ("occ",),                     # national banks, federal savings associations
    "state_member_bank": ("frb",),
    "nonmember_bank": ("fdic",),                   # nonmember insured banks, insured state savings assns
    "federal_credit_union": ("ncua",),
    "farm_credit": ("fca",),
    "small_business_investment_company": ("sba",),
    "broker_dealer": ("sec",),
    "air_carrier": ("dot",),
    "other": ("ftc",),                             # retailers, finance companies, all others
}

# Demonstration values: a notice that prints any of them is a specimen, never a notice to send.
DEMO_VALUES = {
    "creditor_name": "LendSafe Demo Lender",
    "creditor_address": "100 Example Street\nSpringfield, ST 00000",
    "creditor_phone": "1-800-555-0100",
    "cra_name": "Example Consumer Reporting Agency",
    "cra_address": "P.O. Box 1000\nAnytown, ST 00000",
    "cra_phone": "1-800-555-0199",
}
PHONE_FIELDS = ("creditor_phone", "cra_phone", "request_contact_phone")
# A telephone number: North American (10 digits, optional leading 1) or international (+ and 8-15
# digits), digits grouped by spaces, dots, dashes or parentheses, optionally with an extension.
PHONE_PATTERN = re.compile(r"^\+?[\d\s().-]{7,25}(?:\s*(?:x|ext\.?)\s*\d{1,6})?$", re.IGNORECASE)
TOLL_FREE_PREFIXES = ("800", "833", "844", "855", "866", "877", "888")
INCOMPLETE_DAYS = (10, 180)     # bounds of a "reasonable period" to supply missing information
SOURCE_BLOCKS = {"consumer_report": "615(a)", "third_party": "615(b)(1)"}

# Limits on free text so that a notice fits in two pages; longer text ends with an ellipsis.
TEXT_LIMITS = {"name": 120, "address": 300, "phone": 40, "terms": 500, "factor": 120, "source": 120}
ADDRESS_MAX_LINES = 5
DOCUMENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class NoticeSettings:
    """Who sends the notice, who supervises them, what was used, and the wording template."""

    creditor_name: str = field(default=DEMO_VALUES["creditor_name"], metadata=_help(
        "creditor's legal name as printed on the notice (the demo value marks notices SPECIMEN)"))
    creditor_address: str = field(default=DEMO_VALUES["creditor_address"], metadata=_help(
        "creditor's mailing address; one line per address line"))
    creditor_phone: str = field(default=DEMO_VALUES["creditor_phone"], metadata=_help(
        "creditor's telephone (optional; a telephone number when given)"))
    creditor_type: str = field(default="other", metadata=_help(
        "selects the supervising agency from Reg B Appendix A when `agency` is empty: " + ", ".join(CREDITOR_TYPES)))
    agency: tuple[str, ...] = field(default=(), metadata=_help(
        "key(s) of the supervising agency in Reg B Appendix A (" + ", ".join(AGENCIES) + "); empty = by creditor_type"))
    agency_name: str = field(default="", metadata=_help(
        "override of the supervising agency's name (empty = from the Appendix A table)"))
    agency_address: str = field(default="", metadata=_help("override of the supervising agency's address"))
    reasons_mode: str = field(default="specific", metadata=_help(
        "'specific' lists the principal reasons; 'request' discloses the right to ask for them (Form C-5 style)"))
    request_contact_name: str = field(default="", metadata=_help(
        "whom to ask for the reasons in 'request' mode (empty = the creditor)"))
    request_contact_address: str = field(default="", metadata=_help("their address (empty = the creditor's)"))
    request_contact_phone: str = field(default="", metadata=_help("their telephone (empty = the creditor's)"))
    consumer_report_used: bool = field(default=True, metadata=_help(
        "a consumer report was used whatever the reasons: always adds the FCRA 615(a) block (it is also added "
        "when a principal reason or model input rests on a consumer report, per the reason catalog)"))
    cra_name: str = field(default=DEMO_VALUES["cra_name"], metadata=_help(
        "consumer reporting agency that supplied the report (the demo value marks notices SPECIMEN)"))
    cra_address: str = field(default=DEMO_VALUES["cra_address"], metadata=_help("its mailing address"))
    cra_phone: str = field(default=DEMO_VALUES["cra_phone"], metadata=_help(
        "its telephone number (toll-free when cra_nationwide)"))
    cra_nationwide: bool = field(default=True, metadata=_help(
        "the agency compiles files nationwide, so its number must be toll-free (15 U.S.C. 1681m(a)(3)(A))"))
    credit_score: int | None = field(default=None, metadata=_help(
        "numerical credit score used in the decision; None = no score used, no score block"))
    score_range: tuple[int, int] = field(default=(300, 850), metadata=_help("lowest and highest possible score"))
    score_date: str = field(default="", metadata=_help("date the score was created (YYYY-MM-DD)"))
    score_source: str = field(default="", metadata=_help("who provided the score"))
    score_factors: tuple[str, ...] = field(default=(), metadata=_help(
        "key factors that adversely affected the score, most important first (at most 4, or 5 with inquiries)"))
    inquiries_is_key_factor: bool = field(default=False, metadata=_help(
        "the number of inquiries is a key factor, which allows a fifth factor"))
    incomplete_days: int = field(default=30, metadata=_help(
        "days a notice of incompleteness gives the applicant to supply what is missing (Reg B 1002.9(c)(2)), "
        f"{INCOMPLETE_DAYS[0]} to {INCOMPLETE_DAYS[1]}"))
    specimen: bool = field(default=False, metadata=_help(
        "stamp every notice SPECIMEN (training copies); notices are stamped anyway while a demo value remains"))
    template_path: Path = field(default=DEFAULT_TEMPLATE, metadata=_help("TOML file with the notice wording"))
    max_explanation_chars: int = field(default=1200, metadata=_help(
        "longest explanation narrative printed; longer text is cut with an ellipsis"))

    def __post_init__(self) -> None:
        for item in fields(self):
            object.__setattr__(self, item.name, _typed(item.name, getattr(self, item.name)))
        object.__setattr__(self, "template_path", Path(self.template_path))
        object.__setattr__(self, "score_range", tuple(self.score_range))
        object.__setattr__(self, "score_factors", tuple(self.score_factors))
        object.__setattr__(self, "agency", (self.agency,) if isinstance(self.agency, str) and self.agency
                           else tuple(self.agency or ()))
        _require_text(self, "creditor_name", "creditor_address")
        _require_choice("creditor_type", self.creditor_type, CREDITOR_TYPES)
        for key in self.agency:
            _require_choice("agency", key, AGENCIES)
        _require_choice("reasons_mode", self.reasons_mode, REASONS_MODES)
        if self.consumer_report_used:
            _require_text(self, "cra_name", "cra_address", "cra_phone")
        self._check_phones()
        if self.credit_score is not None:
            self._check_score()
        if self.max_explanation_chars < 0:
            raise ConfigurationError(f"max_explanation_chars must be >= 0; got {self.max_explanation_chars}")
        if not INCOMPLETE_DAYS[0] <= self.incomplete_days <= INCOMPLETE_DAYS[1]:
            raise ConfigurationError(f"incomplete_days must be between {INCOMPLETE_DAYS[0]} and "
                                     f"{INCOMPLETE_DAYS[1]} days; got {self.incomplete_days!r}")
        load_wording(self.template_path)

    def _check_phones(self) -> None:
        for name in PHONE_FIELDS:
            value = getattr(self, name)
            if value and not is_phone(value):
                raise ConfigurationError(f"{name} must be a telephone number (e.g. 1-800-555-0100 or "
                                         f"+44 20 7946 0000); got {value!r}")
        if self.cra_nationwide and self.cra_phone and not is_toll_free(self.cra_phone):
            raise ConfigurationError(f"cra_phone must be a toll-free number ({', '.join(TOLL_FREE_PREFIXES)}) for "
                                     f"a nationwide agency (cra_nationwide = true); got {self.cra_phone!r}")

    def _check_score(self) -> None:
        if len(self.score_range) != 2 or not self.score_range[0] < self.score_range[1]:
            raise ConfigurationError(f"score_range must be (low, high) with low < high; got {self.score_range}")
        if not self.score_range[0] <= self.credit_score <= self.score_range[1]:
            raise ConfigurationError(f"credit_score must lie in score_range {self.score_range}; "
                                     f"got {self.credit_score}")
        _parse_date("score_date", self.score_date)
        _require_text(self, "score_source")
        limit = 5 if self.inquiries_is_key_factor else 4
        if not 1 <= len(self.score_factors) <= limit:
            raise ConfigurationError(f"score_factors must list 1 to {limit} key factors; "
                                     f"got {len(self.score_factors)}")

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Settings that still hold a demonstration value."""
        return tuple(name for name, demo in DEMO_VALUES.items() if getattr(self, name) == demo)

    @property
    def is_specimen(self) -> bool:
        """True when notices made with these settings must be stamped SPECIMEN."""
        return self.specimen or bool(self.placeholders)

    @classmethod
    def help_table(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def agencies(self) -> tuple[tuple[str, str], ...]:
        """(name, address) of each supervising agency named in the ECOA notice."""
        if self.agency_name:
            return ((self.agency_name, self.agency_address),)
        return tuple(AGENCIES[key] for key in self.agency or CREDITOR_TYPES[self.creditor_type])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["template_path"] = str(self.template_path)
        data["score_range"] = list(self.score_range)
        data["score_factors"] = list(self.score_factors)
        data["agency"] = list(self.agency)
        return data

    @classmethod
    def from_file(cls, path: Path | str) -> "NoticeSettings":
        """Settings from a TOML or JSON file of field = value pairs (at most SETTINGS_MAX_BYTES)."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactNotFoundError(f"notice settings file not found: expected a TOML or JSON file at {path}")
        with path.open("rb") as handle:
            data = handle.read(SETTINGS_MAX_BYTES + 1)
        return cls.from_bytes(path.name, data)

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> "NoticeSettings":
        """Settings from the bytes of a file called `name` (.json is JSON, anything else TOML)."""
        return cls.from_dict(read_settings_bytes(name, data))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NoticeSettings":
        if not isinstance(data, dict):
            raise ConfigurationError(f"notice settings must be a table of field = value pairs; "
                                     f"got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigurationError(f"unknown notice settings {[printable(k) for k in unknown][:10]}; expected "
                                     f"some of {[f.name for f in fields(cls)]}")
        return cls(**data)


# --------------------------------------------------------------------------------------------
# Reading a settings file: every value's type checked against a table, no silent coercion
# --------------------------------------------------------------------------------------------

SETTINGS_MAX_BYTES = 256_000
TEXT_MAX_CHARS = 100_000
BOOL_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def read_settings_bytes(name: str, data: bytes) -> dict[str, Any]:
    """The field = value table of a settings file's bytes; ConfigurationError naming what is wrong."""
    shown = printable(name)
    if len(data) > SETTINGS_MAX_BYTES:
        raise ConfigurationError(f"notice settings file {shown} is larger than {SETTINGS_MAX_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"notice settings file {shown} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                 f"at offset {exc.start})") from None
    kind = "JSON" if name.lower().endswith(".json") else "TOML"
    try:
        return SETTINGS_READERS[kind](text)
    except (ValueError, RecursionError) as exc:      # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigurationError(f"notice settings file {shown} is not valid {kind}: {printable(exc)[:200]}") from None


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"gives {printable(twice[0])!r} more than once; expected each setting once")
    return dict(pairs)


def _read_json(text: str) -> Any:
    """JSON refusing duplicate keys and NaN/Infinity (too deep or too long numbers fail in json itself)."""
    return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)


def _json_constant(name: str) -> Any:
    raise ValueError(f"contains {name}; expected finite numbers")


SETTINGS_READERS = {"JSON": _read_json, "TOML": tomllib.loads}


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= TEXT_MAX_CHARS


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9


def _texts(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) <= 20 and all(_is_text(v) for v in value)


def _as_bool(value: Any) -> Any:
    return BOOL_WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value


# Field type -> (check of the value after `convert`, what is expected, convert)
SETTING_TYPES: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    "str": (_is_text, f"text of at most {TEXT_MAX_CHARS} characters", lambda v: v),
    "bool": (lambda v: isinstance(v, bool), "true or false (or yes / no)", _as_bool),
    "int": (_is_int, "a whole number", lambda v: v),
    "int | None": (lambda v: v is None or _is_int(v), "a whole number (or nothing)", lambda v: v),
    "tuple[str, ...]": (_texts, "a list of texts", lambda v: v),
    "agency": (lambda v: _is_text(v) or _texts(v), "a text or a list of texts", lambda v: v),
    "tuple[int, int]": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_int, v)),
                        "a list of two whole numbers [low, high]", lambda v: v),
    "Path": (lambda v: isinstance(v, Path) or (_is_text(v) and "\x00" not in v), "a file path", lambda v: v),
}


def _typed(name: str, value: Any) -> Any:
    """`value` for the setting `name`, converted where that is unambiguous; ConfigurationError otherwise."""
    kind = "agency" if name == "agency" else NoticeSettings.__dataclass_fields__[name].type
    check, expected, convert = SETTING_TYPES[kind]
    converted = convert(value)
    if not check(converted):
        raise ConfigurationError(f"{name} must be {expected}; got {printable(repr(value))[:120]} "
                                 f"({type(value).__name__})")
    return converted


def is_phone(value: str) -> bool:
    """True for a telephone number (see PHONE_PATTERN)."""
    digits = re.sub(r"\D", "", re.split(r"(?i)\s*(?:x|ext\.?)\s*\d", value)[0])
    if not PHONE_PATTERN.match(value.strip()):
        return False
    if value.strip().startswith("+"):
        return 8 <= len(digits) <= 15
    return len(digits) == 10 or (len(digits) == 11 and digits[0] == "1")


def is_toll_free(value: str) -> bool:
    """True for a North American toll-free number (800, 833, ... 888)."""
    digits = re.sub(r"\D", "", value)
    digits = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    return len(digits) == 10 and digits[:3] in TOLL_FREE_PREFIXES


def _require_text(settings: NoticeSettings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, str) or not clean_text(value, 10).strip():
            raise ConfigurationError(f"{name} must be a non-empty text; got {value!r}")


def _require_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {tuple(choices)}; got {value!r}")


# Dates a notice may print: none before 1900, none more than a year ahead of today.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_AHEAD = dt.timedelta(days=366)
# The error a date outside that range raises, by the field it is in (the rest: ConfigurationError).
DATE_ERRORS = {"application_date": lambda message: InvalidApplicationError([message])}


def checked_date(name: str, value: Any, *, today: dt.date | None = None) -> dt.date:
    """`value` as a date between EARLIEST_DATE and a year from today; a field-named error otherwise."""
    day = _parse_date(name, value)
    latest = (today or dt.date.today()) + LATEST_AHEAD
    if not EARLIEST_DATE <= day <= latest:
        message = f"{name} must be a date from {EARLIEST_DATE} to {latest}; got {day.isoformat()}"
        raise DATE_ERRORS.get(name, ConfigurationError)(message)
    return day


def date_problems(application: dict[str, Any]) -> list[str]:
    """The application's dates outside the range a notice may print (empty when all are fine)."""
    try:
        if application.get("application_date"):
            checked_date("application_date", application["application_date"])
    except LendSafeError as exc:
        return [str(exc).removeprefix("invalid application: ")]
    return []


def _parse_date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"{name} must be a date YYYY-MM-DD; got {value!r}") from None


# --------------------------------------------------------------------------------------------
# Wording template
# --------------------------------------------------------------------------------------------

def load_wording(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, dict[str, str]]:
    """The template's headings and texts; every key of the default template must be present."""
    path = Path(path)
    cached = _load_wording_cached(str(path.resolve()), path.stat().st_mtime_ns if path.exists() else 0)
    return {section: dict(texts) for section, texts in cached.items()}


@lru_cache(maxsize=8)
def _load_wording_cached(path: str, _mtime: int) -> dict[str, dict[str, str]]:
    if not path.lower().endswith(".toml") or not Path(path).is_file():
        raise ArtifactNotFoundError(f"template_path must name a notice wording TOML file (.toml); got {path}")
    with open(path, "rb") as handle:
        data = handle.read(SETTINGS_MAX_BYTES + 1)
    wording = read_settings_bytes(path, data)
    if Path(path) != DEFAULT_TEMPLATE.resolve():
        _check_wording(wording, load_wording(DEFAULT_TEMPLATE), path)
    return {section: dict(wording[section]) for section in ("headings", "text")}


def placeholders_of(template: str) -> set[str]:
    """The `{names}` a wording text fills in (ValueError when its braces are malformed)."""
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_wording(wording: dict, reference: dict, path: str) -> None:
    """Every key of the default wording present as text, using only the placeholders the default uses."""
    for section, texts in reference.items():
        given = wording.get(section)
        if not isinstance(given, dict):
            raise ConfigurationError(f"template_path {path}: expected a [{section}] table; got {type(given).__name__}")
        missing = sorted(set(texts) - set(given))
        if missing:
            raise ConfigurationError(f"template_path {path}: [{section}] lacks keys {missing}")
        for key, default in texts.items():
            _check_wording_text(f"[{section}] {key}", given[key], placeholders_of(default), path)


def _check_wording_text(name: str, text: Any, allowed: set[str], path: str) -> None:
    if not _is_text(text):
        raise ConfigurationError(f"template_path {path}: {name} must be text of at most {TEXT_MAX_CHARS} "
                                 f"characters; got {type(text).__name__}")
    try:
        unknown = sorted(placeholders_of(text) - allowed)
    except ValueError as exc:
        raise ConfigurationError(f"template_path {path}: {name} has malformed braces ({exc}); write {{{{ and }}}} "
                                 "for literal braces") from None
    if unknown:
        raise ConfigurationError(f"template_path {path}: {name} uses unknown placeholder(s) "
                                 f"{[printable(u) for u in unknown]}; expected only {sorted(allowed) or 'none'}")


# --------------------------------------------------------------------------------------------
# Notice model
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Notice:
    """Everything printed on one adverse-action notice; the PDF is a pure function of it."""

    document_id: str
    notice_date: str                                  # ISO date
    application_date: str | None                      # ISO date, None when not recorded
    creditor_name: str
    creditor_address: str
    creditor_phone: str
    applicant_name: str
    applicant_address: str
    action: str                                       # "deny" | "counteroffer"
    counteroffer_terms: str
    reasons_mode: str                                 # "specific" | "request"
    reasons: tuple[str, ...]
    request_contact: tuple[str, str, str] | None      # name, address, phone ("request" mode)
    explanation: str | None
    agencies: tuple[tuple[str, str], ...]
    consumer_report: tuple[str, str, str] | None      # agency name, address, phone
    credit_score: dict[str, Any] | None               # score, low, high, date, source, factors
    evidence_sha256: str
    wording: dict[str, dict[str, str]]
    max_explanation_chars: int = 1200
    third_party: bool = False                         # FCRA 615(b)(1) block: a reason rests on an outside source
    specimen: bool = False                            # stamped SPECIMEN: the lender's settings are not configured

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Notice":
        data = dict(data)
        data["reasons"] = tuple(data["reasons"])
        data["agencies"] = tuple(tuple(a) for a in data["agencies"])
        for key in ("request_contact", "consumer_report"):
            data[key] = tuple(data[key]) if data.get(key) is not None else None
        if data.get("credit_score"):
            data["credit_score"] = {**data["credit_score"], "factors": tuple(data["credit_score"]["factors"])}
        return cls(**data)


def evidence_sha256(decision: Decision) -> str:
    """sha256 of the decision's canonical JSON (sorted keys, compact separators, UTF-8)."""
    return hashlib.sha256(canonical_json(decision.to_dict()).encode("utf-8")).hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def build_notice(decision: Decision, settings: NoticeSettings, *, notice_date: dt.date | str | None = None,
                 document_id: str | None = None, application_date: dt.date | str | None = None,
                 counteroffer: str | None = None) -> Notice:
    """The notice for a denied decision (pure apart from today's date when none is given).

    The applicant's name and address are read from the application's ``applicant`` mapping
    (``name``, ``address``) and the date from ``application_date``, when present.
    """
    reasons = _notice_reasons(decision, settings)
    notice_date = checked_date("notice_date", notice_date) if notice_date else dt.date.today()
    sha = evidence_sha256(decision)
    app = decision.application or {}
    applicant = app.get("applicant") or {}
    applicant = applicant if isinstance(applicant, dict) else {"name": str(applicant)}
    applied = application_date or app.get("application_date")
    return Notice(
        document_id=_document_id(document_id, notice_date, sha),
        notice_date=notice_date.isoformat(),
        application_date=checked_date("application_date", applied).isoformat() if applied else None,
        creditor_name=clean_text(settings.creditor_name, TEXT_LIMITS["name"]),
        creditor_address=clean_address(settings.creditor_address),
        creditor_phone=clean_text(settings.creditor_phone, TEXT_LIMITS["phone"]),
        applicant_name=applicant_text("name", applicant.get("name")),
        applicant_address=applicant_text("address", applicant.get("address")),
        action="counteroffer" if counteroffer else "deny",
        counteroffer_terms=clean_text(counteroffer or "", TEXT_LIMITS["terms"]),
        reasons_mode=settings.reasons_mode,
        reasons=reasons if settings.reasons_mode == "specific" else (),
        request_contact=_request_contact(settings),
        explanation=clean_text(decision.explanation, settings.max_explanation_chars) or None
        if decision.explanation else None,
        agencies=tuple((clean_text(n, 200), clean_address(a)) for n, a in settings.agencies()),
        consumer_report=_consumer_report(settings, decision),
        credit_score=_credit_score(settings),
        evidence_sha256=sha,
        wording=load_wording(settings.template_path),
        max_explanation_chars=settings.max_explanation_chars,
        third_party="third_party" in information_sources(decision),
        specimen=settings.is_specimen,
    )


def _notice_reasons(decision: Decision, settings: NoticeSettings) -> tuple[str, ...]:
    if not decision.denied:
        raise LendSafeError(f"an adverse-action notice needs a denied decision; got {decision.decision!r}")
    statements = tuple(clean_text(r.statement, 10_000) for r in decision.reasons)
    if len(statements) > MAX_REASONS:
        raise LendSafeError(f"a notice states at most {MAX_REASONS} principal reasons; "
                            f"the decision has {len(statements)}")
    if settings.reasons_mode == "specific" and (not statements or not all(statements)):
        raise LendSafeError("a notice with specific reasons needs 1 to 4 reasons with catalog text; "
                            f"got {[r.code for r in decision.reasons]}")
    return statements


def _document_id(document_id: str | None, notice_date: dt.date, sha: str) -> str:
    document_id = document_id or f"AAN-{notice_date:%Y%m%d}-{sha[:12]}"
    if not DOCUMENT_ID_PATTERN.match(document_id):
        raise LendSafeError(f"document_id must be 1-64 characters of A-Z a-z 0-9 . _ : -; got {document_id!r}")
    return document_id


def _request_contact(settings: NoticeSettings) -> tuple[str, str, str] | None:
    if settings.reasons_mode != "request":
        return None
    return (clean_text(settings.request_contact_name or settings.creditor_name, TEXT_LIMITS["name"]),
            clean_address(settings.request_contact_address or settings.creditor_address),
            clean_text(settings.request_contact_phone or settings.creditor_phone, TEXT_LIMITS["phone"]))


def uses_consumer_report(decision: Decision, settings: NoticeSettings) -> bool:
    """FCRA 615(a) applies: the settings say so, or a principal reason or model input rests on a report
    (``lendsafe.explain.grounding.information_sources``, the one table of where a decision's information came from)."""
    return settings.consumer_report_used or "consumer_report" in information_sources(decision)


def _consumer_report(settings: NoticeSettings, decision: Decision) -> tuple[str, str, str] | None:
    if not uses_consumer_report(decision, settings):
        return None
    missing = [name for name in ("cra_name", "cra_address", "cra_phone") if not clean_text(getattr(settings, name), 9)]
    if missing:
        raise ConfigurationError(f"the decision rests on a consumer report, so the notice names the agency: "
                                 f"{', '.join(missing)} must be set; got empty")
    return (clean_text(settings.cra_name, TEXT_LIMITS["name"]), clean_address(settings.cra_address),
            clean_text(settings.cra_phone, TEXT_LIMITS["phone"]))


def _credit_score(settings: NoticeSettings) -> dict[str, Any] | None:
    if settings.credit_score is None:
        return None
    return {"score": int(settings.credit_score), "low": int(settings.score_range[0]),
            "high": int(settings.score_range[1]), "date": _parse_date("score_date", settings.score_date).isoformat(),
            "source": clean_text(settings.score_source, TEXT_LIMITS["source"]),
            "factors": tuple(clean_text(f, TEXT_LIMITS["factor"]) for f in settings.score_factors)}


# --------------------------------------------------------------------------------------------
# Text cleaning: what a font can draw, of bounded length
# --------------------------------------------------------------------------------------------

_BIDI_CONTROLS = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DROPPED_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Cf"}
# Format characters that shape a script (joiners in Arabic, Indic and emoji sequences): kept.
_KEPT_FORMAT = {"\u200c", "\u200d"}


def _dropped(ch: str) -> bool:
    """Invisible characters cleaning removes: controls, bidi overrides, soft hyphen and other format marks."""
    return ch in _BIDI_CONTROLS or (unicodedata.category(ch) in _DROPPED_CATEGORIES and ch not in _KEPT_FORMAT)


def applicant_text(name: str, text: Any) -> str:
    """The applicant's name or address as printed; InvalidApplicationError naming the field when it holds
    characters no notice font can draw (emoji, unassigned code points), which would print as boxes."""
    text = "" if text is None else str(text)
    unprintable = sorted({ch for ch in text if not ch.isspace() and not _dropped(ch) and not font_for_char(ch)})
    if unprintable:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in unprintable[:5])
        raise InvalidApplicationError([f"applicant.{name} must be text the notice fonts can print; got characters "
                                       f"they cannot ({shown}{', ...' if len(unprintable) > 5 else ''})"])
    return clean_address(text) if name == "address" else clean_text(text, TEXT_LIMITS["name"])


def clean_text(text: str | None, limit: int, *, keep_newlines: bool = False) -> str:
    """Drawable text: NFC, no control characters, glyphs the fonts lack as U+FFFD, at most `limit` chars."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\t", " ")
    lines = [_clean_line(line) for line in text.split("\n")]
    lines = [line for line in lines if line] if keep_newlines else [" ".join(l for l in lines if l)]
    return _truncate("\n".join(lines), limit)


def clean_address(text: str | None) -> str:
    """An address: at most ADDRESS_MAX_LINES lines, TEXT_LIMITS['address'] characters."""
    lines = clean_text(text, 10 * TEXT_LIMITS["address"], keep_newlines=True).split("\n")
    if len(lines) > ADDRESS_MAX_LINES:
        lines = lines[:ADDRESS_MAX_LINES - 1] + [" ".join(lines[ADDRESS_MAX_LINES - 1:])]
    return _truncate("\n".join(lines), TEXT_LIMITS["address"])


def _clean_line(line: str) -> str:
    kept = (ch for ch in line if not _dropped(ch))
    drawable = "".join(ch if font_for_char(ch) else "\ufffd" for ch in kept)
    return " ".join(drawable.split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS


# --------------------------------------------------------------------------------------------
# Fonts, chosen per run of text: the standard Helvetica for Windows-1252 text (nothing to embed),
# DejaVu Sans for Greek, Cyrillic, Arabic, Hebrew and other Latin; WenQuanYi Zen Hei for CJK.
# --------------------------------------------------------------------------------------------

FONT_FILES = {
    "LSSans": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
    "LSSans-Bold": ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 0),
    "LSCJK": ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
}
BASE_FONT, BOLD_FONT, CJK_FONT = "LSSans", "LSSans-Bold", "LSCJK"
STANDARD_FONT, STANDARD_BOLD = "Helvetica", "Helvetica-Bold"
FONT_PACKAGES = "Debian packages fonts-dejavu-core and fonts-wqy-zenhei"


@lru_cache(maxsize=None)
def _font(name: str):
    """Register (once) and return one of the FONT_FILES fonts."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    path, index = FONT_FILES[name]
    if not Path(path).is_file():
        raise ArtifactNotFoundError(f"font file {path} not found: install the {FONT_PACKAGES}")
    font = TTFont(name, path, subfontIndex=index)
    pdfmetrics.registerFont(font)
    return font


@lru_cache(maxsize=None)
def _font_charmap(name: str) -> frozenset[int]:
    return frozenset(_font(name).face.charToGlyph)


@lru_cache(maxsize=65536)
def font_for_char(ch: str) -> str | None:
    """The font that draws `ch` (standard font first), or None when no font has it."""
    if ch == " " or (ch.isprintable() and _in_windows_1252(ch)):
        return STANDARD_FONT
    if ord(ch) in _font_charmap(BASE_FONT):
        return BASE_FONT
    if ord(ch) in _font_charmap(CJK_FONT):
        return CJK_FONT
    return None


def _in_windows_1252(ch: str) -> bool:
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def register_fonts() -> None:
    """Register the notice fonts with reportlab (idempotent)."""
    for name in FONT_FILES:
        _font(name)


_RTL_CLASSES = {"R", "AL"}


def _has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in _RTL_CLASSES for ch in text)


def _font_runs(text: str, bold: bool = False) -> str:
    """Paragraph markup for `text`: escaped, with a <font> tag around each run the standard font lacks."""
    parts, run, run_font = [], [], STANDARD_FONT
    for ch in text:
        font = font_for_char(ch) or BASE_FONT
        if font != run_font and run:
            parts.append(_tagged("".join(run), run_font, bold))
            run = []
        run_font = font
        run.append(ch)
    if run:
        parts.append(_tagged("".join(run), run_font, bold))
    return "".join(parts)


_BOLD_OF = {BASE_FONT: BOLD_FONT, CJK_FONT: CJK_FONT}


def _tagged(text: str, font: str, bold: bool) -> str:
    from xml.sax.saxutils import escape

    if font == STANDARD_FONT:
        return escape(text)
    font = _BOLD_OF[font] if bold else font
    _font(font)
    return f'<font name="{font}">{escape(text)}</font>'


def _visual_lines(line: str, width: float, size: float) -> list[str]:
    """Right-to-left text wrapped to `width` in logical order, then each line shaped and reordered."""
    import arabic_reshaper
    from bidi import get_display
    from reportlab.pdfbase.pdfmetrics import stringWidth

    chunks, current = [], ""
    for word in _split_long_words(line.split(" "), width, size):
        candidate = f"{current} {word}" if current else word
        if current and stringWidth(arabic_reshaper.reshape(candidate), BASE_FONT, size) > width:
            chunks.append(current)
            candidate = word
        current = candidate
    chunks.append(current)
    return [get_display(arabic_reshaper.reshape(chunk)) for chunk in chunks]


def _split_long_words(words: list[str], width: float, size: float) -> list[str]:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    out = []
    for word in words:
        while len(word) > 1 and stringWidth(word, BASE_FONT, size) > width:
            cut = max(1, int(len(word) * width / stringWidth(word, BASE_FONT, size)) - 1)
            out.append(word[:cut])
            word = word[cut:]
        out.append(word)
    return out


@lru_cache(maxsize=4096)
def markup(text: str, *, width: float = 468.0, size: float = 9.5, bold: bool = False) -> str:
    """Paragraph markup for cleaned text: lines joined by <br/>, right-to-left lines reordered."""
    lines = []
    for line in text.split("\n"):
        visual = _visual_lines(line, width, size) if _has_rtl(line) else [line]
        lines.extend(_font_runs(v, bold) for v in visual)
    return "<br/>".join(lines)


def format_date(iso: str) -> str:
    """'2026-11-03' -> 'November 3, 2026' (locale independent)."""
    day = dt.date.fromisoformat(iso)
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


# --------------------------------------------------------------------------------------------
# Rendering (reportlab platypus, deterministic: invariant=1 and dates taken from the notice)
# --------------------------------------------------------------------------------------------

_RENDER_LOCK = threading.Lock()     # reportlab objects are shared between notices (see _cached_para)
PAGE_MARGIN = 54.0          # points (0.75 inch) on every side of US Letter
FOOTER_SPACE = 30.0
BODY_SIZE = 9.5
SPECIMEN_RGB = (0.75, 0.1, 0.1)
SPECIMEN_MARK_GRAY = 0.86   # the diagonal mark is drawn under the text, light enough to read through
SPECIMEN_MARK_WIDTH = 0.6   # share of the page diagonal the mark spans


@lru_cache(maxsize=1)
def _styles() -> dict[str, Any]:
    """Paragraph styles, built once (fonts registered on first use)."""
    from reportlab.lib.colors import Color
    from reportlab.lib.styles import ParagraphStyle

    body = ParagraphStyle("body", fontName=STANDARD_FONT, fontSize=BODY_SIZE, leading=12.2, splitLongWords=1)
    return {
        "specimen": ParagraphStyle("specimen", parent=body, fontName=STANDARD_BOLD, textColor=Color(*SPECIMEN_RGB),
                                   spaceAfter=6),
        "title": ParagraphStyle("title", parent=body, fontName=STANDARD_BOLD, fontSize=14, leading=18, spaceAfter=6),
        "heading": ParagraphStyle("heading", parent=body, fontName=STANDARD_BOLD, fontSize=10.5, leading=13,
                                  spaceBefore=9, spaceAfter=3),
        "body": body,
        "name": ParagraphStyle("name", parent=body, fontSize=10.5, leading=13),
        "item": ParagraphStyle("item", parent=body, leftIndent=16, bulletIndent=2, spaceAfter=1),
        "block": ParagraphStyle("block", parent=body, leftIndent=16, spaceBefore=3, spaceAfter=3),
    }


def _frame_width() -> float:
    from reportlab.lib.pagesizes import LETTER

    return LETTER[0] - 2 * PAGE_MARGIN


def _para(text: str, style: str = "body", *, bullet: str | None = None):
    """A paragraph of cleaned text; identical ones are shared between notices (parsed and wrapped once)."""
    return _cached_para(text, style, bullet)


@lru_cache(maxsize=2048)
def _cached_para(text: str, style: str, bullet: str | None):
    chosen = _styles()[style]
    text = markup(text, width=_frame_width() - chosen.leftIndent - 2, size=chosen.fontSize,
                  bold=chosen.fontName == STANDARD_BOLD)
    return _paragraph_class()(text, chosen, bulletText=bullet)


@lru_cache(maxsize=1)
def _paragraph_class():
    from reportlab.platypus import Paragraph

    class WrapCachedParagraph(Paragraph):
        """A Paragraph that keeps its line breaks for the last width it was wrapped to."""

        def wrap(self, availWidth, availHeight):
            cached = self.__dict__.get("_wrap_cache")
            if cached and cached[0] == availWidth:
                _, self.width, self._wrapWidths, self.blPara, self.height = cached
                return self.width, self.height
            size = super().wrap(availWidth, availHeight)
            self._wrap_cache = (availWidth, self.width, self._wrapWidths, self.blPara, self.height)
            return size

    return WrapCachedParagraph


def _section(heading: str, *flowables):
    """A heading and its paragraphs, kept on one page when they fit."""
    return _section_class()([_para(heading, "heading"), *flowables])


@lru_cache(maxsize=1)
def _section_class():
    from reportlab.platypus import KeepTogether

    class Section(KeepTogether):
        """KeepTogether for plain paragraphs: measures them directly instead of on a copy of the frame."""

        def wrap(self, aW, aH):
            heights = [f.wrapOn(self.canv, aW, 0xFFFFFFF)[1] for f in self._content]
            gaps = [max(b.getSpaceBefore() - a.getSpaceAfter(), 0) + a.getSpaceAfter()
                    for a, b in zip(self._content, self._content[1:])]
            self._H, self._H0, self._wrapInfo = sum(heights) + sum(gaps), heights[0], (aW, aH)
            return aW, 0xFFFFFF

    return Section


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _header_story(n: Notice) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    applied = (t["application_date"].format(date=format_date(n.application_date)) if n.application_date
               else t["application_date_missing"])
    story = [*_specimen_header(n), _para(h["title"], "title"),
             _para(t["notice_date"].format(date=format_date(n.notice_date))), _para(applied),
             *_parties_story(n)]
    return story


def _specimen_header(n: Any) -> list:
    return [_para(n.wording["text"]["specimen_header"], "specimen")] if n.specimen else []


def _parties_story(n: Any) -> list:
    """The creditor's and the applicant's name and address."""
    h, t = n.wording["headings"], n.wording["text"]
    phone = t["phone"].format(phone=n.creditor_phone) if n.creditor_phone else ""
    story = [_section(h["creditor"], _para(n.creditor_name, "name"), _para(_lines(n.creditor_address, phone)))]
    if n.applicant_name or n.applicant_address:
        story.append(_section(h["applicant"], _para(_lines(n.applicant_name, n.applicant_address))))
    return story


def _action_story(n: Notice, explanation_limit: int) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    action = (t["action_counteroffer"].format(terms=n.counteroffer_terms) if n.action == "counteroffer"
              else t["action_deny"])
    story = [_section(h["action"], _para(action))]
    if n.reasons_mode == "specific":
        items = [_para(r, "item", bullet=f"{i}.") for i, r in enumerate(n.reasons, 1)]
        story.append(_section(h["reasons"], _para(t["reasons_intro"]), *items))
    else:
        name, address, phone = n.request_contact
        contact = _lines(name, address, t["phone"].format(phone=phone) if phone else "")
        story.append(_section(h["request"], _para(t["request_text"]), _para(contact, "block")))
    explanation = _truncate(n.explanation or "", explanation_limit) if explanation_limit > 0 else ""
    if explanation:
        story.append(_section(h["explanation"], _para(explanation)))
    return story


def _ecoa_section(n: Any):
    h, t = n.wording["headings"], n.wording["text"]
    agencies = [_para(_lines(name, address), "block") for name, address in n.agencies]
    return _section(h["ecoa"], _para(t["ecoa_text"]), *agencies)


def creditor_contact(n: Any) -> str:
    """The creditor's name, address and telephone as one block of lines."""
    phone = n.wording["text"]["phone"].format(phone=n.creditor_phone) if n.creditor_phone else ""
    return _lines(n.creditor_name, n.creditor_address, phone)


def _rights_story(n: Notice) -> list:
    h, t = n.wording["headings"], n.wording["text"]
    story = [_ecoa_section(n)]
    if n.consumer_report:
        name, address, phone = n.consumer_report
        story.append(_section(h["fcra"], _para(t["fcra_text"]),
                              _para(_lines(name, address, t["phone"].format(phone=phone)), "block"),
                              _para(t["fcra_rights"])))
    if n.third_party:
        story.append(_section(h["third_party"], _para(t["third_party_text"]), _para(creditor_contact(n), "block")))
    if n.credit_score:
        story.append(_score_section(n))
    return story


def _score_section(n: Notice):
    h, t, s = n.wording["headings"], n.wording["text"], n.credit_score
    lines = [t["score_value"].format(score=s["score"]), t["score_range"].format(low=s["low"], high=s["high"]),
             t["score_date"].format(date=format_date(s["date"])), t["score_source"].format(source=s["source"])]
    factors = [_para(f, "item", bullet=f"{i}.") for i, f in enumerate(s["factors"], 1)]
    return _section(h["score"], _para(t["score_intro"]), _para("\n".join(lines), "block"),
                    _para(t["score_factors"]), *factors)


@lru_cache(maxsize=8)
def _specimen_geometry(text: str) -> tuple[str, float, float, float, float, float]:
    """(font, size, width, x, y, angle) of the diagonal mark: centred, along the page diagonal (computed once)."""
    import math

    from reportlab.lib.pagesizes import LETTER
    from reportlab.pdfbase.pdfmetrics import stringWidth

    font = STANDARD_BOLD if all(font_for_char(c) == STANDARD_FONT for c in text) else _font(BOLD_FONT).fontName
    diagonal = math.hypot(*LETTER)
    size = min(140.0, SPECIMEN_MARK_WIDTH * diagonal / max(stringWidth(text, font, 1), 1e-6))
    return font, size, stringWidth(text, font, size), LETTER[0] / 2, LETTER[1] / 2, math.degrees(math.atan2(LETTER[1], LETTER[0]))


def _draw_specimen_mark(canvas, text: str) -> None:
    """The diagonal SPECIMEN mark, drawn under the page's text."""
    font, size, width, x, y, angle = _specimen_geometry(text)
    canvas.saveState()
    canvas.setFillGray(SPECIMEN_MARK_GRAY)
    canvas.translate(x, y)
    canvas.rotate(angle)
    canvas.setFont(font, size)
    # the trailing space ends the word: poppler would otherwise add the next text drawn to it
    canvas.drawString(-width / 2, -size * 0.35, text + " ")
    canvas.restoreState()


@lru_cache(maxsize=4096)
def _cleaned(text: str, limit: int) -> str:
    """clean_text of a footer line, once per distinct text (footers repeat on every page and notice)."""
    return clean_text(text, limit)


@lru_cache(maxsize=4096)
def _line_font(text: str) -> str:
    """The font a footer line is drawn in: the standard font when it has every character."""
    return STANDARD_FONT if all(font_for_char(c) == STANDARD_FONT for c in text) else _font(BASE_FONT).fontName


def _footer_drawer(n: Any):
    """Draws each page's footer (document id, evidence hash, page) and, on a specimen, the diagonal mark."""
    t = n.wording["text"]
    document = _cleaned(t["footer_document"].format(document_id=n.document_id), 200)
    evidence = _cleaned(t["footer_evidence"].format(sha256=n.evidence_sha256), 200)
    mark = _cleaned(t["specimen_mark"], 40) if n.specimen else ""

    def draw(canvas, doc) -> None:
        from reportlab.lib.pagesizes import LETTER

        page = t["footer_page"].format(page=doc.page)
        canvas.saveState()
        for text, y, right in ((document, 10, False), (evidence, 19, False), (page, 10, True)):
            canvas.setFont(_line_font(text), 7)
            draw_at = canvas.drawRightString if right else canvas.drawString
            draw_at(LETTER[0] - PAGE_MARGIN if right else PAGE_MARGIN, PAGE_MARGIN - y, text)
        canvas.restoreState()
        if mark:
            _draw_specimen_mark(canvas, mark)

    return draw


def build_document(n: Any, story: list, title: str) -> tuple[bytes, int]:
    """PDF bytes and page count of `story` on US Letter, with `n`'s footer (and specimen mark) on every page."""
    import io

    from reportlab.lib.pagesizes import LETTER
    from reportlab.platypus import SimpleDocTemplate

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=LETTER, invariant=1, leftMargin=PAGE_MARGIN,
                            rightMargin=PAGE_MARGIN, topMargin=PAGE_MARGIN, bottomMargin=PAGE_MARGIN + FOOTER_SPACE,
                            title=title, author="LendSafe", creator="LendSafe", subject=n.document_id)
    footer = _footer_drawer(n)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue(), doc.page


def _build_pdf(n: Notice, explanation_limit: int) -> tuple[bytes, int]:
    story = _header_story(n) + _action_story(n, explanation_limit) + _rights_story(n)
    return build_document(n, story, n.wording["headings"]["title"])


def render_pdf(notice: Notice) -> bytes:
    """The notice as PDF bytes: identical bytes for an identical Notice, at most MAX_PAGES pages.

    When the notice would run longer, the explanation narrative is shortened (with an ellipsis),
    then left out; required elements are never dropped.
    """
    limit = notice.max_explanation_chars
    with _RENDER_LOCK:
        while True:
            pdf, pages = _build_pdf(notice, limit)
            if pages <= MAX_PAGES or limit == 0 or not notice.explanation:
                return pdf
            limit = limit // 2 if limit > 100 else 0


def render_story(n: Any, story: Callable[[], list], title: str) -> bytes:
    """PDF bytes of another kind of notice `n` (same fonts, footer and specimen mark); `story()` is
    called under the render lock because paragraphs are shared between notices."""
    with _RENDER_LOCK:
        return build_document(n, story(), title)[0]


# --------------------------------------------------------------------------------------------
# Completeness check over the PDF's own text (poppler pdftotext -layout)
# --------------------------------------------------------------------------------------------

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
    from itertools import zip_longest

    return [Counter(compact(full)) - Counter(compact(flat))
            for flat, full in zip_longest(horizontal, everything, fillvalue="")]


def normalize(text: str) -> str:
    """Comparable text: NFKC, no bidi marks, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    return " ".join("".join(ch for ch in text if ch not in _BIDI_CONTROLS).split())


def compact(text: str) -> str:
    """Comparable text with no whitespace at all (immune to line wrapping)."""
    return "".join(normalize(text).split())


@dataclass
class _Extracted:
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


def _template_parts(template: str) -> list[str]:
    """The placeholder-free parts of a template string."""
    return [p for p in re.split(r"\{[^{}]*\}", template) if p.strip()]


def _extract(pdf_bytes: bytes, wording: dict[str, dict[str, str]]) -> _Extracted:
    text = wording["text"]
    label = {key: re.escape(compact(_template_parts(text[key])[0]))
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
    return _Extracted(lines, len(pages), ids, evidence, diagonal_text(pages, everything))


def marked_pages(text: _Extracted, mark: str) -> list[bool]:
    """Per page, whether the diagonal `mark` is drawn on it."""
    wanted = Counter(compact(mark))
    return [bool(wanted) and wanted <= found for found in text.diagonal]


RTL_WINDOW_LINES = 8
_MIRRORED = str.maketrans(")>]}\u00bb", "(<[{\u00ab")


def _unmirrored(text: str) -> str:
    return text.translate(_MIRRORED)


_DATE_PATTERN = "(?:" + "|".join(MONTHS) + r")\d{1,2},\d{4}"
_ITEM = re.compile(r"^\s*(\d+)\.\s+(.*)$")


@dataclass
class _Context:
    """What a check looks at: the extracted text, and the notice the decision and settings imply."""

    text: _Extracted
    decision: Decision | None          # None for notices that are not about a decision (incompleteness)
    settings: NoticeSettings
    expected: Any                      # the Notice (or IncompleteNotice) the decision and settings imply
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
        return all(compact(t) in self.flat or (_has_rtl(t) and self._has_characters(t)) for t in texts if t)

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
        import string

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


def _result(missing: list[str], what: str) -> CheckResult:
    return CheckResult(not missing, f"{what} present" if not missing else f"missing: {', '.join(missing)}")


def _check_pages(c: _Context) -> CheckResult:
    return CheckResult(1 <= c.text.pages <= MAX_PAGES, f"{c.text.pages} page(s); expected 1 to {MAX_PAGES}")


def _check_title(c: _Context) -> CheckResult:
    return _result([] if c.has(c.headings["title"]) else ["title"], "title")


def _check_dates(c: _Context) -> CheckResult:
    missing = [] if c.has_template(c.wording["notice_date"]) else ["notice date"]
    if not (c.has_template(c.wording["application_date"]) or c.has(c.wording["application_date_missing"])):
        missing.append("application date")
    return _result(missing, "notice and application dates")


def _check_creditor(c: _Context) -> CheckResult:
    e = c.expected
    return _result(c.missing({"creditor name": e.creditor_name, "creditor address": e.creditor_address,
                              "creditor phone": e.creditor_phone}), "creditor name, address and contact")


def _check_applicant(c: _Context) -> CheckResult:
    e = c.expected
    return _result(c.missing({"applicant name": e.applicant_name, "applicant address": e.applicant_address}),
                   "applicant fields given in the application")


def _check_action(c: _Context) -> CheckResult:
    deny = c.has(c.wording["action_deny"])
    counteroffer = c.has_template(c.wording["action_counteroffer"])
    if deny == counteroffer:
        return CheckResult(False, f"expected exactly one action statement; found deny={deny}, "
                                  f"counteroffer={counteroffer}")
    return CheckResult(True, "counteroffer stated" if counteroffer else "denial stated")


def _reason_items(c: _Context) -> list[str] | None:
    """Numbered items of the reasons section, or None when there is no reasons section."""
    heading = compact(c.headings["reasons"])
    others = [compact(c.headings[k]) for k in ("explanation", "ecoa", "fcra", "third_party", "score", "request")]
    lines = [compact(line) for line in c.text.lines]
    starts = [i for i, line in enumerate(lines) if line == heading]
    if not starts:
        return None
    items: list[str] = []
    for raw, flat in zip(c.text.lines[starts[0] + 1:], lines[starts[0] + 1:]):
        if flat in others:
            break
        if found := _ITEM.match(normalize(raw)):
            items.append(found.group(2))
        elif items and flat:
            items[-1] += " " + normalize(raw)
    return items


def _check_reasons(c: _Context) -> CheckResult:
    items = _reason_items(c)
    if c.settings.reasons_mode == "request":
        name, address, phone = c.expected.request_contact
        missing = c.missing({"request heading": c.headings["request"], "request text": c.wording["request_text"],
                             "contact name": name, "contact address": address, "contact phone": phone})
        if items is not None:
            missing.append("no reasons list in request mode (found one)")
        return _result(missing, "right to request reasons with contact")
    expected = [compact(s) for s in c.expected.reasons]
    if items is None:
        return CheckResult(False, "missing: principal reasons section")
    if [compact(i) for i in items] != expected:
        return CheckResult(False, f"reasons in the PDF {items} differ from the decision's {list(c.expected.reasons)}")
    return CheckResult(True, f"{len(items)} reason(s) match the decision, in order")


def _check_reason_count(c: _Context) -> CheckResult:
    items = _reason_items(c) or []
    return CheckResult(len(items) <= MAX_REASONS, f"{len(items)} reason(s) listed; at most {MAX_REASONS}")


def _check_ecoa(c: _Context) -> CheckResult:
    labelled = {"ECOA heading": c.headings["ecoa"], "ECOA notice": c.wording["ecoa_text"]}
    for name, address in c.expected.agencies:
        labelled |= {f"agency {name}": name, f"address of {name}": address}
    return _result(c.missing(labelled), "ECOA notice with supervising agency")


def _check_fcra(c: _Context) -> CheckResult:
    if c.expected.consumer_report is None:
        present = c.has(c.headings["fcra"])
        return CheckResult(not present, "no consumer report used; FCRA block " + ("present" if present else "absent"))
    name, address, phone = c.expected.consumer_report
    return _result(c.missing({"FCRA heading": c.headings["fcra"], "FCRA statement": c.wording["fcra_text"],
                              "FCRA rights": c.wording["fcra_rights"], "agency name": name,
                              "agency address": address, "agency phone": phone}), "FCRA 615(a) block")


def _check_third_party(c: _Context) -> CheckResult:
    if not c.expected.third_party:
        present = c.has(c.headings["third_party"])
        return CheckResult(not present, "no reason rests on an outside source; FCRA 615(b)(1) block "
                                        + ("present" if present else "absent"))
    e = c.expected
    return _result(c.missing({"615(b)(1) heading": c.headings["third_party"],
                              "615(b)(1) statement": c.wording["third_party_text"],
                              "contact name": e.creditor_name, "contact address": e.creditor_address}),
                   "FCRA 615(b)(1) block")


def specimen_marks(text: _Extracted, wording: dict[str, dict[str, str]]) -> tuple[bool, list[bool]]:
    """(header line present, diagonal mark per page) as read from the PDF."""
    t = wording["text"]
    header = compact(t["specimen_header"]) in text.compact
    return header, marked_pages(text, clean_text(t["specimen_mark"], 40))


def _check_specimen(c: _Context) -> CheckResult:
    header, marks = specimen_marks(c.text, c.expected.wording)
    if not c.expected.specimen:
        ok = not header and not any(marks)
        return CheckResult(ok, "settings configured; no specimen marking" if ok else
                           f"settings configured but the PDF is marked SPECIMEN (header {header}, marks {marks})")
    ok = header and bool(marks) and all(marks)
    placeholders = ", ".join(c.settings.placeholders) or "specimen = true"
    return CheckResult(ok, f"SPECIMEN header and a mark on each of {len(marks)} page(s) ({placeholders})" if ok
                       else f"expected SPECIMEN header and a mark on every page ({placeholders}); "
                            f"found header {header}, marks per page {marks}")


def _check_score(c: _Context) -> CheckResult:
    s, w = c.expected.credit_score, c.wording
    if s is None:
        present = c.has(c.headings["score"])
        return CheckResult(not present, "no credit score used; score block " + ("present" if present else "absent"))
    missing = c.missing({"score heading": c.headings["score"], "source": w["score_source"].format(source=s["source"]),
                         **{f"factor {i}": f for i, f in enumerate(s["factors"], 1)}})
    checks = {"score": (w["score_value"], {"score": s["score"]}), "range": (w["score_range"], s),
              "date": (w["score_date"], {"date": format_date(s["date"])})}
    missing += [label for label, (tpl, values) in checks.items() if not c.has_template(tpl, **values)]
    return _result(missing, "credit-score disclosure")


def _check_document_id(c: _Context) -> CheckResult:
    ids = c.text.document_ids
    ok = bool(ids) and len(ids) == c.text.pages and len(set(ids)) == 1 and bool(DOCUMENT_ID_PATTERN.match(ids[0]))
    return CheckResult(ok, f"document id {ids[0]!r} on every page" if ok else f"document ids per page: {ids}")


def _check_evidence(c: _Context) -> CheckResult:
    found, expected = c.text.evidence, c.expected.evidence_sha256
    ok = len(found) == c.text.pages and set(found) == {expected}
    return CheckResult(ok, "evidence sha256 matches the decision" if ok
                       else f"expected {expected} on each of {c.text.pages} page(s); found {found}")


def _lender_free_text(c: _Context) -> str:
    """Body text (lower case) without the template's own wording and the names, addresses and score
    details the lender or applicant supplied: what remains is reasons, explanation and terms."""
    text = normalize(c.text.body).lower()
    e = c.expected
    score = getattr(e, "credit_score", None) or {}
    supplied = [e.creditor_name, e.creditor_address, e.applicant_name, e.applicant_address,
                *(getattr(e, "consumer_report", None) or ()), *(getattr(e, "request_contact", None) or ()),
                *(x for a in e.agencies for x in a), *(score.get("factors") or ()), score.get("source", "")]
    for value in sorted((normalize(v).lower() for v in [*supplied, *_wording_parts(e.wording)] if v),
                        key=len, reverse=True):
        text = text.replace(value, " ")
    return text


def _wording_parts(wording: dict[str, dict[str, str]]) -> list[str]:
    """The template's headings and the placeholder-free parts of its texts."""
    return [part for texts in wording.values() for value in texts.values() for part in _template_parts(value)]


@lru_cache(maxsize=1)
def _content_rules() -> tuple[tuple[str, re.Pattern], ...]:
    """(kind, pattern) of what never belongs on a notice: the verifier's own lists, one source for both."""
    return tuple((kind, re.compile(pattern, re.IGNORECASE))
                 for kind, patterns in (("forbidden", FORBIDDEN_PATTERNS), ("internal", INTERNAL_PATTERNS))
                 for pattern in patterns)


def _content_found(c: _Context, kind: str) -> list[str]:
    text = _lender_free_text(c)
    return sorted({m.group(0) for k, rule in _content_rules() if k == kind for m in rule.finditer(text)})


def _check_forbidden(c: _Context) -> CheckResult:
    found = _content_found(c, "forbidden")
    return CheckResult(not found, f"forbidden phrases found: {found}" if found else "no promises")


def _check_internal(c: _Context) -> CheckResult:
    found = _content_found(c, "internal")
    return CheckResult(not found, f"internal terms found: {found}" if found else "no internal terms")


def _number_forms(value: float, decimals: tuple[int, ...]) -> set[str]:
    forms = {f"{value:.{d}f}" for d in decimals} | {f"{value * 100:.0f}%", f"{value * 100:.1f}%"}
    return forms | {f"{value:g}"}


def _applicant_numbers(decision: Decision) -> set[str]:
    """Numbers the applicant supplied: an explanation may quote them even when they equal an internal one."""
    shown = {str(r.display_value) for r in decision.reasons} | {str(r.value) for r in decision.reasons}
    numbers = [v for v in (decision.application or {}).values() if isinstance(v, (int, float))]
    return shown.union(*(_number_forms(float(v), (2, 3)) | {str(v)} for v in numbers))


def _number_found(c: _Context, value: float, decimals: tuple[int, ...]) -> list[str]:
    text = normalize(c.text.body)
    forms = _number_forms(value, decimals) - _applicant_numbers(c.decision)
    pattern = r"(?<![\d.]){}(?![\d])"
    return sorted(f for f in forms if re.search(pattern.format(re.escape(f).replace("%", r"\s?%")), text))


def _check_threshold(c: _Context) -> CheckResult:
    found = _number_found(c, float(c.decision.threshold), (2, 3))
    return CheckResult(not found, f"threshold shown as {found}" if found else "threshold not shown")


def _check_risk(c: _Context) -> CheckResult:
    found = _number_found(c, float(c.decision.risk), (2, 3, 4))
    return CheckResult(not found, f"internal risk score shown as {found}" if found else "risk score not shown")


CHECKS = {
    "pages": _check_pages,
    "title": _check_title,
    "dates": _check_dates,
    "creditor": _check_creditor,
    "applicant": _check_applicant,
    "action": _check_action,
    "reasons": _check_reasons,
    "reason_count": _check_reason_count,
    "ecoa_notice": _check_ecoa,
    "fcra_block": _check_fcra,
    "third_party_block": _check_third_party,
    "credit_score_block": _check_score,
    "document_id": _check_document_id,
    "evidence_sha256": _check_evidence,
    "forbidden_phrases": _check_forbidden,
    "internal_terms": _check_internal,
    "specimen_marking": _check_specimen,
    "threshold_absent": _check_threshold,
    "risk_score_absent": _check_risk,
}


def check_pdf(pdf_bytes: bytes, decision: Decision, settings: NoticeSettings | None = None) -> NoticeCheck:
    """Check a notice PDF's own text against the decision and the notice settings (default settings
    when none are given): every required element present, reasons equal to the decision's (same
    statements, same order, at most 4), the FCRA 615(a) and 615(b)(1) blocks the reasons' sources call
    for, the SPECIMEN marking exactly when the settings are not configured, and no promise, internal
    term (the verifier's lists), threshold or risk score."""
    settings = settings or NoticeSettings()
    if not decision.denied:
        return NoticeCheck({"adverse_decision": CheckResult(False, f"decision is {decision.decision!r}; "
                                                                   "a notice needs a denial")})
    try:
        expected = build_notice(decision, settings, notice_date=dt.date(2000, 1, 1))
    except LendSafeError as exc:
        return NoticeCheck({"adverse_decision": CheckResult(False, str(exc))})
    return run_checks(pdf_bytes, expected, settings, CHECKS, decision,
                      first={"adverse_decision": CheckResult(True, "denied decision")})


# Checks that read the same in any kind of notice (incompleteness notices reuse them).
SHARED_CHECKS = ("pages", "creditor", "applicant", "ecoa_notice", "document_id", "evidence_sha256",
                 "forbidden_phrases", "internal_terms", "specimen_marking")


def run_checks(pdf_bytes: bytes, expected: Any, settings: NoticeSettings, checks: dict[str, Callable],
               decision: Decision | None = None, first: dict[str, CheckResult] | None = None) -> NoticeCheck:
    """Run `checks` (name -> function of the context) over the PDF's text against the `expected` notice."""
    text = _extract(pdf_bytes, expected.wording)
    context = _Context(text, decision, settings, expected)
    results = dict(first or {}) | {name: check(context) for name, check in checks.items()}
    header, marks = specimen_marks(text, expected.wording)
    return NoticeCheck(results, text=text.body, specimen=header or any(marks))
