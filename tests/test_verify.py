"""The verifier catches every way a text can misstate a decision, and passes faithful texts."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.composer import compose
from lendsafe.config import PROJECT_ROOT
from lendsafe.decision import Citation
from lendsafe.scoring import Scorer
from lendsafe.verify import CHECKS, mentioned_factors, verify

CITATIONS = (Citation("12 CFR 1002.9(b)(2)", "Statement of specific reasons", "..."),
             Citation("15 U.S.C. 1681m(a)", "Duties of users taking adverse action", "..."))


@pytest.fixture(scope="module")
def denial():
    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    decision = Scorer.load("hmda").score(application).with_updates(citations=CITATIONS)
    assert decision.denied and len(decision.reasons) == 4
    return decision


@pytest.fixture(scope="module")
def faithful(denial):
    text = compose(denial)
    assert verify(denial, text).passed, verify(denial, text).to_dict()
    return text


def failures(decision, text):
    return verify(decision, text).failures


def test_report_is_structured_with_every_check(denial, faithful):
    report = verify(denial, faithful).to_dict()
    assert report["passed"] and report["failures"] == []
    assert set(report["checks"]) == {check(denial, faithful).check for check in CHECKS}
    assert all(set(v) == {"passed", "detail"} and v["detail"] for v in report["checks"].values())


def test_a_wrong_number_is_caught(denial, faithful):
    value = denial.reasons[0].display_value
    assert "numbers_match" in failures(denial, faithful.replace(value, "0.85", 1))


def test_a_missing_reason_is_caught(denial, faithful):
    last = [s for s in faithful.split(". ") if s.startswith("The last reason")][0]
    assert "reasons_stated" in failures(denial, faithful.replace(last + ". ", ""))


def test_a_factor_that_was_not_a_reason_is_caught(denial, faithful):
    assert {r.code for r in denial.reasons}.isdisjoint({"MORTGAGE_INSURANCE_DENIED"})
    text = faithful.replace("The last reason", "Your mortgage insurance was also denied. The last reason")
    assert "no_other_factors" in failures(denial, text)


def test_reasons_out_of_order_are_caught(denial):
    swapped = denial.with_updates(reasons=(denial.reasons[1], denial.reasons[0], *denial.reasons[2:]))
    assert "reasons_in_order" in failures(denial, compose(swapped))


@pytest.mark.parametrize("insert, check", [
    ("Applicants of your age and marital status are often denied.", "no_protected_basis"),
    ("Your neighborhood was also considered.", "no_protected_basis"),
    ("You may reapply in 90 days.", "no_forbidden_phrase"),
    ("Approval next time is guaranteed.", "no_forbidden_phrase"),
    ("We will reconsider if you write to us.", "no_forbidden_phrase"),
    ("You are pre-approved for a smaller card.", "no_forbidden_phrase"),
    ("Our model gave you a risk score above the threshold.", "no_threshold_or_score"),
    ("These rules are in 12 CFR 1002.6(b)(5).", "citations_retrieved"),
])
def test_each_forbidden_statement_is_caught(denial, faithful, insert, check):
    assert check in failures(denial, faithful + " " + insert)


def test_the_internal_risk_and_threshold_figures_are_caught(denial, faithful):
    assert "no_threshold_or_score" in failures(denial, faithful + f" It was {denial.risk:.2f}.")


def test_the_decision_must_be_stated_correctly(denial, faithful):
    assert "decision_stated" in failures(denial, faithful.replace("We cannot approve", "We are pleased to approve"))
    approval = denial.with_updates(decision="approve", reasons=())
    assert "decision_stated" in failures(approval, "We cannot approve your mortgage application today, sorry.")


def test_length_and_readability_bounds(denial, faithful):
    assert "length_and_readability" in failures(denial, "We cannot approve it.")
    assert "length_and_readability" in failures(denial, faithful + " " + faithful.split(". ")[1] + ".")
    assert "length_and_readability" in failures(denial, faithful.rstrip(".") + " and")


def test_catalog_statements_and_paraphrases_are_recognised(denial):
    for reason in denial.reasons:
        assert reason.code in {code for _, code in mentioned_factors(reason.statement)}


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.0, max_value=3.0).map(lambda v: round(v, 2)))
def test_any_changed_figure_is_caught_even_when_another_field_has_it(denial, faithful, figure):
    """A figure written beside a factor must be that factor's own value, not any value of the application."""
    reason = next(r for r in denial.reasons if r.feature == "debt_to_income")
    changed = faithful.replace(reason.display_value, f"{figure:.2f}")
    assert verify(denial, changed).passed == (f"{figure:.2f}" == reason.display_value)


@pytest.mark.parametrize("other", ["0.38", "0.97", "5", "2"])
def test_another_fields_value_beside_a_factor_is_caught(denial, faithful, other):
    reason = next(r for r in denial.reasons if r.feature == "debt_to_income")
    assert "numbers_match" in failures(denial, faithful.replace(reason.display_value, other))


def test_figures_may_be_rounded_or_written_as_percentages(denial, faithful):
    reason = next(r for r in denial.reasons if r.feature == "debt_to_income")
    for written in ("0.5", "52%", "52.0%"):
        assert "numbers_match" not in failures(denial, faithful.replace(reason.display_value, written)), written
