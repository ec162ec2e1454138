"""Decision: the one result object; score JSON shape of issue 2 and a lossless dict round trip."""
from __future__ import annotations

import json

import pytest

from lendsafe.decide.decision import REFERENCES, Citation, Decision, Reason


def _decision(decision: str = "deny", **changes) -> Decision:
    reasons = (Reason("DEBT_TO_INCOME", "Excessive obligations in relation to income", "debt_to_income", 0.52,
                      "0.52", 1.6442351, "12 CFR 1002, App. C, Form C-1"),) if decision == "deny" else ()
    base = Decision(application={"debt_to_income": 0.52, "applicant": {"name": "A", "address": "B"},
                                 "application_date": "2026-11-02"},
                    dataset="hmda", decision=decision, risk=0.98644213, threshold=0.3, reference="population",
                    reasons=reasons, contributions={"debt_to_income": 1.644235},
                    model={"dataset": "hmda", "sha256": "ab" * 32, "threshold_version": "hmda-2026.11-1"},
                    citations=(Citation("12 CFR 1002.9(b)(2)", "Reasons", "text", 0.7),), explanation="x",
                    writer="template", verification={"passed": True}, artifacts={"catalog": "cd" * 32})
    return base.with_updates(**changes)


def test_score_dict_has_exactly_the_issue_shape():
    out = _decision().score_dict()
    assert list(out) == ["decision", "risk", "threshold", "reasons", "reference", "dropped_candidates", "model"]
    assert out["risk"] == 0.986442 and out["threshold"] == 0.3 and out["reference"] == "population"
    assert out["reasons"] == [{"code": "DEBT_TO_INCOME", "statement": "Excessive obligations in relation to income",
                               "feature": "debt_to_income", "value": 0.52, "contribution": 1.6442351}]
    assert {"dataset", "sha256"} <= set(out["model"])
    json.dumps(out)


def test_approval_has_no_reasons_in_its_score_json():
    approval = _decision("approve")
    assert not approval.denied and approval.score_dict()["reasons"] == []


@pytest.mark.parametrize("reference", REFERENCES)
def test_round_trip_through_json_is_lossless(reference):
    decision = _decision(reference=reference)
    again = Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert again == decision and isinstance(again.reasons[0], Reason) and isinstance(again.citations[0], Citation)


def test_with_updates_returns_a_new_decision():
    decision = _decision()
    updated = decision.with_updates(explanation="new")
    assert updated.explanation == "new" and decision.explanation == "x" and decision.denied
