"""Verified recourse: every option shown re-scores as an approval (over every held-out denial of both
datasets), only actionable features change and within their bounds, each option is minimal along its
features (one step back still denies), options are diverse, the monotone single-crossing assumption holds
on the real models, infeasible cases are explained, and the CLI's JSON, exit codes and errors."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest

from lendsafe.decide.application import parse_application
from lendsafe.cli import main
from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError
from lendsafe.evaluation.model import held_out_applications, load_held_out
from lendsafe.recourse import (
    MAX_CHANGES, RecourseSettings, actionable_axes, analyst_text, check_max_changes, educational_section,
    find_recourse, noun, risk_direction, wording_problems,
)
from lendsafe.recourse.axes import GRID_POINTS, make_axis
from lendsafe.recourse.oracle import approves
from lendsafe.decide.scoring import Scorer

DATASETS = ("hmda", "credit")


@pytest.fixture(scope="module", params=DATASETS)
def held(request):
    """The dataset's scorer, its held-out denials and their recourse (computed once)."""
    scorer = Scorer.load(request.param)
    applications = held_out_applications(load_held_out(request.param, Settings()))
    denials = [d.application for d in scorer.score_many(applications) if d.denied]
    return {"scorer": scorer, "denials": denials, "results": [find_recourse(scorer, a) for a in denials]}


def _options(held):
    return [(result, option) for result in held["results"] for option in result.options]


def _axis(scorer, application, name):
    return next(a for a in actionable_axes(scorer.spec, application)[0] if a.name == name)


def _rescored(scorer, application, values, reference="population"):
    return scorer.score({**application, **values}, reference)


# ---------------------------------------------------------------------------- the proof

def test_every_option_re_scores_as_an_approval_over_every_held_out_denial(held):
    scorer = held["scorer"]
    pairs = _options(held)
    assert held["denials"] and pairs, "the held-out denials should have some recourse"
    for result, option in pairs:
        again = _rescored(scorer, result.decision.application, {c.feature: c.after for c in option.changes})
        assert option.decision.decision == again.decision == "approve"
        assert again.risk == option.decision.risk < scorer.model.threshold
        assert option.to_dict()["risk"] == round(again.risk, 6)
    assert sum(r.unproven for r in held["results"]) == 0
    assert all(r.why for r in held["results"] if r.infeasible)


def test_only_actionable_features_change_within_bounds_and_the_rest_is_the_same(held):
    spec = held["scorer"].spec
    actionable = {f.name for f in spec.features if f.actionable}
    protected = {e.column for e in spec.excluded}
    for result, option in _options(held):
        before, after = result.decision.application, option.decision.application
        changed = {k for k in before if before[k] != after[k]}
        assert changed == set(option.features) <= actionable
        assert not changed & protected and not set(after) & protected
        for change in option.changes:
            feature = spec.feature(change.feature)
            low, high = feature.bounds
            assert low <= change.after <= high and change.after != change.before
            if feature.at_least:
                assert change.after >= before[feature.at_least] - 1e-9


def test_values_are_in_the_spec_units_and_validate_as_an_application(held):
    spec = held["scorer"].spec
    for result, option in _options(held):
        for change in option.changes:
            feature = spec.feature(change.feature)
            if feature.type == "int":
                assert isinstance(change.after, int) and change.after % feature.recourse_step == 0
            else:
                assert round(change.after, feature.decimals) == change.after   # whole dollars, ratios at 0.01
        changed = {**result.decision.application, **{c.feature: c.after for c in option.changes}}
        assert parse_application(changed, spec) == option.decision.application


def test_each_option_is_minimal_along_each_of_its_features(held):
    """One grid step back toward the applicant's value, the others as they are, is a denial."""
    scorer = held["scorer"]
    for result, option in _options(held):
        base = result.decision.application
        values = {c.feature: c.after for c in option.changes}
        for change in option.changes:
            axis = _axis(scorer, base, change.feature)
            index = axis.values.index(change.after)
            back = {**values, change.feature: axis.values[index - 1] if index else change.before}
            assert _rescored(scorer, base, back).denied, (change, option.to_dict())


