"""Scorer: one and many agree, decisions follow the model's own output and threshold, deterministic,
threshold version and model hash recorded, bad input rejected before scoring."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.decide.datasets import load_dataset
from lendsafe.decide.decision import Decision
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError, InvalidApplicationError
from lendsafe.decide.risk import model_dir
from lendsafe.decide.scoring import Scorer

EXAMPLES = PROJECT_ROOT / "data" / "examples"


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load("hmda")


@pytest.fixture(scope="module")
def applications():
    dataset = load_dataset("hmda")
    rows = dataset.applications.iloc[:300][[f.name for f in dataset.spec.input_fields]]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows.to_dict("records")]


def test_examples_score_as_their_names_say(scorer):
    denial = scorer.score(json.loads((EXAMPLES / "hmda_denial.json").read_text()))
    approval = scorer.score(json.loads((EXAMPLES / "hmda_approval.json").read_text()))
    assert denial.decision == "deny" and denial.risk >= denial.threshold and denial.reasons
    assert approval.decision == "approve" and approval.risk < approval.threshold and approval.reasons == ()
    assert set(approval.contributions) == {f.name for f in scorer.spec.model_features}
    credit = Scorer.load("credit").score(json.loads((EXAMPLES / "credit_denial.json").read_text()))
    assert credit.denied and credit.dataset == "credit"


def test_score_and_score_many_agree(scorer, applications):
    many = scorer.score_many(applications[:40], "cutoff")
    assert many == [scorer.score(a, "cutoff") for a in applications[:40]]


def test_decisions_are_deterministic_and_order_independent(scorer, applications):
    first = scorer.score_many(applications)
    assert scorer.score_many(applications) == first
    assert scorer.score_many(applications[::-1]) == first[::-1]


def test_risk_is_the_models_own_prediction_and_the_threshold_decides(scorer, applications):
    decisions = scorer.score_many(applications)
    risk = scorer.model.predict_proba(scorer.matrix([d.application for d in decisions]))
    assert [d.risk for d in decisions] == [float(r) for r in risk]
    assert [d.decision for d in decisions] == ["deny" if r >= scorer.model.threshold else "approve" for r in risk]
    assert {d.decision for d in decisions} == {"approve", "deny"}


def test_decision_records_the_model_hash_threshold_and_its_version(scorer):
    decision = scorer.score(json.loads((EXAMPLES / "hmda_denial.json").read_text()))
    meta = json.loads((model_dir("hmda") / "metadata.json").read_text())
    assert decision.model == {"dataset": "hmda", "sha256": meta["model_sha256"],
                              "threshold_version": meta["threshold_version"]}
    assert decision.threshold == meta["threshold"] and decision.reference == "population"
    assert decision.application["applicant"]["name"] == "Jordan Avery"
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_contributions_add_up_to_risk_against_the_reference(scorer, applications):
    for reference in ("population", "cutoff"):
        for decision in scorer.score_many(applications[:50], reference):
            margin = np.log(decision.risk / (1 - decision.risk))
            expected = margin - scorer.model.reference_vector(reference).sum()
            assert sum(decision.contributions.values()) == pytest.approx(expected, abs=1e-4)


def test_an_invalid_application_stops_the_batch_with_its_problems(scorer, applications):
    bad = {**applications[0], "loan_to_value": 7}
    with pytest.raises(InvalidApplicationError) as caught:
        scorer.score_many([applications[1], bad])
    assert caught.value.problems == ["loan_to_value must be between 0 and 3; got 7"]


def test_bad_reference_empty_batch_and_missing_model(scorer, applications, tmp_path):
    with pytest.raises(ConfigurationError, match="reference must be one of population, cutoff; got 'x'"):
        scorer.score(applications[0], "x")
    assert scorer.score_many([]) == []
    with pytest.raises(ArtifactNotFoundError, match="run `lendsafe train-risk`"):
        Scorer.load("hmda", Settings(models_dir=tmp_path))


def test_loaded_scorers_are_shared(scorer):
    assert Scorer.load("hmda") is scorer and Scorer.load("credit") is not scorer
