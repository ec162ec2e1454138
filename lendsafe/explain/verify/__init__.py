"""Truth checks on an explanation: a structured report (check -> pass/fail + detail), never a bool.

The verifier proves that a text states only the decision's true reasons, in order, with the applicant's
true figures *and their true meaning*: a coded value is described with its own level's words (the spec's
``levels`` and ``markers``), a yes/no fact is true of the applicant, a missing value is never stated as a
fact, no reason is presented as favourable. It is open-world: every sentence must be made of the
decision's own reasons, the framing a notice needs and plain connective words; anything else (an
invented factor, advice, hedging, a promise, an indirect protected basis, sales talk) fails. It also
rejects applicant-facing citations to sample forms or commentary and texts that end mid-sentence.
"""
from __future__ import annotations

from typing import Any

from lendsafe.decide.decision import Decision
from lendsafe.explain.verify.content import (check_blame, check_counterfactual, check_decision_stated, check_forbidden,
                                     check_hedging, check_internal, check_legal_basis, check_protected,
                                     check_rights_stated, check_supported)
from lendsafe.explain.verify.factors import (check_no_other_factors, check_reason_order, check_reasons_stated,
                                     check_repeated_reason)
from lendsafe.explain.verify.figures import allowed_numbers, check_numbers, matches_figure, wrong_numbers
from lendsafe.explain.verify.form import check_citations, check_complete, check_readability, unfinished
from lendsafe.explain.verify.meaning import check_direction, check_meaning, check_missing, misdescribed_values
from lendsafe.explain.verify.openworld import check_open_world, unsupported_words
from lendsafe.explain.verify.patterns import (FORBIDDEN_PATTERNS, INTERNAL_PATTERNS, MODEL_NAME_PATTERNS, NUMBER_RE,
                                      PROTECTED_PATTERNS)
from lendsafe.explain.verify.report import CheckResult, VerificationReport
from lendsafe.explain.verify.text import mentioned_factors, strip_citations

CHECKS = (check_decision_stated, check_reasons_stated, check_no_other_factors, check_reason_order,
          check_repeated_reason, check_numbers, check_meaning, check_missing, check_direction, check_open_world,
          check_protected, check_forbidden, check_counterfactual, check_hedging, check_blame, check_internal, check_legal_basis,
          check_supported, check_rights_stated, check_complete, check_readability, check_citations)
# The checks whose failure means the text says something untrue of the applicant (the "meaning errors").
TRUTH_CHECKS = ("meaning_matches_value", "missing_not_fact", "adverse_direction", "no_other_factors",
                "numbers_match", "complete_text", "legal_basis", "legal_sentences_supported")


def verify(decision: Decision, text: str) -> VerificationReport:
    """Run every check on an explanation of ``decision``."""
    return VerificationReport(tuple(check(decision, text or "") for check in CHECKS))


def report_dict(report: VerificationReport) -> dict[str, Any]:
    return report.to_dict()


__all__ = ["CHECKS", "TRUTH_CHECKS", "CheckResult", "VerificationReport", "verify", "report_dict", "mentioned_factors",
           "strip_citations", "allowed_numbers", "matches_figure", "wrong_numbers", "misdescribed_values",
           "unsupported_words", "unfinished", "NUMBER_RE", "FORBIDDEN_PATTERNS", "INTERNAL_PATTERNS",
           "MODEL_NAME_PATTERNS", "PROTECTED_PATTERNS"]
