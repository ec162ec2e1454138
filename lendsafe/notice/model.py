"""The adverse-action notice's content (`Notice`) and how it is made from a denied `Decision` and the
lender's `NoticeSettings` (`build_notice`, pure apart from today's date when none is given).

The notice carries what 12 CFR 1002.9(a)(2) and (b) and FCRA section 615 (15 U.S.C. 1681m) ask
for: creditor, dates, the action taken, up to four principal reasons in the catalog's words (or the
right to request them), the ECOA notice with the supervising agency, the consumer-report block
(615(a)) when a consumer report was used, the outside-source block (615(b)(1)) when a principal
reason rests on a third party that is not a consumer reporting agency and, when a score was used,
the credit-score block. Its evidence hash is the sha256 of the decision's canonical JSON
(``lendsafe.canonical``), the same bytes the audit store hashes.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from lendsafe.canonical import canonical_sha256
from lendsafe.decide.decision import Decision
from lendsafe.errors import ConfigurationError, LendSafeError
from lendsafe.explain.grounding import information_sources
from lendsafe.explain.verify.patterns import APPLICANT_PATTERNS
from lendsafe.explain.verify.text import find_all
from lendsafe.notice.dates import checked_date, parse_date
from lendsafe.notice.settings import NoticeSettings
from lendsafe.notice.text import TEXT_LIMITS, applicant_text, clean_address, clean_text
from lendsafe.notice.wording import load_wording

MAX_REASONS = 4
DOCUMENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


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
    educational: tuple[str, ...] = ()                 # proven recourse, only when the lender turns the section on

    def to_dict(self) -> dict[str, Any]:
        data = json.loads(json.dumps(asdict(self)))
        if not self.educational:
            del data["educational"]     # notices without the section keep the bytes they were recorded with
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Notice":
        data = dict(data)
        data["reasons"] = tuple(data["reasons"])
        data["educational"] = tuple(data.get("educational", ()))
        data["agencies"] = tuple(tuple(a) for a in data["agencies"])
        for key in ("request_contact", "consumer_report"):
            data[key] = tuple(data[key]) if data.get(key) is not None else None
        if data.get("credit_score"):
            data["credit_score"] = {**data["credit_score"], "factors": tuple(data["credit_score"]["factors"])}
        return cls(**data)


def evidence_sha256(decision: Decision) -> str:
    """sha256 of the decision's canonical JSON (``lendsafe.canonical``: sorted keys, compact, UTF-8)."""
    return canonical_sha256(decision.to_dict())


def build_notice(decision: Decision, settings: NoticeSettings, *, notice_date: dt.date | str | None = None,
                 document_id: str | None = None, application_date: dt.date | str | None = None,
                 counteroffer: str | None = None, educational: tuple[str, ...] = ()) -> Notice:
    """The notice for a denied decision (pure apart from today's date when none is given).

    `educational` holds the sentences of the lender's educational section (proven recourse, worded by
    ``lendsafe.recourse.educational_section``); they are refused unless the settings turn the section on
    and none of them contains what the verifier forbids in applicant-facing text.

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
        educational=_educational(educational, settings),
    )


def _educational(sentences: tuple[str, ...], settings: NoticeSettings) -> tuple[str, ...]:
    """The educational section's sentences, cleaned; LendSafeError when the lender has not turned it on or a
    sentence carries a forbidden, protected, internal, hedging or sales phrase."""
    if sentences and not settings.educational_section:
        raise LendSafeError("educational sentences were given but the notice settings do not turn on "
                            "educational_section")
    cleaned = tuple(clean_text(s, TEXT_LIMITS["educational"]) for s in sentences)
    found = [hit for s in cleaned for hit in find_all(APPLICANT_PATTERNS, s)]
    if found:
        raise LendSafeError(f"educational section refused: it contains {sorted(set(found))}")
    return cleaned


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
            "high": int(settings.score_range[1]), "date": parse_date("score_date", settings.score_date).isoformat(),
            "source": clean_text(settings.score_source, TEXT_LIMITS["source"]),
            "factors": tuple(clean_text(f, TEXT_LIMITS["factor"]) for f in settings.score_factors)}
