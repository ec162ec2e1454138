"""The verifier catches every way a text can misstate a decision, and passes faithful texts."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.explain.composer import compose
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.scoring import Scorer
from passages import citations
from lendsafe.explain.verify import CHECKS, mentioned_factors, verify

CITATIONS = citations()


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
    assert "complete_text" in failures(denial, faithful.rstrip(".") + " and")


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


# ---------------------------------------------------------------- the labelled set

CASES = [json.loads(line) for line in (PROJECT_ROOT / "tests" / "verifier_cases.jsonl").read_text().splitlines()]


def test_the_labelled_set_is_large_and_covers_every_failure_kind():
    bad = [c for c in CASES if c["label"] == "bad"]
    assert len(bad) >= 40 and len(CASES) - len(bad) >= 40
    kinds = {c["kind"] for c in bad}
    assert {"wrong level meaning", "favourable fact as reason", "false yes/no fact", "missing value as fact",
            "wrong legal basis", "truncated text", "invented factor", "favourable direction", "hedging",
            "counterfactual or promise", "indirect protected basis", "number in words", "repeated reason",
            "blame or sales", "earlier adapter output", "unsupported legal sentence", "right that does not apply",
            "right left out"} <= kinds


@pytest.mark.parametrize("case", [c for c in CASES if c["label"] == "bad"], ids=lambda c: c["id"])
def test_every_known_bad_text_fails_the_check_named_for_it(case):
    from lendsafe.decide.decision import Decision

    report = verify(Decision.from_dict(case["decision"]), case["text"])
    assert case["check"] in report.failures, (case["kind"], report.failures)


@pytest.mark.parametrize("case", [c for c in CASES if c["label"] == "good"], ids=lambda c: c["id"])
def test_every_correct_paraphrase_passes(case):
    from lendsafe.decide.decision import Decision

    report = verify(Decision.from_dict(case["decision"]), case["text"])
    assert report.passed, {k: v["detail"] for k, v in report.to_dict()["checks"].items() if not v["passed"]}


def test_precision_and_recall_on_the_labelled_set_are_reported_as_measured():
    from lendsafe.evaluation.summaries import verifier_labelled_set

    measured = verifier_labelled_set()
    assert measured["bad"] == sum(c["label"] == "bad" for c in CASES)
    assert (measured["recall"], measured["precision"], measured["false_alarms"]) == (1.0, 1.0, 0)


# ---------------------------------------------------------------- meaning, numbers, form

@pytest.fixture(scope="module")
def rated():
    """A denial whose reasons include the consumer credit history rating, for each adverse rating."""
    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    out = {}
    for rating in (4, 5, 6):
        decision = Scorer.load("hmda").score({**application, "consumer_credit_history": rating}, "population")
        decision = decision.with_updates(citations=CITATIONS)
        if any(r.feature == "consumer_credit_history" for r in decision.reasons):
            out[rating] = decision
    assert out
    return out


def test_every_other_levels_meaning_fails_and_the_own_passes(rated):
    from lendsafe.decide.specs import load_spec

    feature = load_spec("hmda").feature("consumer_credit_history")
    for rating, decision in rated.items():
        text = compose(decision)
        assert verify(decision, text).passed
        own = feature.level_text(rating)
        for level, meaning in feature.levels:
            if level != rating:
                assert "meaning_matches_value" in failures(decision, text.replace(own, meaning)), (rating, level)


def test_a_boolean_fact_must_be_true_of_the_applicant(denial, faithful):
    assert not denial.application["self_employed"]
    assert "meaning_matches_value" in failures(denial, faithful + " Your income comes from self-employment.")


def test_a_missing_value_never_carries_a_figure_or_the_value_statement():
    application = json.loads((PROJECT_ROOT / "data" / "examples" / "credit_denial.json").read_text())
    decision = Scorer.load("credit").score({**application, "income": None, "debt": None}).with_updates(citations=CITATIONS)
    income = next(r for r in decision.reasons if r.feature == "income")
    text = compose(decision)
    assert verify(decision, text).passed and "absence of a stated monthly income" in text
    assert income.statement == "Credit application incomplete: income not provided"
    assert "missing_not_fact" in failures(decision, text.replace("the absence of a stated monthly income from your application",
                                                                   "your monthly income of $2, which is insufficient for the credit requested"))
    assert "numbers_match" in failures(decision, text + " Your existing debt of $2 counted too.")


@pytest.mark.parametrize("written, ok", [("62%", False), ("sixty-two percent", False), ("fifty-two percent", True),
                                         ("0.52", True), ("0.53", False)])
def test_numbers_written_in_words_are_checked_as_figures(denial, faithful, written, ok):
    reason = next(r for r in denial.reasons if r.feature == "debt_to_income")
    assert reason.display_value == "0.52"
    assert ("numbers_match" not in failures(denial, faithful.replace(reason.display_value, written))) == ok


def test_a_numbered_list_is_not_read_as_figures(denial):
    lines = [f"{i}. {r.statement}." for i, r in enumerate(denial.reasons, start=1)]
    from lendsafe.explain.grounding import rights_sentences

    text = ("We cannot approve your mortgage application for these reasons, most important first:\n" + "\n".join(lines)
            + "\n" + " ".join(rights_sentences(denial)))
    assert verify(denial, text).passed, verify(denial, text).to_dict()["failures"]


@pytest.mark.parametrize("ending", ["as required by 12 CFR 1002, App.", "The last reason is the.", "which is"])
def test_a_text_that_ends_mid_sentence_fails(denial, faithful, ending):
    assert "complete_text" in failures(denial, faithful + " " + ending)


@pytest.mark.parametrize("citation", ["12 CFR 1002, App. C, Form C-1", "12 CFR 1002, Supp. I, comment 9(b)(2)-4"])
def test_sample_forms_and_commentary_are_not_a_legal_basis(denial, faithful, citation):
    assert "legal_basis" in failures(denial, faithful + f" We give these reasons as required by {citation}.")


@pytest.mark.parametrize("insert, check", [
    ("Your crypto holdings were also weighed.", "only_decision_content"),
    ("Your low debt-to-income ratio helped.", "adverse_direction"),
    ("The decision may have been close.", "no_hedging"),
    ("Pay down your debts and you will qualify.", "no_counterfactual_or_advice"),
    ("Applicants from your area are often declined.", "no_protected_basis"),
    ("At your stage of life this is common.", "no_protected_basis"),
    ("Call 1-900-555-0199 to fix this today.", "no_blame_or_sales"),
])
def test_open_world_content_fails(denial, faithful, insert, check):
    assert check in failures(denial, faithful.replace(" You have", f" {insert} You have"))
