"""Forbidden and required content: protected bases, promises, advice, hedging, blame, internal terms,
the legal basis, legal sentences resting on retrieved passages, the rights that apply, the decision."""
from __future__ import annotations

from typing import Any

from lendsafe.decide.decision import Decision
from lendsafe.explain.grounding import applicable_rights, grounding, prose
from lendsafe.explain.verify.figures import allowed_numbers, matches_figure
from lendsafe.explain.verify.patterns import (APPROVAL_PATTERNS, BLAME_AND_SALES_PATTERNS, COUNTERFACTUAL_PATTERNS,
                                      DENIAL_PATTERNS, FORBIDDEN_PATTERNS, HEDGING_PATTERNS, INTERNAL_PATTERNS,
                                      LEGAL_BASIS_PATTERNS, NUMBER_RE, PROTECTED_PATTERNS)
from lendsafe.explain.verify.report import CheckResult
from lendsafe.explain.verify.text import find_all, strip_citations


def _pattern_check(name: str, patterns: tuple[str, ...], what: str, in_prose: bool = False) -> Any:
    """A check that fails on any pattern; ``in_prose`` leaves out legal sentences a passage supports."""
    def check(decision: Decision, text: str) -> CheckResult:
        hits = find_all(patterns, strip_citations(prose(decision, text) if in_prose else text))
        return CheckResult(name, not hits, f"{what}: {hits}" if hits else "none found")
    check.__name__ = f"check_{name}"
    return check


check_protected = _pattern_check("no_protected_basis", PROTECTED_PATTERNS, "mentions")
check_forbidden = _pattern_check("no_forbidden_phrase", FORBIDDEN_PATTERNS, "promise")
check_counterfactual = _pattern_check("no_counterfactual_or_advice", COUNTERFACTUAL_PATTERNS,
                                      "counterfactual or advice", in_prose=True)
check_hedging = _pattern_check("no_hedging", HEDGING_PATTERNS, "hedged", in_prose=True)
check_blame = _pattern_check("no_blame_or_sales", BLAME_AND_SALES_PATTERNS, "blame or sales language")


def check_internal(decision: Decision, text: str) -> CheckResult:
    hits = find_all(INTERNAL_PATTERNS, text)
    risk_numbers = {f"{decision.risk:.2f}", f"{decision.risk * 100:.0f}%", f"{decision.threshold:g}",
                    f"{decision.threshold * 100:.0f}%"}
    hits += [n for n in NUMBER_RE.findall(strip_citations(text)) if n in risk_numbers
             and not matches_figure(n, allowed_numbers(decision))]
    return CheckResult("no_threshold_or_score", not hits, f"reveals {hits}" if hits else "nothing internal")


def check_supported(decision: Decision, text: str) -> CheckResult:
    """Every legal or rights sentence rests on a retrieved passage that applies to the decision."""
    rows = grounding(decision, text)
    unsupported = [f"'{r['sentence']}' ({r['why_unsupported']})" for r in rows if not r["passage_id"]]
    return CheckResult("legal_sentences_supported", not unsupported, "; ".join(unsupported) if unsupported else
                       f"{len(rows)} legal sentence(s), each resting on a retrieved passage")


def check_rights_stated(decision: Decision, text: str) -> CheckResult:
    """A denial tells the applicant the rights that apply to it (each right's passage supports a sentence)."""
    grounded = {r["passage_id"] for r in grounding(decision, text) if r["passage_id"]}
    retrieved = {c.passage_id for c in decision.citations}
    missing = [right.key for right in applicable_rights(decision)
               if right.passage_id in retrieved and right.passage_id not in grounded]
    return CheckResult("rights_stated", not missing, f"rights that apply but are not stated: {missing}" if missing
                       else "every right that applies is stated")


def check_legal_basis(decision: Decision, text: str) -> CheckResult:
    hits = find_all(LEGAL_BASIS_PATTERNS, text)
    return CheckResult("legal_basis", not hits, f"cites a sample form or commentary as the basis: {hits}" if hits
                       else "no sample form or commentary cited as the basis")


def check_decision_stated(decision: Decision, text: str) -> CheckResult:
    denial = bool(find_all(DENIAL_PATTERNS, text))
    approval = bool(find_all(APPROVAL_PATTERNS, text)) and not denial
    ok = denial if decision.denied else approval
    return CheckResult("decision_stated", ok, f"text reads as {'denial' if denial else 'approval' if approval else 'neither'}"
                       f"; decision is {decision.decision}")