def test_options_are_diverse_and_a_combination_asks_for_less_than_its_parts(held):
    for result in held["results"]:
        sets = [frozenset(o.features) for o in result.options]
        assert len(sets) == len(set(sets))
        singles = [o.features[0] for o in result.options if len(o.features) == 1]
        assert len(singles) == len(set(singles))
        for option in result.options:
            parts = [o for o in result.options if frozenset(o.features) < frozenset(option.features)]
            assert all(option.cost < part.cost for part in parts)
            assert all(len(o.features) <= MAX_CHANGES for o in result.options)


def test_the_model_is_monotone_along_every_constrained_actionable_feature(held):
    """The assumption bisection rests on: along each axis risk never rises, so approval is one crossing, and
    bisection finds the same first approving value as trying the whole grid."""
    scorer = held["scorer"]
    checked = 0
    for application, result in zip(held["denials"], held["results"]):
        for axis in actionable_axes(scorer.spec, application)[0]:
            assert axis.monotone == (risk_direction(scorer.spec, axis.feature) != 0)
            risk = scorer.model.predict_proba(scorer.matrix([{**application, axis.name: v} for v in axis.values]))
            assert np.all(np.diff(risk) <= 0), axis.name
            ok = np.flatnonzero(risk < scorer.model.threshold)
            single = [o for o in result.options if o.features == (axis.name,)]
            assert (single[0].changes[0].after if single else None) == (axis.values[ok[0]] if ok.size else None)
            checked += 1
    assert checked


def test_ratio_inputs_carry_the_direction_of_the_ratio():
    spec = Scorer.load("credit").spec
    assert risk_direction(spec, spec.feature("amount")) == 1         # numerator of loan_to_price, itself +1
    assert risk_direction(spec, spec.feature("price")) == -1         # denominator only
    assert risk_direction(spec, spec.feature("home")) == 0           # a category: unconstrained


# ---------------------------------------------------------------------------- what cannot change

def test_an_infeasible_denial_says_why_and_moving_everything_still_denies(held):
    scorer = held["scorer"]
    infeasible = [r for r in held["results"] if r.infeasible]
    for result in infeasible:
        axes, _ = actionable_axes(scorer.spec, result.decision.application)
        best = {a.name: a.values[-1] for a in axes}
        assert not best or not approves(scorer, result.decision.application, [best])[0]
        assert "no change within the spec's bounds approves it" in result.why or not axes
        assert result.to_dict() == {"infeasible": True, "why": result.why}
        fixed = result.why.partition("cannot change:")[2].partition(";")[0]
        movable = [f for f in scorer.spec.features if f.actionable or any(scorer.spec.feature(n).actionable
                                                                           for n in f.derived)]
        assert not any(f"{noun(f)} (" in fixed for f in movable), result.why   # a ratio moves with its input


def test_too_few_changes_allowed_is_explained_as_such():
    scorer = Scorer.load("hmda")
    application = {"debt_to_income": 0.6, "housing_expense_to_income": 0.35, "loan_to_value": 0.95,
                   "consumer_credit_history": 6, "mortgage_credit_history": 2, "public_bad_credit_record": False,
                   "mortgage_insurance_denied": False, "self_employed": False, "condominium": False}
    results = {k: find_recourse(scorer, application, max_changes=k) for k in range(1, MAX_CHANGES + 1)}
    needs = min((k for k, r in results.items() if r.options), default=None)
    if needs is None or needs == 1:
        pytest.skip("this model approves the example with a single change or not at all")
    assert "only changing more than" in results[needs - 1].why


