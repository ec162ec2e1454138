"""Dataset specs: the built-in specs' declared features, excluded columns, reason codes and monotone
directions; clear spec errors; the recourse keys of what an applicant can change."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from user_spec import spec_with

from lendsafe.config import SPECS_DIR
from lendsafe.decide.reasons import load_catalog
from lendsafe.decide.specs import _check_spec, builtin_dataset_names, load_spec, to_bool
from lendsafe.errors import ConfigurationError

DATASETS = ("hmda", "credit")
HMDA_FIELDS = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
               "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
               "condominium")
NEVER_FEATURES = {  # issue 2: protected attributes, factors that are not the applicant's, education
    "hmda": {"afam": "protected", "single": "protected", "unemp": "not_applicant", "hschool": "education"},
    "credit": {"Age": "protected", "Marital": "protected"},
}


@pytest.fixture(scope="module", params=DATASETS)
def spec(request):
    return load_spec(request.param)


def test_both_builtin_specs_load():
    assert builtin_dataset_names() == sorted(DATASETS)
    for name in DATASETS:
        spec = load_spec(name)
        assert spec.name == name and spec.path == SPECS_DIR / f"{name}.toml"
        assert load_spec(SPECS_DIR / f"{name}.toml") == spec


def test_hmda_application_fields_are_the_issue_interface():
    spec = load_spec("hmda")
    assert tuple(f.name for f in spec.input_fields) == HMDA_FIELDS
    assert spec.model_columns() == list(HMDA_FIELDS)
    ranges = {f.name: (f.type, f.min, f.max) for f in spec.features}
    for name in ("debt_to_income", "housing_expense_to_income", "loan_to_value"):
        assert ranges[name] == ("float", 0, 3)
    assert ranges["consumer_credit_history"] == ("int", 1, 6)
    assert ranges["mortgage_credit_history"] == ("int", 1, 4)
    assert all(ranges[n][0] == "bool" for n in HMDA_FIELDS[5:])
    assert (spec.target, spec.target_positive) == ("deny", "yes")


@pytest.mark.parametrize("name", DATASETS)
def test_excluded_columns_are_declared_and_never_model_features(name):
    spec = load_spec(name)
    declared = {e.column: e.kind for e in spec.excluded}
    assert NEVER_FEATURES[name].items() <= declared.items()
    assert all(e.why for e in spec.excluded)
    sources = {f.column for f in spec.model_features} | {
        spec.feature(n).column for f in spec.model_features for n in f.derived}
    assert not (sources & (set(declared) | {spec.target}))
    lowered = {c.lower() for c in spec.model_columns()}
    assert not lowered & {c.lower() for c in declared} and spec.target.lower() not in lowered


def test_every_feature_has_a_reason_code_with_catalog_text_and_citation(spec):
    catalog = load_catalog()
    for feature in spec.model_features:
        entry = catalog[feature.reason]
        assert len(entry.statement) > 10 and entry.citation.startswith("12 CFR 1002") and entry.factor
        assert feature.label and feature.help


def test_monotone_directions_are_declared_for_every_ordered_feature(spec):
    for feature in spec.model_features:
        assert feature.monotone in ((0,) if feature.type == "category" else (-1, 1)), feature.name
    constraints = spec.monotone_constraints()
    assert len(constraints) == len(spec.model_columns())
    assert dict(zip(spec.model_columns(), constraints)) == {
        c: (0 if "=" in c else spec.feature(c).monotone) for c in spec.model_columns()}


@pytest.mark.parametrize("text, expected", [("yes", True), (" No ", False), ("TRUE", True), ("0", False),
                                            (True, True), (np.bool_(False), False), (None, None)])
def test_to_bool(text, expected):
    assert to_bool(text) is expected


def test_to_bool_rejects_other_words():
    with pytest.raises(ValueError, match="expected yes/no or true/false; got 'maybe'"):
        to_bool("maybe")


@pytest.mark.parametrize("old, new, message", [
    ('monotone = 1\nreason = "DEBT_TO_INCOME"', 'monotonic = 1\nreason = "DEBT_TO_INCOME"',
     r"feature debt_ratio: unknown keys \['monotonic'\]"),
    ('target = "outcome"\n', '', r"missing keys \['target'\]"),
    ('reason = "PUBLIC_RECORD"', 'reason = "NO_SUCH_CODE"', r"public_record has reason code 'NO_SUCH_CODE'.*no text"),
    ('column = "late"', 'column = "sex"', r"late_payments uses excluded column sex"),
    ('column = "late"', 'column = "outcome"', r"late_payments uses excluded column outcome"),
    ('type = "int"', 'type = "integer"', r"late_payments: type must be one of"),
    ('monotone = 1\nreason = "PUBLIC_RECORD"', 'monotone = 2\nreason = "PUBLIC_RECORD"',
     r"public_record: monotone must be -1, 0 or 1; got 2"),
    ('reason = "PUBLIC_RECORD"\n', '', r"public_record: a model input needs a reason code"),
    ('title = "My', 'title = My', r"not valid TOML"),
])
def test_spec_mistakes_are_configuration_errors_naming_the_problem(tmp_path, old, new, message):
    with pytest.raises(ConfigurationError, match=message):
        load_spec(spec_with(tmp_path, old, new))


def test_derived_feature_from_an_excluded_column_is_rejected(tmp_path):
    spec = load_spec("credit")
    price = spec.feature("price")
    leaky = replace(spec, excluded=spec.excluded + (replace(spec.excluded[0], column=price.column),))
    with pytest.raises(ConfigurationError, match="loan_to_price uses excluded column Price"):
        _check_spec(leaky)


def test_spec_hash_is_computed_once_and_follows_the_content():
    spec = load_spec("hmda")
    same, changed = replace(spec), replace(spec, threshold=0.31)
    assert same == spec and hash(same) == hash(spec)
    assert changed != spec and hash(changed) != hash(spec)
    assert spec.__dict__["_hash"] == hash(spec)      # cached on the instance: specs key the scoring caches


# ------------------------------------------------------------------ recourse keys: what an applicant can change

# Features an applicant can act on in each built-in spec; everything else (past records, ratings, protected or
# excluded columns, derived ratios) must stay fixed.
ACTIONABLE = {"hmda": {"debt_to_income", "housing_expense_to_income", "loan_to_value"},
              "credit": {"loan_term_months", "debt", "amount"}}


@pytest.mark.parametrize("name", DATASETS)
def test_every_feature_is_classified_actionable_or_not(name):
    import tomllib

    raw = tomllib.loads((SPECS_DIR / f"{name}.toml").read_text())
    unclassified = [f["name"] for f in raw["features"] if not isinstance(f.get("actionable"), bool)]
    assert not unclassified, f"{name}: say actionable = true or false for {unclassified}"
    spec = load_spec(name)
    assert {f.name for f in spec.features if f.actionable} == ACTIONABLE[name]
    for feature in spec.features:
        if feature.actionable:
            lo, hi = feature.bounds
            assert feature.type in ("int", "float") and not feature.derived
            assert feature.min <= lo < hi <= feature.max
            assert feature.recourse_step > 0


@pytest.mark.parametrize("name", DATASETS)
def test_past_records_derived_and_excluded_columns_are_never_actionable(name):
    spec = load_spec(name)
    fixed = {f.name for f in spec.features if f.reason in ("PUBLIC_RECORD", "CONSUMER_CREDIT_HISTORY",
                                                             "MORTGAGE_PAYMENT_HISTORY") or f.derived}
    assert fixed and not {f.name for f in spec.features if f.actionable} & fixed
    excluded = {e.column for e in spec.excluded}
    assert not {f.column or f.name for f in spec.features if f.actionable} & excluded


def test_default_step_follows_the_spec_units():
    spec = load_spec("credit")
    assert spec.feature("amount").recourse_step == 1            # whole dollars (decimals = 0)
    assert spec.feature("loan_term_months").recourse_step == 6  # the spec's own step
    assert load_spec("hmda").feature("loan_to_value").recourse_step == pytest.approx(0.01)   # 2 decimals


@pytest.mark.parametrize("old, new, message", [
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = "yes"',
     r"feature debt_ratio: actionable must be true or false; got 'yes'"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true',
     r"feature debt_ratio: bounds must be \[lo, hi\].*got None"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [2, 1]',
     r"feature debt_ratio: bounds must be \[lo, hi\].*lo < hi"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 9]',
     r"feature debt_ratio: bounds must lie within the feature's min and max"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 2]\nstep = 0.001',
     r"feature debt_ratio: step must be a whole multiple of 0.01"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 2]\nstep = -1',
     r"feature debt_ratio: step must be a positive number"),
    ('label = "Late payments"', 'label = "Late payments"\nactionable = true\nbounds = [0, 20]\nstep = 1.5',
     r"feature late_payments: step must be a whole multiple of 1"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nbounds = [0, 2]',
     r"feature debt_ratio: bounds applies only to an actionable feature"),
    ('label = "Public record"', 'label = "Public record"\nactionable = true\nbounds = [0, 1]',
     r"feature public_record: bounds applies only to a number"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 2]\nat_least = "nope"',
     r"feature debt_ratio: at_least must name another number field.*got 'nope'"),
    ('label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 2]\nat_least = "public_record"',
     r"feature debt_ratio: at_least must name another number field"),
])
def test_recourse_key_mistakes_name_the_feature_and_the_key(tmp_path, old, new, message):
    with pytest.raises(ConfigurationError, match=message):
        load_spec(spec_with(tmp_path, old, new))


def test_a_derived_feature_cannot_be_actionable():
    price_ratio = load_spec("credit").feature("loan_to_price")
    with pytest.raises(ConfigurationError, match="loan_to_price: actionable must be false for a derived feature; "
                                                 "it changes only through amount, price"):
        replace(price_ratio, actionable=True, bounds=(0.1, 1.0))


def test_an_actionable_spec_loads_with_bounds_as_a_tuple(tmp_path):
    path = spec_with(tmp_path, 'label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 2]\n'
                                                          'at_least = "payment_ratio"')
    feature = load_spec(path).feature("debt_ratio")
    assert feature.bounds == (0, 2) and feature.at_least == "payment_ratio" and hash(load_spec(path))
