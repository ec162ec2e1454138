"""The explorer's "What would change it" panel (Streamlit AppTest): labelled analyst-only, each option's
change in words and units beside the risk and decision of its live re-scoring, infeasible denials explained
and approvals left alone."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lendsafe.recourse import ANALYST_NOTE, change_words, find_recourse
from lendsafe.decide.scoring import Scorer

DENIED = {"debt_to_income": 0.6, "housing_expense_to_income": 0.35, "loan_to_value": 0.95,
          "consumer_credit_history": 2, "mortgage_credit_history": 2, "public_bad_credit_record": False,
          "mortgage_insurance_denied": False, "self_employed": False, "condominium": False}
APPROVED = {**DENIED, "debt_to_income": 0.2, "housing_expense_to_income": 0.15, "loan_to_value": 0.5,
            "consumer_credit_history": 1, "mortgage_credit_history": 1}
HOPELESS = {"debt_to_income": 0.1, "housing_expense_to_income": 0.05, "loan_to_value": 0.2,
            "consumer_credit_history": 6, "mortgage_credit_history": 4, "public_bad_credit_record": True,
            "mortgage_insurance_denied": True, "self_employed": True, "condominium": True}


def _page(application: dict, dataset: str) -> None:
    from lendsafe.decide.scoring import Scorer
    from lendsafe.ui.recourse import panel

    scorer = Scorer.load(dataset)
    panel(scorer.score(application), scorer)


def _run(application: dict, dataset: str = "hmda") -> AppTest:
    at = AppTest.from_function(_page, args=(application, dataset), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_denial_shows_each_option_with_its_re_scored_risk_and_decision():
    scorer = Scorer.load("hmda")
    expected = find_recourse(scorer, DENIED)
    assert expected.options, "the example should have recourse under this model"
    at = _run(DENIED)
    assert at.subheader[0].value == "What would change it"
    assert ANALYST_NOTE in at.caption[0].value and "re-scored" in at.caption[0].value
    table = at.dataframe[0].value
    assert list(table["re-scored decision"]) == ["approved"] * len(expected.options)
    assert list(table["re-scored risk"]) == [round(o.decision.risk * 100, 1) for o in expected.options]
    for words, option in zip(table["what changes"], expected.options):
        assert words == " and ".join(change_words(scorer.spec, c) for c in option.changes)


def test_fewer_changes_together_shows_single_changes_only():
    at = _run(DENIED)
    at.number_input(key="ls_recourse_max_changes").set_value(1).run()
    table = at.dataframe[0].value
    assert len(table) and not table["what changes"].str.contains(" and ").any()


def test_an_approval_needs_nothing():
    at = _run(APPROVED)
    assert "Approved as submitted" in at.markdown[0].value and not at.dataframe


def test_an_infeasible_denial_says_why_with_dollar_signs_as_text():
    scorer = Scorer.load("hmda")
    if not scorer.score(HOPELESS).denied:
        pytest.skip("this model approves the example")
    at = _run(HOPELESS)
    assert "No change within the spec's bounds approves this application" in at.info[0].value
    credit = {"seniority": 0, "home": "rent", "loan_term_months": 6, "public_record": True, "expenses": 180.0,
              "income": 50.0, "assets": 0.0, "debt": 0.0, "amount": 100.0, "price": 100.0}
    if Scorer.load("credit").score(credit).denied:
        info = _run(credit, "credit").info[0].value
        assert "\\$" in info and "$ " not in info.replace("\\$", "")
