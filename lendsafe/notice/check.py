"""The completeness check of an issued adverse-action notice, read from the PDF's own text (poppler
`pdftotext`) and compared with the notice as issued (its content, date and document id as recorded):
every required element present, the reasons the decision's (same statements, same order, at most 4), the
FCRA blocks the reasons' sources call for, the SPECIMEN marking exactly when the settings are not
configured, and no promise, internal term (the verifier's own lists), threshold or risk score. The
issued notice itself must be the one its decision and settings make.
"""
from __future__ import annotations

import re
from dataclasses import fields
from functools import lru_cache
from typing import Any

from lendsafe.decide.decision import Decision
from lendsafe.errors import LendSafeError
from lendsafe.explain.verify import FORBIDDEN_PATTERNS, INTERNAL_PATTERNS
from lendsafe.notice.context import CheckContext, CheckResult, NoticeCheck, presence, run_checks
from lendsafe.notice.dates import format_date
from lendsafe.notice.model import DOCUMENT_ID_PATTERN, MAX_REASONS, Notice, build_notice
from lendsafe.notice.pdf import MAX_PAGES
from lendsafe.notice.pdftext import specimen_marks
from lendsafe.notice.settings import NoticeSettings
from lendsafe.notice.text import compact, normalize
from lendsafe.notice.wording import wording_parts

_ITEM = re.compile(r"^\s*(\d+)\.\s+(.*)$")


def _check_pages(c: CheckContext) -> CheckResult:
    return CheckResult(1 <= c.text.pages <= MAX_PAGES, f"{c.text.pages} page(s); expected 1 to {MAX_PAGES}")


def _check_title(c: CheckContext) -> CheckResult:
    return presence([] if c.has(c.headings["title"]) else ["title"], "title")


def _check_dates(c: CheckContext) -> CheckResult:
    """The notice date and the application date (or that it was not recorded), exactly as issued."""
    e = c.expected
    missing = [] if c.has_template(c.wording["notice_date"], date=format_date(e.notice_date)) else [
        f"notice date {e.notice_date}"]
    applied = (c.has_template(c.wording["application_date"], date=format_date(e.application_date))
               if e.application_date else c.has(c.wording["application_date_missing"]))
    if not applied:
        missing.append(f"application date {e.application_date or '(not recorded)'}")
    return presence(missing, "notice and application dates as issued")


def _check_creditor(c: CheckContext) -> CheckResult:
    e = c.expected
    return presence(c.missing({"creditor name": e.creditor_name, "creditor address": e.creditor_address,
                              "creditor phone": e.creditor_phone}), "creditor name, address and contact")


def _check_applicant(c: CheckContext) -> CheckResult:
    e = c.expected
    return presence(c.missing({"applicant name": e.applicant_name, "applicant address": e.applicant_address}),
                   "applicant fields given in the application")


def _check_action(c: CheckContext) -> CheckResult:
    deny = c.has(c.wording["action_deny"])
    counteroffer = c.has_template(c.wording["action_counteroffer"])
    if deny == counteroffer:
        return CheckResult(False, f"expected exactly one action statement; found deny={deny}, "
                                  f"counteroffer={counteroffer}")
    return CheckResult(True, "counteroffer stated" if counteroffer else "denial stated")


def _reason_items(c: CheckContext) -> list[str] | None:
    """Numbered items of the reasons section, or None when there is no reasons section."""
    heading = compact(c.headings["reasons"])
    others = [compact(c.headings[k]) for k in ("explanation", "educational", "ecoa", "fcra", "third_party", "score",
                                                  "request")]
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


def _check_reasons(c: CheckContext) -> CheckResult:
    items = _reason_items(c)
    if c.expected.reasons_mode == "request":
        name, address, phone = c.expected.request_contact
        missing = c.missing({"request heading": c.headings["request"], "request text": c.wording["request_text"],
                             "contact name": name, "contact address": address, "contact phone": phone})
        if items is not None:
            missing.append("no reasons list in request mode (found one)")
        return presence(missing, "right to request reasons with contact")
    expected = [compact(s) for s in c.expected.reasons]
    if items is None:
        return CheckResult(False, "missing: principal reasons section")
    if [compact(i) for i in items] != expected:
        return CheckResult(False, f"reasons in the PDF {items} differ from the decision's {list(c.expected.reasons)}")
    return CheckResult(True, f"{len(items)} reason(s) match the decision, in order")


