"""Faithfulness checks on an explanation: a structured report (check -> pass/fail + detail), never a bool.

The verifier proves that a text states only the model's true reasons, in order, with the applicant's
true figures; mentions no protected basis, no promise, no threshold or internal score; cites only
retrieved passages; and reads as a short, plain paragraph.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from lendsafe.datasets import load_spec, with_derived
from lendsafe.decision import Decision
from lendsafe.reasons import load_catalog

# Phrases that show a factor is being presented, per reason code (catalog statements are added too).
REASON_PATTERNS: dict[str, tuple[str, ...]] = {
    "DEBT_TO_INCOME": (r"debt[- ]to[- ]income", r"obligations (?:that are )?(?:high |large )?(?:in relation|compared) (?:to|with) (?:your )?income"),
    "HOUSING_EXPENSE_TO_INCOME": (r"housing[- ]expense", r"housing costs?"),
    "LOAN_TO_VALUE": (r"loan[- ]to[- ](?:value|price)", r"value of (?:the )?(?:collateral|property)"),
    "CONSUMER_CREDIT_HISTORY": (r"consumer credit (?:history|payment|accounts?)", r"credit obligations with others",
                                r"limited credit experience: insufficient consumer"),
    "MORTGAGE_PAYMENT_HISTORY": (r"mortgage (?:credit|payment) history", r"late (?:payments on (?:past or present )?)?mortgage"),
    "PUBLIC_RECORD": (r"public record", r"bankruptcy"),
    "MORTGAGE_INSURANCE_DENIED": (r"mortgage insurance",),
    "SELF_EMPLOYMENT": (r"self[- ]employ\w*", r"type of (?:your )?employment"),
    "PROPERTY_TYPE": (r"condominium", r"type of collateral"),
    "LENGTH_OF_EMPLOYMENT": (r"length of (?:your )?employment", r"(?:years?|time) with your (?:current )?employer"),
    "RESIDENCE_STATUS": (r"type of residence", r"housing status"),
    "LOAN_TERM": (r"loan term", r"term of the loan", r"repayment term"),
    "HOUSEHOLD_EXPENSES": (r"household expenses", r"monthly expenses"),
    "INCOME_INSUFFICIENT": (r"monthly income", r"stated income", r"income (?:is )?insufficient"),
    "ASSETS": (r"\bassets\b",),
    "EXISTING_DEBT": (r"existing debt", r"outstanding debt", r"debt information"),
    "AMOUNT_REQUESTED": (r"size of the loan", r"amount of credit requested", r"loan amount"),
}
PROTECTED_PATTERNS = (
    r"\brace\b", r"\bracial", r"\bcolou?r\b", r"\breligio", r"national origin", r"\bethnic", r"\bsex\b",
    r"\bgender", r"marital", r"\bmarried", r"\bunmarried", r"\bdivorc", r"\bwidow", r"\bspouse",
    r"\bage\b", r"\byears old", r"\belderly", r"\byoung", r"public assistance", r"\bwelfare\b",
    r"\bpregnan", r"childbear", r"\bchildren\b", r"\bdisabilit", r"african", r"\bblack\b", r"\bwhite\b",
    r"hispanic", r"\bneighbou?rhood", r"zip code", r"\beducation", r"high school", r"telephone listing",
)
FORBIDDEN_PATTERNS = (
    r"re-?apply", r"apply again", r"guarantee", r"pre-?approved", r"reconsider", r"promise",
    r"will (?:surely|certainly) be approved", r"approval is assured",
)
INTERNAL_PATTERNS = (r"threshold", r"cut-?off", r"\bscore", r"probabilit", r"\brisk\b", r"\bmodel\b",
                     r"log-?odds", r"shap", r"contribution")
DENIAL_PATTERNS = (r"cannot approve", r"can ?not approve", r"unable to approve", r"not (?:been )?approved",
                   r"\bdenied\b", r"\bdecline", r"\bdeny\b", r"could not approve")
APPROVAL_PATTERNS = (r"pleased to approve", r"\bapproved\b", r"approve your")
CITATION_RE = re.compile(
    r"(?:12|15)\s+(?:CFR|C\.F\.R\.|U\.S\.C\.|USC)\s+§*\s*\d+(?:\.\d+[a-z]?)?(?:\([a-zA-Z0-9]+\))*"
    r"(?:,\s*(?:App\.|Appendix|Supp\.|Supplement)\s*[A-Z]+\b(?:,\s*(?:Form\s*C-\d+|comment\s*[\w()]+-\d+))?)?"
    r"|comment\s+\d+\([a-z]\)(?:\(\d+\))*-\d+|§+\s*\d+(?:\.\d+)?(?:\([a-z0-9]+\))*",
    re.IGNORECASE)
NUMBER_RE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?%?")
LIMITS = {"deny": (25, 230), "approve": (8, 120)}
MAX_SENTENCE_WORDS = 50
MAX_MEAN_SENTENCE_WORDS = 32


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class VerificationReport:
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [c.check for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures,
                "checks": {c.check: {"passed": c.passed, "detail": c.detail} for c in self.checks}}


def _find(patterns: tuple[str, ...], text: str) -> list[str]:
    return [m.group(0) for p in patterns for m in re.finditer(p, text, re.IGNORECASE)]


@lru_cache(maxsize=512)
def mentioned_factors(text: str) -> tuple[tuple[int, str], ...]:
    """(position, code) of every factor the text presents, full catalog statements matched first."""
    masked, found = text, []
    for code, statement in _statement_patterns():
        for match in re.finditer(re.escape(statement), masked, re.IGNORECASE):
            found.append((match.start(), code))
            masked = masked[:match.start()] + " " * len(match.group(0)) + masked[match.end():]
    for code, patterns in REASON_PATTERNS.items():
        for pattern in patterns:
            found += [(m.start(), code) for m in re.finditer(pattern, masked, re.IGNORECASE)]
    return tuple(sorted(found))


@lru_cache(maxsize=1)
def _statement_patterns() -> tuple[tuple[str, str], ...]:
    pairs = [(code, s) for code, entry in load_catalog().items()
             for s in (entry.statement, *dict(entry.by_value).values())]
    return tuple(sorted(pairs, key=lambda pair: -len(pair[1])))


def check_reasons_stated(decision: Decision, text: str) -> CheckResult:
    found = {code for _, code in mentioned_factors(text)}
    missing = [r.code for r in decision.reasons if r.code not in found]
    return CheckResult("reasons_stated", not missing, f"missing: {missing}" if missing else
                       f"all {len(decision.reasons)} principal reasons stated")


def check_no_other_factors(decision: Decision, text: str) -> CheckResult:
    allowed = {r.code for r in decision.reasons}
    extra = sorted({code for _, code in mentioned_factors(text)} - allowed)
    return CheckResult("no_other_factors", not extra, f"not principal reasons: {extra}" if extra else
                       "no other factor presented")


def check_reason_order(decision: Decision, text: str) -> CheckResult:
    first_seen: dict[str, int] = {}
    for position, code in mentioned_factors(text):
        first_seen.setdefault(code, position)
    order = [r.code for r in decision.reasons if r.code in first_seen]
    stated = sorted(order, key=first_seen.__getitem__)
    return CheckResult("reasons_in_order", stated == order, f"stated order {stated}; model order {order}")


def allowed_numbers(decision: Decision) -> list[float]:
    """Figures the text may state: the application's own values (and derived ratios)."""
    values = [v for values in numbers_by_reason(decision).values() for v in values]
    if decision.application.get("loan_amount") is not None:
        values.append(float(decision.application["loan_amount"]))
    for text in (str(decision.application.get("product") or ""),):
        values += [float(n.replace(",", "").rstrip("%")) for n in NUMBER_RE.findall(text)]
    return values


