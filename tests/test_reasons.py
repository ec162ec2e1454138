"""Principal reasons: exact TreeSHAP (additive, equal to shap.TreeExplainer), adverse only, grouped by
reason code, ranked deterministically, at most four, catalog text and citation, two references."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lendsafe.decide.datasets import load_dataset

from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import REFERENCES
from lendsafe.errors import ConfigurationError
from lendsafe.decide.reasons import (
    MAX_REASONS, AdditivityError, check_additivity, check_reference, grouped_by_feature,
    grouped_by_reason, load_catalog, rank_adverse, reasons_for, relative_contributions,
)
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.decide.scoring import Scorer

DATASETS = ("hmda", "credit")


def _records(frame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


@pytest.fixture(scope="module", params=DATASETS)
def held_out(request):
    """(dataset, model, test-split matrix, test-split applications, decisions per reference)."""
    dataset = load_dataset(request.param)
    model = RiskModel.load(model_dir(request.param))
    test = model.test_index_
    inputs = dataset.applications.iloc[test][[f.name for f in dataset.spec.input_fields]]
    applications = _records(inputs)
    scorer = Scorer(model)
    decisions = {reference: scorer.score_many(applications, reference) for reference in REFERENCES}
    return dataset, model, np.asarray(dataset.X.iloc[test], dtype=np.float32), applications, decisions


# ------------------------------------------------------------------ exact TreeSHAP

def test_contributions_plus_base_equal_the_margin(held_out):
    _, model, X, _, _ = held_out
    contribs = model.contributions(X)
    assert contribs.shape == (len(X), X.shape[1] + 1)
    np.testing.assert_allclose(contribs.sum(axis=1), model.predict_margin(X), atol=2e-5)
    check_additivity(contribs, model.predict_margin(X))


def test_additivity_check_fails_when_contributions_do_not_add_up(held_out):
    _, model, X, _, _ = held_out
    contribs = model.contributions(X[:5])
    contribs[2, 0] += 0.01
    with pytest.raises(AdditivityError, match="TreeSHAP additivity failed: max gap 1.00e-02"):
        check_additivity(contribs, model.predict_margin(X[:5]))


def test_contributions_agree_with_shap_tree_explainer(held_out):
    shap = pytest.importorskip("shap")
    _, model, X, _, _ = held_out
    rows = X[np.random.default_rng(0).choice(len(X), 120, replace=False)]
    explainer = shap.TreeExplainer(model.booster_)
    contribs = model.contributions(rows)
    np.testing.assert_allclose(explainer.shap_values(rows), contribs[:, :-1], atol=1e-5)
    np.testing.assert_allclose(np.ravel(explainer.expected_value)[0], contribs[0, -1], atol=1e-5)


def test_relative_contributions_sum_to_margin_minus_the_reference_mean(held_out):
    _, model, X, _, _ = held_out
    contribs = model.contributions(X)
    for reference in REFERENCES:
        vector = model.reference_vector(reference)
        relative = relative_contributions(contribs, vector)
        assert relative.shape == (len(X), X.shape[1])
        np.testing.assert_allclose(relative.sum(axis=1), model.predict_margin(X) - vector.sum(), atol=1e-4)


# ------------------------------------------------------------------ reasons on every held-out decision

def test_denials_have_only_adverse_reasons_at_most_four_ranked(held_out):
    dataset, _, _, _, decisions = held_out
    spec = dataset.spec
    denials = 0
    for reference, scored in decisions.items():
        for decision in scored:
            assert decision.reference == reference
            if not decision.denied:
                assert decision.reasons == ()
                continue
            denials += 1
            reasons = decision.reasons
            assert 1 <= len(reasons) <= MAX_REASONS
            assert len({r.code for r in reasons}) == len(reasons)
            assert [r.contribution for r in reasons] == sorted((r.contribution for r in reasons), reverse=True)
            for reason in reasons:
                assert reason.contribution > 0 and decision.contributions[reason.feature] > 0
                assert spec.feature(reason.feature).reason == reason.code
                assert reason.value == decision.application.get(reason.feature, reason.value)
            named = {r.code for r in reasons}
            by_code: dict[str, float] = {}
            for feature, value in decision.contributions.items():
                by_code[spec.feature(feature).reason] = by_code.get(spec.feature(feature).reason, 0.0) + value
            lowered = {code for code, value in by_code.items() if value <= 0}
            assert not named & lowered                     # a reason never names a factor that lowered risk
            dropped = {d["feature"] for d in decision.dropped if d["feature"]}
            eligible = sorted((v for f, v in decision.contributions.items() if v > 1e-6 and f not in dropped),
                              reverse=True)
            assert len(reasons) == min(MAX_REASONS, len(eligible))
            assert reasons[-1].contribution >= eligible[len(reasons) - 1] - 2e-6   # the largest ones were kept
    assert denials >= 40


def test_every_reason_carries_catalog_text_and_a_citation(held_out):
    _, _, _, _, decisions = held_out
    catalog = load_catalog()
    for decision in decisions["population"]:
        for reason in decision.reasons:
            entry = catalog[reason.code]
            assert reason.statement == entry.statement_for(reason.value, reason.feature) and reason.statement
            assert reason.citation == entry.citation and reason.display_value


def test_the_two_references_are_recorded_and_can_differ(held_out):
    _, model, _, _, decisions = held_out
    population, cutoff = decisions["population"], decisions["cutoff"]
    assert [d.risk for d in population] == [d.risk for d in cutoff]          # the reference never moves the score
    assert [d.decision for d in population] == [d.decision for d in cutoff]
    differ = [i for i, (p, c) in enumerate(zip(population, cutoff))
              if p.denied and [r.code for r in p.reasons] != [r.code for r in c.reasons]]
    assert differ, "no held-out denial whose reasons depend on the reference"
    refs = model.metadata_["references"]
    assert refs["population"]["definition"] == "all training applicants"
    assert "at or just above the passing cutoff" in refs["cutoff"]["definition"]


def test_reasons_are_deterministic(held_out):
    _, model, _, applications, decisions = held_out
    again = Scorer(model).score_many(applications[:80], "population")
    assert again == decisions["population"][:80]


# ------------------------------------------------------------------ ranking, grouping, catalog

def test_ranking_keeps_adverse_codes_breaks_ties_by_code_and_caps_at_four():
    codes = ["E", "D", "C", "B", "A", "F", "G"]
    row = np.array([0.5, 0.5, 0.9, 0.5, 0.5, -0.7, 1e-7])
    assert rank_adverse(codes, row) == [("C", 0.9), ("A", 0.5), ("B", 0.5), ("D", 0.5)]
    assert rank_adverse(codes, row, limit=10) == [("C", 0.9), ("A", 0.5), ("B", 0.5), ("D", 0.5), ("E", 0.5)]
    assert rank_adverse(codes, -np.abs(row)) == []


def test_one_hot_levels_are_summed_into_their_feature_and_code():
    spec = load_spec("credit")
    columns = spec.model_columns()
    relative = np.arange(len(columns), dtype=float)[None, :] / 10
    homes = [i for i, c in enumerate(columns) if c.startswith("home=")]
    assert len(homes) == len(spec.feature("home").categories)
    codes, by_code = grouped_by_reason(spec, relative)
    assert codes == sorted({f.reason for f in spec.model_features})
    assert by_code[0, codes.index("RESIDENCE_STATUS")] == pytest.approx(relative[0, homes].sum())
    assert grouped_by_feature(spec, relative[0])["home"] == pytest.approx(relative[0, homes].sum())
    assert by_code.sum() == pytest.approx(relative.sum())


def test_features_sharing_a_code_become_one_reason_naming_the_feature_that_raised_risk():
    hmda = load_spec("hmda")
    housing = replace(hmda.feature("housing_expense_to_income"), reason="DEBT_TO_INCOME")
    spec = replace(hmda, features=tuple(housing if f.name == housing.name else f for f in hmda.features))
    relative = np.zeros((1, len(spec.model_columns())))
    relative[0, 0], relative[0, 1] = -0.2, 0.5           # debt_to_income lowered risk, housing raised it more
    codes, by_code = grouped_by_reason(spec, relative)
    assert "HOUSING_EXPENSE_TO_INCOME" not in codes
    ranked = rank_adverse(codes, by_code[0])
    assert ranked == [("DEBT_TO_INCOME", pytest.approx(0.3))]
    application = {"debt_to_income": 0.2, "housing_expense_to_income": 0.6}
    [reason] = reasons_for(spec, application, ranked, grouped_by_feature(spec, relative[0]))
    assert (reason.feature, reason.value, reason.display_value) == ("housing_expense_to_income", 0.6, "0.60")
    assert reason.contribution == pytest.approx(0.3)


def test_reasons_for_an_unknown_code_fail_loudly():
    spec = load_spec("hmda")
    broken = replace(spec, features=tuple(replace(f, reason="NOT_IN_CATALOG") if f.name == "condominium" else f
                                          for f in spec.features))
    with pytest.raises(ConfigurationError, match="reason code NOT_IN_CATALOG has no catalog text"):
        reasons_for(broken, {"condominium": True}, [("NOT_IN_CATALOG", 0.4)])


def test_reference_names_are_checked():
    assert [check_reference(r) for r in REFERENCES] == list(REFERENCES)
    with pytest.raises(ConfigurationError, match="reference must be one of population, cutoff; got 'median'"):
        check_reference("median")


# ------------------------------------------------------------------ eligibility: a reason is true of the applicant

def _adverse_against_typical(feature, value, typical) -> bool:
    if value is None:
        return True
    if feature.type == "bool":
        return bool(value) == (feature.monotone > 0)
    if feature.type == "category":
        return value != typical
    best = min(level for level, _ in feature.levels) if feature.levels else None
    return value != best and (value - typical) * feature.monotone > 0


def _application(spec, draw):
    values = {}
    for feature in spec.input_fields:
        if feature.optional and draw(st.booleans()) and draw(st.booleans()):
            values[feature.name] = None
        elif feature.type == "bool":
            values[feature.name] = draw(st.booleans())
        elif feature.type == "category":
            values[feature.name] = draw(st.sampled_from(feature.categories))
        elif feature.type == "int":
            values[feature.name] = draw(st.integers(int(feature.min), int(feature.max)))
        else:
            values[feature.name] = round(draw(st.floats(feature.min, min(feature.max, feature.min + (feature.max - feature.min) / 3))), 3)
    return values


@settings(max_examples=120, deadline=None)
@given(data=st.data(), dataset=st.sampled_from(DATASETS), reference=st.sampled_from(REFERENCES))
def test_every_reason_is_adverse_for_the_applicant_and_every_drop_says_why(data, dataset, reference):
    from lendsafe.decide.datasets import with_derived

    scorer = Scorer.load(dataset)
    spec = scorer.spec
    application = _application(spec, data.draw)
    decision = scorer.score(application, reference)
    typical = scorer.model.reference_values(reference)
    values = with_derived(spec, decision.application)
    for reason in decision.reasons:
        feature = spec.feature(reason.feature)
        assert _adverse_against_typical(feature, values.get(feature.name), typical[feature.name]), reason
        assert decision.contributions[reason.feature] > 0
        if values.get(feature.name) is None:
            assert reason.statement == load_catalog()[reason.code].missing and reason.display_value == "not provided"
    stated = {r.feature for r in decision.reasons}
    for dropped in decision.dropped:
        assert dropped["why"] and dropped["contribution"] > 0
        if dropped["feature"]:
            feature = spec.feature(dropped["feature"])
            assert dropped["feature"] not in stated
            assert not _adverse_against_typical(feature, values.get(feature.name), typical[feature.name])
    assert len(decision.reasons) <= MAX_REASONS


def test_favourable_facts_are_never_reasons_on_the_held_out_split(held_out):
    dataset, model, _, _, decisions = held_out
    spec = dataset.spec
    for reference, scored in decisions.items():
        typical = model.reference_values(reference)
        for decision in scored:
            for reason in decision.reasons:
                feature = spec.feature(reason.feature)
                if feature.type == "bool":
                    assert reason.value is True or (reason.value is False and feature.monotone < 0), reason
                value = decision.application.get(feature.name, reason.value)
                assert _adverse_against_typical(feature, value if feature.is_input_field else reason.value,
                                                typical[feature.name])


def test_mortgage_insurance_not_denied_is_never_a_reason_under_either_reference():
    import json

    from lendsafe.config import PROJECT_ROOT

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    for reference in REFERENCES:
        decision = Scorer.load("hmda").score({**application, "mortgage_insurance_denied": False}, reference)
        assert "MORTGAGE_INSURANCE_DENIED" not in {r.code for r in decision.reasons}
        denied = Scorer.load("hmda").score({**application, "mortgage_insurance_denied": True}, reference)
        assert "MORTGAGE_INSURANCE_DENIED" in {r.code for r in denied.reasons}


def test_reference_groups_record_their_typical_values():
    for name in DATASETS:
        model = RiskModel.load(model_dir(name))
        for reference in REFERENCES:
            typical = model.reference_values(reference)
            assert set(typical) == {f.name for f in model.spec.model_features}
