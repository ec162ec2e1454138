"""Dataset specs: declared features, excluded columns kept out of the model, reason codes, data provenance,
train/serve agreement, clear spec errors, and a user's own CSV trained, saved, loaded and scored."""
from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lendsafe.cli import main
from lendsafe.decide.datasets import (
    SPECS_DIR, builtin_dataset_names, frame_sha256, load_dataset, load_raw_frame, load_spec, matrix_from_records,
    model_matrix, to_bool,
)
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.decide.reasons import load_catalog
from lendsafe.decide.risk import RiskModel, RiskParams, SPEC_FILE, model_dir, train_risk_model
from lendsafe.decide.scoring import Scorer

DATASETS = ("hmda", "credit")
HMDA_FIELDS = ("debt_to_income", "housing_expense_to_income", "loan_to_value", "consumer_credit_history",
               "mortgage_credit_history", "public_bad_credit_record", "mortgage_insurance_denied", "self_employed",
               "condominium")
NEVER_FEATURES = {  # issue 2: protected attributes, factors that are not the applicant's, education
    "hmda": {"afam": "protected", "single": "protected", "unemp": "not_applicant", "hschool": "education"},
    "credit": {"Age": "protected", "Marital": "protected"},
}


@pytest.fixture(scope="module", params=DATASETS)
def dataset(request):
    return load_dataset(request.param)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Data-frame rows as application dicts (NaN -> None), the way the API receives them."""
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


# ------------------------------------------------------------------ the built-in specs

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


def test_excluded_columns_stay_in_the_data_but_not_in_the_matrix(dataset):
    spec = dataset.spec
    for column in (e.column for e in spec.excluded):
        assert column in dataset.raw.columns and dataset.raw[column].notna().mean() > 0.99
        assert column not in dataset.X.columns and column not in dataset.applications.columns
    assert list(dataset.X.columns) == spec.model_columns()
    assert len(dataset.X) == len(dataset.y) == len(dataset.raw)


def test_protected_groups_are_readable_for_fairness_figures(dataset):
    for column in dataset.spec.protected:
        groups = column.groups(dataset.raw[column.column])
        assert 2 <= groups.nunique() <= 6 and groups.notna().all()
    age = next(e for e in load_spec("credit").protected if e.column == "Age")
    assert list(age.groups(pd.Series([18, 61, 62, 90, None]))) == ["< 62", "< 62", ">= 62", ">= 62", "missing"]


def test_every_feature_has_a_reason_code_with_catalog_text_and_citation(dataset):
    catalog = load_catalog()
    for feature in dataset.spec.model_features:
        entry = catalog[feature.reason]
        assert len(entry.statement) > 10 and entry.citation.startswith("12 CFR 1002") and entry.factor
        assert feature.label and feature.help


def test_monotone_directions_are_declared_for_every_ordered_feature(dataset):
    spec = dataset.spec
    for feature in spec.model_features:
        assert feature.monotone in ((0,) if feature.type == "category" else (-1, 1)), feature.name
    constraints = spec.monotone_constraints()
    assert len(constraints) == len(spec.model_columns())
    assert dict(zip(spec.model_columns(), constraints)) == {
        c: (0 if "=" in c else spec.feature(c).monotone) for c in spec.model_columns()}


def test_source_rows_and_sha256_behind_the_committed_model_match_the_data(dataset):
    meta = json.loads((model_dir(dataset.spec.name) / "metadata.json").read_text())
    assert meta["data"] == {"source": dataset.spec.source, "rows": len(dataset.raw), "sha256": dataset.sha256}
    assert dataset.sha256 == frame_sha256(load_raw_frame(dataset.spec).reset_index(drop=True))
    assert meta["features"] == dataset.spec.model_columns()


def test_data_hash_changes_with_one_value():
    raw = load_raw_frame(load_spec("hmda")).reset_index(drop=True)
    changed = raw.copy()
    changed.loc[7, "pirat"] += 0.01
    renamed = raw.rename(columns={"pirat": "dti"})
    assert len({frame_sha256(raw), frame_sha256(changed), frame_sha256(renamed)}) == 3


def test_scoring_matrix_equals_the_training_matrix_on_every_row(dataset):
    spec = dataset.spec
    inputs = dataset.applications[[f.name for f in spec.input_fields]]
    served = matrix_from_records(spec, _records(inputs))
    trained = np.asarray(dataset.X, dtype=np.float32)
    np.testing.assert_array_equal(served, trained)   # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(model_matrix(spec, dataset.applications).to_numpy(np.float32), trained)


def test_one_hot_levels_and_missing_values():
    spec = load_spec("credit")
    rows = [{"home": "rent", "income": None, "amount": 1000, "price": 2000},
            {"home": None, "income": 50.0, "amount": 1000, "price": 0}]
    matrix = dict(zip(spec.model_columns(), matrix_from_records(spec, rows).T))
    assert [matrix[f"home={lvl}"][0] for lvl in spec.feature("home").categories] == [0, 1, 0, 0, 0, 0]
    assert not any(matrix[f"home={lvl}"][1] for lvl in spec.feature("home").categories)
    assert np.isnan(matrix["income"][0]) and matrix["income"][1] == 50
    assert matrix["loan_to_price"][0] == 0.5 and np.isnan(matrix["loan_to_price"][1])


@pytest.mark.parametrize("text, expected", [("yes", True), (" No ", False), ("TRUE", True), ("0", False),
                                            (True, True), (np.bool_(False), False), (None, None)])
def test_to_bool(text, expected):
    assert to_bool(text) is expected


def test_to_bool_rejects_other_words():
    with pytest.raises(ValueError, match="expected yes/no or true/false; got 'maybe'"):
        to_bool("maybe")


# ------------------------------------------------------------------ a user's own CSV and spec

USER_SPEC = textwrap.dedent('''
    name = "mylender"
    title = "My lender's personal loans"
    source = "mylender decisions export"
    csv = "decisions.csv"
    target = "outcome"
    target_positive = "bad"
    outcome = "the loan not being repaid"
    threshold = 0.5
    threshold_version = "mylender-1"

    [[excluded]]
    column = "sex"
    kind = "protected"
    why = "sex is a prohibited basis"

    [[features]]
    name = "debt_ratio"
    column = "debt_ratio"
    type = "float"
    min = 0
    max = 5
    monotone = 1
    reason = "DEBT_TO_INCOME"
    label = "Debt ratio"

    [[features]]
    name = "payment_ratio"
    column = "payment_ratio"
    type = "float"
    min = 0
    max = 2
    monotone = 1
    reason = "DEBT_TO_INCOME"
    label = "Payment-to-income ratio"

    [[features]]
    name = "late_payments"
    column = "late"
    type = "int"
    min = 0
    max = 20
    monotone = 1
    reason = "CONSUMER_CREDIT_HISTORY"
    label = "Late payments"

    [[features]]
    name = "public_record"
    column = "record"
    type = "bool"
    monotone = 1
    reason = "PUBLIC_RECORD"
    label = "Public record"
''')


def write_user_data(folder: Path, rows: int = 600, seed: int = 7) -> Path:
    """A small lending CSV whose outcome follows the features (and not the protected column)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "debt_ratio": rng.uniform(0, 2, rows).round(3), "payment_ratio": rng.uniform(0, 1, rows).round(3),
        "late": rng.integers(0, 7, rows), "record": rng.choice(["yes", "no"], rows, p=[0.2, 0.8]),
        "sex": rng.choice(["F", "M"], rows)})
    logit = -4 + 2 * frame.debt_ratio + 2 * frame.payment_ratio + 0.5 * frame.late + 1.5 * (frame.record == "yes")
    frame["outcome"] = np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), "bad", "good")
    frame.to_csv(folder / "decisions.csv", index=False)
    (folder / "mylender.toml").write_text(USER_SPEC)
    return folder / "mylender.toml"


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    spec_path = write_user_data(folder)
    out = folder / "model"
    params = RiskParams(n_estimators=40, cv_folds=2)
    return spec_path, out, train_risk_model(spec_path, out, params)