def numbers_by_reason(decision: Decision) -> dict[str, list[float]]:
    """Reason code -> the application's numeric values of the features behind it."""
    spec = load_spec(decision.dataset)
    application = with_derived(spec, decision.application)
    by_code: dict[str, list[float]] = {}
    for feature in spec.features:
        value = application.get(feature.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            by_code.setdefault(feature.reason or "", []).append(float(value))
    return by_code


def _matches(written: str, values: list[float]) -> bool:
    percent = written.endswith("%")
    number = written.rstrip("%").replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    target = float(number)
    scale = 100.0 if percent else 1.0
    return any(round(v * scale, decimals) == target or (percent and round(v, decimals) == target)
               for v in values)


def _masked_citations(text: str) -> str:
    """The text with citations blanked out, positions kept."""
    return CITATION_RE.sub(lambda m: " " * len(m.group(0)), text)


def _factor_before(factors: list[tuple[int, str]], sentence_start: int, position: int) -> str | None:
    """The factor named last before ``position`` within the same sentence, if any."""
    named = [code for at, code in factors if sentence_start <= at < position]
    return named[-1] if named else None


def wrong_numbers(decision: Decision, text: str) -> list[str]:
    """Figures that match no application value, or not the value of the factor they are written beside."""
    masked = _masked_citations(text)
    factors, by_code, anywhere = mentioned_factors(text), numbers_by_reason(decision), allowed_numbers(decision)
    starts = [0] + [m.end() for m in re.finditer(r"[.!?]\s+", masked)]
    wrong = []
    for match in NUMBER_RE.finditer(masked):
        written = match.group(0).rstrip(".,")
        start = max(s for s in starts if s <= match.start())
        code = _factor_before(factors, start, match.start())
        allowed = by_code.get(code) if code in by_code else anywhere
        if not _matches(written, allowed):
            wrong.append(written)
    return wrong


def strip_citations(text: str) -> str:
    return CITATION_RE.sub(" ", text)


def cited_sections(text: str) -> list[str]:
    return [m.group(0).strip() for m in CITATION_RE.finditer(text)]


def check_numbers(decision: Decision, text: str) -> CheckResult:
    written = NUMBER_RE.findall(strip_citations(text))
    wrong = wrong_numbers(decision, text)
    return CheckResult("numbers_match", not wrong, f"not in the application: {wrong}" if wrong else
                       f"{len(written)} figure(s), all match the application")


def check_protected(decision: Decision, text: str) -> CheckResult:
    hits = _find(PROTECTED_PATTERNS, text)
    return CheckResult("no_protected_basis", not hits, f"mentions {hits}" if hits else "none mentioned")


def check_forbidden(decision: Decision, text: str) -> CheckResult:
    hits = _find(FORBIDDEN_PATTERNS, text)
    return CheckResult("no_forbidden_phrase", not hits, f"contains {hits}" if hits else "none found")


def check_internal(decision: Decision, text: str) -> CheckResult:
    hits = _find(INTERNAL_PATTERNS, text)
    risk_numbers = {f"{decision.risk:.2f}", f"{decision.risk * 100:.0f}%", f"{decision.threshold:g}",
                    f"{decision.threshold * 100:.0f}%"}
    hits += [n for n in NUMBER_RE.findall(strip_citations(text)) if n in risk_numbers
             and not _matches(n, allowed_numbers(decision))]
    return CheckResult("no_threshold_or_score", not hits, f"reveals {hits}" if hits else "nothing internal")


def check_decision_stated(decision: Decision, text: str) -> CheckResult:
    denial = bool(_find(DENIAL_PATTERNS, text))
    approval = bool(_find(APPROVAL_PATTERNS, text)) and not denial
    ok = denial if decision.denied else approval
    return CheckResult("decision_stated", ok, f"text reads as {'denial' if denial else 'approval' if approval else 'neither'}"
                       f"; decision is {decision.decision}")


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def check_readability(decision: Decision, text: str) -> CheckResult:
    words = text.split()
    low, high = LIMITS[decision.decision]
    parts = sentences(text)
    lengths = [len(s.split()) for s in parts] or [0]
    problems = []
    if not low <= len(words) <= high:
        problems.append(f"{len(words)} words, expected {low}-{high}")
    if max(lengths) > MAX_SENTENCE_WORDS or sum(lengths) / len(lengths) > MAX_MEAN_SENTENCE_WORDS:
        problems.append(f"sentences too long (max {max(lengths)} words)")
    if len(set(parts)) < len(parts):
        problems.append("repeated sentence")
    if text.strip() and text.strip()[-1] not in ".!?":
        problems.append("unfinished last sentence")
    if any(not (ch.isprintable() or ch in "\n") for ch in text):
        problems.append("unprintable characters")
    return CheckResult("length_and_readability", not problems, "; ".join(problems) or
                       f"{len(words)} words in {len(parts)} sentences")


def _normal(citation: str) -> str:
    return re.sub(r"[^0-9a-z()\-.]", "", citation.lower().replace("§", "")).rstrip(".")


def check_citations(decision: Decision, text: str) -> CheckResult:
    retrieved = [_normal(c.citation) for c in decision.citations]
    cited = cited_sections(text)
    unknown = [c for c in cited if not any(_normal(c) and _normal(c) in r or r in _normal(c) for r in retrieved)]
    return CheckResult("citations_retrieved", not unknown, f"not among retrieved passages: {unknown}" if unknown
                       else f"{len(cited)} citation(s), all retrieved")


CHECKS = (check_decision_stated, check_reasons_stated, check_no_other_factors, check_reason_order, check_numbers,
          check_protected, check_forbidden, check_internal, check_readability, check_citations)


def verify(decision: Decision, text: str) -> VerificationReport:
    """Run every check on an explanation of ``decision``."""
    return VerificationReport(tuple(check(decision, text or "") for check in CHECKS))


def report_dict(report: VerificationReport) -> dict[str, Any]:
    return report.to_dict()


__all__ = ["CHECKS", "CheckResult", "VerificationReport", "verify", "mentioned_factors", "asdict"]
