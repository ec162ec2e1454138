"""Lender settings for notices (`NoticeSettings`): who sends them, who supervises the lender (the Reg B
Appendix A agency table), what was used (consumer report, credit score) and the wording template. Every
value is type-checked against a table when read; the demonstration values stamp notices SPECIMEN.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.notice.dates import parse_date
from lendsafe.notice.reading import SETTINGS_MAX_BYTES, TEXT_MAX_CHARS, is_text, read_settings_bytes
from lendsafe.notice.text import clean_text
from lendsafe.notice.wording import DEFAULT_TEMPLATE, load_wording
from lendsafe.redaction import printable

REASONS_MODES = ("specific", "request")

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
EDUCATIONAL_OPTIONS = (1, 6)    # bounds of the educational section's number of options
# Settings added after notices were first recorded: kept out of the recorded settings while at their
# default, so a record made without them has the same bytes as before they existed.
LATER_DEFAULTS = {"educational_section": False, "educational_options": 2}


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
    educational_section: bool = field(default=False, metadata=_help(
        "print an educational section on denial notices: which changes, proven by re-scoring with the same model, "
        "would have met the credit standards, in wording that promises nothing (off by default)"))
    educational_options: int = field(default=2, metadata=_help(
        f"at most this many options in the educational section, {EDUCATIONAL_OPTIONS[0]} to {EDUCATIONAL_OPTIONS[1]}"))

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
        if not EDUCATIONAL_OPTIONS[0] <= self.educational_options <= EDUCATIONAL_OPTIONS[1]:
            raise ConfigurationError(f"educational_options must be a whole number from {EDUCATIONAL_OPTIONS[0]} to "
                                     f"{EDUCATIONAL_OPTIONS[1]}; got {self.educational_options!r}")
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
        parse_date("score_date", self.score_date)
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
        return {k: v for k, v in data.items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}

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
# Every value's type checked against a table, no silent coercion
# --------------------------------------------------------------------------------------------

BOOL_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**9


def _texts(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) <= 20 and all(is_text(v) for v in value)


def _as_bool(value: Any) -> Any:
    return BOOL_WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value


# Field type -> (check of the value after `convert`, what is expected, convert)
SETTING_TYPES: dict[str, tuple[Callable[[Any], bool], str, Callable[[Any], Any]]] = {
    "str": (is_text, f"text of at most {TEXT_MAX_CHARS} characters", lambda v: v),
    "bool": (lambda v: isinstance(v, bool), "true or false (or yes / no)", _as_bool),
    "int": (_is_int, "a whole number", lambda v: v),
    "int | None": (lambda v: v is None or _is_int(v), "a whole number (or nothing)", lambda v: v),
    "tuple[str, ...]": (_texts, "a list of texts", lambda v: v),
    "agency": (lambda v: is_text(v) or _texts(v), "a text or a list of texts", lambda v: v),
    "tuple[int, int]": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_int, v)),
                        "a list of two whole numbers [low, high]", lambda v: v),
    "Path": (lambda v: isinstance(v, Path) or (is_text(v) and "\x00" not in v), "a file path", lambda v: v),
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
