"""Checks on the reasons a text presents: all stated, none other, in the model's order, each once."""
from __future__ import annotations

from lendsafe.decide.decision import Decision
from lendsafe.explain.sentences import sentences
from lendsafe.explain.verify.report import CheckResult
from lendsafe.explain.verify.text import mentioned_factors


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


def check_repeated_reason(decision: Decision, text: str) -> CheckResult:
    """Each reason is stated once: the same factor presented in two sentences reads as two reasons."""
    counts: dict[str, int] = {}
    for sentence in sentences(text):
        for code in {code for _, code in mentioned_factors(sentence)}:
            counts[code] = counts.get(code, 0) + 1
    repeated = sorted(code for code, n in counts.items() if n > 1)
    return CheckResult("no_repeated_reason", not repeated, f"stated in more than one sentence: {repeated}"
                       if repeated else "each reason stated once")