def test_no_room_left_is_infeasible_with_the_fixed_reasons_named():
    scorer = Scorer.load("hmda")
    spec = scorer.spec
    lowest = {f.name: f.bounds[0] for f in spec.features if f.actionable}
    application = {**lowest, "debt_to_income": lowest["housing_expense_to_income"], "consumer_credit_history": 6,
                   "mortgage_credit_history": 4, "public_bad_credit_record": True, "mortgage_insurance_denied": True,
                   "self_employed": True, "condominium": True}
    result = find_recourse(scorer, application)
    if not result.decision.denied:
        pytest.skip("this model approves even the worst records at the lowest ratios")
    assert result.infeasible and result.why.startswith("no actionable feature of this application can change")
    assert "cannot change" in result.why and "already at the limit" in result.why


def test_an_approved_application_says_so():
    scorer = Scorer.load("hmda")
    application = {"debt_to_income": 0.2, "housing_expense_to_income": 0.15, "loan_to_value": 0.5,
                   "consumer_credit_history": 1, "mortgage_credit_history": 1, "public_bad_credit_record": False,
                   "mortgage_insurance_denied": False, "self_employed": False, "condominium": False}
    result = find_recourse(scorer, application)
    assert result.approved and not result.options
    assert result.to_dict()["approved"] is True and result.to_dict()["decision"] == "approve"


@pytest.mark.parametrize("bad", [0, MAX_CHANGES + 1, "2", True, 1.5])
def test_max_changes_outside_one_to_three_is_refused_by_name(bad):
    with pytest.raises(ConfigurationError, match=f"max_changes must be a whole number from 1 to {MAX_CHANGES}"):
        check_max_changes(bad)


def test_an_unconstrained_feature_is_searched_on_a_bounded_grid():
    scorer = Scorer.load("credit")
    spec = scorer.spec
    free = replace(spec.feature("expenses"), monotone=0, actionable=True, bounds=(35, 10000))
    spec = replace(spec, features=tuple(free if f.name == "expenses" else f for f in spec.features))
    application = {"seniority": 1, "home": "rent", "loan_term_months": 60, "public_record": False,
                   "expenses": 90.0, "income": 100.0, "assets": 0.0, "debt": 0.0, "amount": 1200.0,
                   "price": 1300.0}
    axis = make_axis(spec, free, application)
    assert not axis.monotone and len(axis.values) <= 2 * GRID_POINTS
    assert min(axis.values) < 90 < max(axis.values)                # both ways
    model = copy.copy(scorer.model)
    model.spec = spec
    result = find_recourse(Scorer(model), application)
    grid = [o for o in result.options if o.features == ("expenses",)]
    for option in grid:
        assert option.decision.decision == "approve"
        nearer = [v for v in axis.values if axis.cost(v) < option.cost]
        assert not approves(Scorer(model), result.decision.application, [{"expenses": v} for v in nearer]).any()


# ---------------------------------------------------------------------------- words

def test_analyst_text_states_the_change_in_units_and_the_re_scored_decision(held):
    spec = held["scorer"].spec
    for _, option in _options(held)[:20]:
        text = analyst_text(spec, option)
        assert "approved" in text and f"{option.decision.risk:.1%}" in text
        for change in option.changes:
            assert spec.feature(change.feature).display(change.after) in text


def test_educational_section_is_off_by_default_and_careful_when_on(held):
    spec = held["scorer"].spec
    with_options = [r for r in held["results"] if r.options]
    on = RecourseSettings(educational_section=True)
    for result in with_options:
        assert educational_section(spec, result) == ()
        sentences = educational_section(spec, result, on)
        assert sentences and len(sentences) <= on.educational_options + 1
        for sentence in sentences:
            assert not wording_problems(sentence), sentence
            assert not any(word in sentence.lower() for word in ("reapply", "guarantee", "approved", "will be"))
        first = result.options[0]
        assert all(spec.feature(c.feature).display(c.after) in sentences[0] for c in first.changes)
    approved = [r for r in held["results"] if r.infeasible][:1]
    assert all(educational_section(spec, r, on) == () for r in approved)