def _check_educational(c: CheckContext) -> CheckResult:
    """The lender's educational section: every issued sentence printed under its heading, or no section."""
    if not c.expected.educational:
        present = c.has(c.headings["educational"])
        return CheckResult(not present, "no educational section issued; section " + ("present" if present else "absent"))
    labelled = {"educational heading": c.headings["educational"]}
    labelled |= {f"educational sentence {i}": s for i, s in enumerate(c.expected.educational, 1)}
    return presence(c.missing(labelled), f"educational section with {len(c.expected.educational)} sentence(s)")


def _check_reason_count(c: CheckContext) -> CheckResult:
    items = _reason_items(c) or []
    return CheckResult(len(items) <= MAX_REASONS, f"{len(items)} reason(s) listed; at most {MAX_REASONS}")


def _check_ecoa(c: CheckContext) -> CheckResult:
    labelled = {"ECOA heading": c.headings["ecoa"], "ECOA notice": c.wording["ecoa_text"]}
    for name, address in c.expected.agencies:
        labelled |= {f"agency {name}": name, f"address of {name}": address}
    return presence(c.missing(labelled), "ECOA notice with supervising agency")


def _check_fcra(c: CheckContext) -> CheckResult:
    if c.expected.consumer_report is None:
        present = c.has(c.headings["fcra"])
        return CheckResult(not present, "no consumer report used; FCRA block " + ("present" if present else "absent"))
    name, address, phone = c.expected.consumer_report
    return presence(c.missing({"FCRA heading": c.headings["fcra"], "FCRA statement": c.wording["fcra_text"],
                              "FCRA rights": c.wording["fcra_rights"], "agency name": name,
                              "agency address": address, "agency phone": phone}), "FCRA 615(a) block")


def _check_third_party(c: CheckContext) -> CheckResult:
    if not c.expected.third_party:
        present = c.has(c.headings["third_party"])
        return CheckResult(not present, "no reason rests on an outside source; FCRA 615(b)(1) block "
                                        + ("present" if present else "absent"))
    e = c.expected
    return presence(c.missing({"615(b)(1) heading": c.headings["third_party"],
                              "615(b)(1) statement": c.wording["third_party_text"],
                              "contact name": e.creditor_name, "contact address": e.creditor_address}),
                   "FCRA 615(b)(1) block")


def _check_specimen(c: CheckContext) -> CheckResult:
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


def _check_score(c: CheckContext) -> CheckResult:
    s, w = c.expected.credit_score, c.wording
    if s is None:
        present = c.has(c.headings["score"])
        return CheckResult(not present, "no credit score used; score block " + ("present" if present else "absent"))
    missing = c.missing({"score heading": c.headings["score"], "source": w["score_source"].format(source=s["source"]),
                         **{f"factor {i}": f for i, f in enumerate(s["factors"], 1)}})
    checks = {"score": (w["score_value"], {"score": s["score"]}), "range": (w["score_range"], s),
              "date": (w["score_date"], {"date": format_date(s["date"])})}
    missing += [label for label, (tpl, values) in checks.items() if not c.has_template(tpl, **values)]
    return presence(missing, "credit-score disclosure")


def _check_document_id(c: CheckContext) -> CheckResult:
    """The issued notice's document id in the footer of every page."""
    ids, wanted = c.text.document_ids, c.expected.document_id
    ok = len(ids) == c.text.pages and set(ids) == {wanted} and bool(DOCUMENT_ID_PATTERN.match(wanted))
    return CheckResult(ok, f"document id {wanted!r} on every page" if ok
                       else f"expected document id {wanted!r} on each of {c.text.pages} page(s); found {ids}")


def _check_evidence(c: CheckContext) -> CheckResult:
    found, expected = c.text.evidence, c.expected.evidence_sha256
    ok = len(found) == c.text.pages and set(found) == {expected}
    return CheckResult(ok, "evidence sha256 matches the decision" if ok
                       else f"expected {expected} on each of {c.text.pages} page(s); found {found}")


def _lender_free_text(c: CheckContext) -> str:
    """Body text (lower case) without the template's own wording and the names, addresses and score
    details the lender or applicant supplied: what remains is reasons, explanation and terms."""
    text = normalize(c.text.body).lower()
    e = c.expected
    score = getattr(e, "credit_score", None) or {}
    supplied = [e.creditor_name, e.creditor_address, e.applicant_name, e.applicant_address,
                *(getattr(e, "consumer_report", None) or ()), *(getattr(e, "request_contact", None) or ()),
                *(x for a in e.agencies for x in a), *(score.get("factors") or ()), score.get("source", "")]
    for value in sorted((normalize(v).lower() for v in [*supplied, *wording_parts(e.wording)] if v),
                        key=len, reverse=True):
        text = text.replace(value, " ")
    return text


