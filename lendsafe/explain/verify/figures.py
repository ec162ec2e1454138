"""Figures: every number in the text is the applicant's own value, written beside its own factor."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from lendsafe.decide.catalog import is_missing

from lendsafe.decide.datasets import with_derived

from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import Decision
from lendsafe.explain.grounding import prose
from lendsafe.explain.sentences import spelled_numbers, without_list_markers
from lendsafe.explain.verify.meaning import masked_markers
from lendsafe.explain.verify.patterns import MONEY_RELATIVE_TOLERANCE, NUMBER_RE
from lendsafe.explain.verify.report import CheckResult
from lendsafe.explain.verify.text import masked_citations, mentioned_factors, sentence_spans


def numbers_by_reason(decision: Decision) -> dict[str, list[float]]:
    """Reason code -> the application's numeric values of the features behind it (missing ones left out)."""
    spec = load_spec(decision.dataset)
    application = with_derived(spec, decision.application)
    by_code: dict[str, list[float]] = {}
    for feature in spec.features:
        value = application.get(feature.name)
        by_code.setdefault(feature.reason or "", [])
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not is_missing(value):
            by_code[feature.reason or ""].append(float(value))
    return by_code


def allowed_numbers(decision: Decision) -> list[float]:
    """Figures the text may state: the application's own values (and derived ratios)."""
    values = [v for values in numbers_by_reason(decision).values() for v in values]
    if decision.application.get("loan_amount") is not None:
        values.append(float(decision.application["loan_amount"]))
    return values


def _money_close(target: float, values: list[float], decimals: int) -> bool:
    """A whole-dollar figure with trailing zeros may round the recorded amount to its own precision."""
    if decimals or target < 1000 or target % 10:
        return False
    zeros = len(str(int(target))) - len(str(int(target)).rstrip("0"))
    step = 10 ** zeros
    return any(round(v / step) * step == target and abs(v - target) <= MONEY_RELATIVE_TOLERANCE * v for v in values)


def matches_figure(written: str, values: list[float], money: bool = False) -> bool:
    percent = written.endswith("%")
    number = written.rstrip("%").replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    target = float(number)
    scale = 100.0 if percent else 1.0
    exact = any(_half_up(v * scale, decimals) == target or (percent and _half_up(v, decimals) == target)
                for v in values)
    return exact or (money and _money_close(target, values, decimals))


def _half_up(value: float, decimals: int) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def _factor_before(factors: list[tuple[int, str]], sentence_start: int, position: int) -> str | None:
    """The factor named last before ``position`` within the same sentence, if any."""
    named = [code for at, code in factors if sentence_start <= at < position]
    return named[-1] if named else None


def _number_text(text: str) -> str:
    """The text as its figures are checked: list markers, citations and level phrases out, words as digits."""
    return spelled_numbers(masked_markers(masked_citations(without_list_markers(text))))


def wrong_numbers(decision: Decision, text: str) -> list[str]:
    """Figures that match no application value, or not the value of the factor they are written beside;
    a factor whose value is missing takes no figure at all."""
    masked = _number_text(prose(decision, text))          # a supported legal sentence's periods are its passage's
    factors, by_code, anywhere = mentioned_factors(masked), numbers_by_reason(decision), allowed_numbers(decision)
    money_codes = _money_codes(decision.dataset)
    wrong = []
    for match in NUMBER_RE.finditer(masked):
        written = match.group(0).rstrip(".,")
        start = max(s for s, _ in sentence_spans(masked) if s <= match.start())
        code = _factor_before(list(factors), start, match.start())
        allowed = by_code.get(code, anywhere) if code else anywhere
        if not matches_figure(written, allowed, money=code in money_codes or masked[max(0, match.start() - 1)] == "$"):
            wrong.append(written)
    return wrong


@lru_cache(maxsize=8)
def _money_codes(dataset: str) -> frozenset[str]:
    return frozenset(f.reason for f in load_spec(dataset).features if f.unit == "$" and f.reason)


def check_numbers(decision: Decision, text: str) -> CheckResult:
    written = NUMBER_RE.findall(_number_text(prose(decision, text)))
    wrong = wrong_numbers(decision, text)
    return CheckResult("numbers_match", not wrong, f"not in the application: {wrong}" if wrong else
                       f"{len(written)} figure(s), all match the application")