def test_educational_sentence_with_a_forbidden_phrase_is_left_out(held):
    scorer = held["scorer"]
    result = next(r for r in held["results"] if r.options)
    name = result.options[0].features[0]
    spec = replace(scorer.spec, features=tuple(replace(f, label="Guaranteed pre-approved limit") if f.name == name
                                               else f for f in scorer.spec.features))
    sentences = educational_section(spec, result, RecourseSettings(educational_section=True))
    assert not any("guaranteed" in s.lower() for s in sentences)


@pytest.mark.parametrize("kwargs, message", [({"educational_section": "yes"}, "educational_section must be true"),
                                             ({"educational_options": 0}, "educational_options must be a whole"),
                                             ({"educational_options": True}, "educational_options must be a whole")])
def test_recourse_settings_are_checked_and_documented(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        RecourseSettings(**kwargs)
    assert all(RecourseSettings.help_table().values())


# ---------------------------------------------------------------------------- the command

def _run(capsys, *argv):
    code = main(["recourse", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_proven_options_as_json(held, tmp_path, capsys):
    scorer, result = held["scorer"], next(r for r in held["results"] if r.options)
    path = tmp_path / "app.json"
    path.write_text(json.dumps(result.decision.application))
    code, out, err = _run(capsys, str(path), "--dataset", scorer.spec.name, "--reference", "cutoff")
    assert code == 0 and not err
    printed = json.loads(out)
    assert set(printed) == {"options"} and printed["options"]
    for option in printed["options"]:
        assert set(option) == {"changes", "risk", "decision"} and option["decision"] == "approve"
        assert option["risk"] < scorer.model.threshold
        assert all(set(change) == {"from", "to"} for change in option["changes"].values())
    code, out, _ = _run(capsys, str(path), "--dataset", scorer.spec.name, "--max-changes", "1")
    assert code == 0 and all(len(o["changes"]) == 1 for o in json.loads(out).get("options", []))


def test_cli_infeasible_and_approved(held, tmp_path, capsys):
    scorer = held["scorer"]
    infeasible = next((r for r in held["results"] if r.infeasible), None)
    if infeasible is not None:
        path = tmp_path / "infeasible.json"
        path.write_text(json.dumps(infeasible.decision.application))
        code, out, _ = _run(capsys, str(path), "--dataset", scorer.spec.name)
        assert code == 0 and json.loads(out) == {"infeasible": True, "why": infeasible.why}
    approved = _options(held)[0][1].decision.application       # an option's application is an approval
    path = tmp_path / "approved.json"
    path.write_text(json.dumps(approved))
    code, out, _ = _run(capsys, str(path), "--dataset", scorer.spec.name)
    assert code == 0 and json.loads(out)["approved"] is True


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "application file not found"),
    (["{bad}"], "debt_to_income must be between 0 and 3; got -1"),
    (["{good}", "--max-changes", "9"], "max_changes must be a whole number from 1 to 3; got 9"),
    (["{good}", "--dataset", "nope"], "--dataset 'nope' has no trained risk model; expected one of: credit, hmda"),
])
def test_cli_bad_input_names_the_field_and_exits_2(argv, message, tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"debt_to_income": 0.5, "housing_expense_to_income": 0.3, "loan_to_value": 0.9,
                                "consumer_credit_history": 2, "mortgage_credit_history": 2,
                                "public_bad_credit_record": False, "mortgage_insurance_denied": False,
                                "self_employed": False, "condominium": False}))
    bad.write_text(good.read_text().replace('"debt_to_income": 0.5', '"debt_to_income": -1'))
    paths = {"{good}": str(good), "{bad}": str(bad), "{missing}": str(tmp_path / "none.json")}
    code, out, err = _run(capsys, *[paths.get(a, a) for a in argv])
    assert code == 2 and not out and message in err and "Traceback" not in err


def test_cli_max_changes_that_is_not_a_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["recourse", "app.json", "--max-changes", "two"])
    assert stop.value.code == 2 and "--max-changes" in capsys.readouterr().err
