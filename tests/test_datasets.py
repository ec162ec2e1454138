"""Datasets as frames: excluded columns kept in the data but out of the model, data provenance, train/serve
agreement, data errors named, and a user's own CSV trained, saved, loaded and scored (specs: test_specs.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from user_spec import spec_with, write_user_data

from lendsafe.cli import main
from lendsafe.decide.datasets import frame_sha256, load_dataset, load_raw_frame, matrix_from_records, model_matrix
from lendsafe.decide.specs import load_spec
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.decide.risk import RiskModel, RiskParams, SPEC_FILE, model_dir, train_risk_model
from lendsafe.decide.scoring import Scorer

DATASETS = ("hmda", "credit")


@pytest.fixture(scope="module", params=DATASETS)
def dataset(request):
    return load_dataset(request.param)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Data-frame rows as application dicts (NaN -> None), the way the API receives them."""
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


# ------------------------------------------------------------------ the built-in specs

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

def test_a_column_missing_from_the_csv_is_named(tmp_path):
    path = spec_with(tmp_path, 'column = "late"', 'column = "late_count"')
    with pytest.raises(ConfigurationError, match=r"columns not found in the data: late_count \(late_payments\)"):
        load_dataset(path)


def test_unknown_dataset_and_missing_csv(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="dataset spec 'nope' not found; expected one of: credit, hmda"):
        load_spec("nope")
    path = write_user_data(tmp_path, rows=20)
    (tmp_path / "decisions.csv").unlink()
    with pytest.raises(ArtifactNotFoundError, match="data file for spec mylender not found"):
        load_dataset(path)