def test_user_spec_reads_their_csv(user_model):
    spec_path, _, _ = user_model
    data = load_dataset(spec_path)
    assert data.spec.name == "mylender" and data.spec.path == spec_path.resolve()
    assert list(data.X.columns) == ["debt_ratio", "payment_ratio", "late_payments", "public_record"]
    assert "sex" in data.raw.columns and "sex" not in data.X.columns
    assert set(data.X["public_record"]) == {0.0, 1.0} and 0.2 < data.y.mean() < 0.8


def test_user_model_is_saved_with_its_spec_and_loads_anywhere(user_model, monkeypatch, tmp_path):
    spec_path, out, model = user_model
    assert (out / SPEC_FILE).read_text() == spec_path.read_text()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["dataset"] == "mylender" and meta["data"]["rows"] == 600
    assert meta["data"]["sha256"] == load_dataset(spec_path).sha256
    assert meta["metrics"]["test"]["auc"] > 0.7
    assert set(meta["metrics"]["adverse_impact_test"]) == {"sex"}
    monkeypatch.chdir(tmp_path)
    loaded = RiskModel.load(out)
    assert loaded.spec.name == "mylender" and loaded.sha256 == model.sha256


def test_user_model_scores_and_names_the_feature_that_raised_risk_most(user_model):
    """debt_ratio and payment_ratio share DEBT_TO_INCOME: summed into one reason naming the larger of those
    whose value is adverse."""
    _, out, _ = user_model
    scorer = Scorer(RiskModel.load(out))
    applications = [{"debt_ratio": float(x), "payment_ratio": 0.98, "late_payments": 6, "public_record": True}
                    for x in np.linspace(0, 2, 41)]
    named = set()
    for application, decision in zip(applications, scorer.score_many(applications)):
        shared = [r for r in decision.reasons if r.code == "DEBT_TO_INCOME"]
        total = decision.contributions["debt_ratio"] + decision.contributions["payment_ratio"]
        assert len(shared) == (1 if decision.denied and total > 1e-6 else 0)
        for reason in shared:
            assert reason.contribution == pytest.approx(total, abs=2e-6)
            dropped = {d["feature"] for d in decision.dropped}
            assert reason.feature not in dropped             # the named feature's own value is adverse
            assert decision.contributions[reason.feature] == max(decision.contributions[f]
                                                                 for f in ("debt_ratio", "payment_ratio")
                                                                 if f not in dropped) > 0
            assert reason.value == application[reason.feature]
            named.add(reason.feature)
    assert named == {"debt_ratio", "payment_ratio"}