@lru_cache(maxsize=1)
def _content_rules() -> tuple[tuple[str, re.Pattern], ...]:
    """(kind, pattern) of what never belongs on a notice: the verifier's own lists, one source for both."""
    return tuple((kind, re.compile(pattern, re.IGNORECASE))
                 for kind, patterns in (("forbidden", FORBIDDEN_PATTERNS), ("internal", INTERNAL_PATTERNS))
                 for pattern in patterns)


def _content_found(c: CheckContext, kind: str) -> list[str]:
    text = _lender_free_text(c)
    return sorted({m.group(0) for k, rule in _content_rules() if k == kind for m in rule.finditer(text)})


def _check_forbidden(c: CheckContext) -> CheckResult:
    found = _content_found(c, "forbidden")
    return CheckResult(not found, f"forbidden phrases found: {found}" if found else "no promises")


def _check_internal(c: CheckContext) -> CheckResult:
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


def _number_found(c: CheckContext, value: float, decimals: tuple[int, ...]) -> list[str]:
    text = normalize(c.text.body)
    forms = _number_forms(value, decimals) - _applicant_numbers(c.decision)
    pattern = r"(?<![\d.]){}(?![\d])"
    return sorted(f for f in forms if re.search(pattern.format(re.escape(f).replace("%", r"\s?%")), text))


def _check_threshold(c: CheckContext) -> CheckResult:
    found = _number_found(c, float(c.decision.threshold), (2, 3))
    return CheckResult(not found, f"threshold shown as {found}" if found else "threshold not shown")


def _check_risk(c: CheckContext) -> CheckResult:
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
    "educational_section": _check_educational,
    "credit_score_block": _check_score,
    "document_id": _check_document_id,
    "evidence_sha256": _check_evidence,
    "forbidden_phrases": _check_forbidden,
    "internal_terms": _check_internal,
    "specimen_marking": _check_specimen,
    "threshold_absent": _check_threshold,
    "risk_score_absent": _check_risk,
}


def check_pdf(pdf_bytes: bytes, notice: Notice, decision: Decision,
              settings: NoticeSettings | None = None) -> NoticeCheck:
    """Check a notice PDF's own text against `notice`, the notice as issued (its content, date and
    document id as recorded), for the denied `decision`, made with `settings` (default settings when none
    are given): `issued_notice` fails when the decision and settings make a different notice, and every
    element the PDF must print is compared with the issued notice (see CHECKS)."""
    settings = settings or NoticeSettings()
    first = _issued_checks(notice, decision, settings)
    if not first["adverse_decision"].passed:
        return NoticeCheck(first)
    return run_checks(pdf_bytes, notice, settings, CHECKS, decision, first=first)


def rebuild_arguments(notice: Notice) -> dict[str, Any]:
    """The `build_notice` keywords that make `notice` again from its decision and settings."""
    return {"notice_date": notice.notice_date, "document_id": notice.document_id,
            "application_date": notice.application_date, "counteroffer": notice.counteroffer_terms or None,
            "educational": notice.educational}


def _issued_checks(notice: Notice, decision: Decision, settings: NoticeSettings) -> dict[str, CheckResult]:
    """adverse_decision (a denial a notice can state) and issued_notice (the decision and settings make
    exactly the issued notice, field by field)."""
    if not decision.denied:
        return {"adverse_decision": CheckResult(False, f"decision is {decision.decision!r}; a notice needs a denial")}
    try:
        made = build_notice(decision, settings, **rebuild_arguments(notice))
    except LendSafeError as exc:
        return {"adverse_decision": CheckResult(False, str(exc))}
    differ = [f.name for f in fields(Notice) if getattr(made, f.name) != getattr(notice, f.name)]
    return {"adverse_decision": CheckResult(True, "denied decision"),
            "issued_notice": CheckResult(not differ, "the issued notice is the one the decision and settings make"
                                         if not differ else "the issued notice differs from the one the decision "
                                         f"and settings make in: {', '.join(differ)}")}


# Checks that read the same in any kind of notice (incompleteness notices reuse them).
SHARED_CHECKS = ("pages", "creditor", "applicant", "ecoa_notice", "document_id", "evidence_sha256",
                 "forbidden_phrases", "internal_terms", "specimen_marking")