def test_user_spec_through_the_cli(tmp_path, capsys):
    spec_path = write_user_data(tmp_path, rows=200, seed=3)
    assert main(["train-risk", "--spec", str(spec_path), "--out", str(tmp_path / "m")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["dataset"] == "mylender" and printed["data"]["rows"] == 200
    application = tmp_path / "app.json"
    application.write_text(json.dumps({"debt_ratio": 1.8, "payment_ratio": 0.9, "late_payments": 5,
                                       "public_record": True}))
    assert main(["score", str(application), "--model", str(tmp_path / "m")]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["model"]["dataset"] == "mylender" and scored["decision"] == "deny" and scored["reasons"]


# ------------------------------------------------------------------ spec errors name what is wrong

def _spec_with(tmp_path: Path, old: str, new: str) -> Path:
    write_user_data(tmp_path, rows=50)
    path = tmp_path / "mylender.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


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
        load_spec(_spec_with(tmp_path, old, new))


def test_a_column_missing_from_the_csv_is_named(tmp_path):
    path = _spec_with(tmp_path, 'column = "late"', 'column = "late_count"')
    with pytest.raises(ConfigurationError, match=r"columns not found in the data: late_count \(late_payments\)"):
        load_dataset(path)


def test_derived_feature_from_an_excluded_column_is_rejected(tmp_path):
    spec = load_spec("credit")
    price = spec.feature("price")
    leaky = replace(spec, excluded=spec.excluded + (replace(spec.excluded[0], column=price.column),))
    from lendsafe.decide.datasets import _check_spec

    with pytest.raises(ConfigurationError, match="loan_to_price uses excluded column Price"):
        _check_spec(leaky)


def test_unknown_dataset_and_missing_csv(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="dataset spec 'nope' not found; expected one of: credit, hmda"):
        load_spec("nope")
    path = write_user_data(tmp_path, rows=20)
    (tmp_path / "decisions.csv").unlink()
    with pytest.raises(ArtifactNotFoundError, match="data file for spec mylender not found"):
        load_dataset(path)


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
        load_spec(_spec_with(tmp_path, old, new))


def test_a_derived_feature_cannot_be_actionable():
    price_ratio = load_spec("credit").feature("loan_to_price")
    with pytest.raises(ConfigurationError, match="loan_to_price: actionable must be false for a derived feature; "
                                                 "it changes only through amount, price"):
        replace(price_ratio, actionable=True, bounds=(0.1, 1.0))


def test_an_actionable_spec_loads_with_bounds_as_a_tuple(tmp_path):
    path = _spec_with(tmp_path, 'label = "Debt ratio"', 'label = "Debt ratio"\nactionable = true\nbounds = [0, 2]\n'
                                                          'at_least = "payment_ratio"')
    feature = load_spec(path).feature("debt_ratio")
    assert feature.bounds == (0, 2) and feature.at_least == "payment_ratio" and hash(load_spec(path))
