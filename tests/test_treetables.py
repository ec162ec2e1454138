"""TreeSHAP lookup tables: bit-identical to xgboost's ``pred_contribs`` and margin on held-out rows, missing
values and values on a threshold; cached and reloaded identical; a loaded model scores without its booster;
boosters the tables cannot cover fall back to xgboost."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lendsafe.decide.datasets import load_dataset
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.decide.treetables import TreeTables, load_tables

DATASETS = ("hmda", "credit")


@pytest.fixture(scope="module", params=DATASETS)
def trained(request):
    """(dataset, committed model, committed metadata)."""
    folder = model_dir(request.param)
    return (load_dataset(request.param), RiskModel.load(folder),
            json.loads((folder / "metadata.json").read_text()))


def _xgboost_own(model, X):
    """pred_contribs and margin straight from the booster (no lookup tables)."""
    import xgboost as xgb

    X = np.asarray(X, dtype=np.float32)
    matrix = xgb.DMatrix(X, missing=np.nan, feature_names=model.booster_.feature_names)
    return (model.booster_.predict(matrix, pred_contribs=True),
            model.booster_.inplace_predict(X, predict_type="margin", missing=np.nan))


def test_lookup_tables_equal_pred_contribs_on_every_held_out_row(trained):
    dataset, model, _ = trained
    assert model.tables_ is not None
    X = np.asarray(dataset.X.iloc[model.test_index_], dtype=np.float32)
    contribs, margin = model.contributions_and_margin(X)
    expected, expected_margin = _xgboost_own(model, X)
    np.testing.assert_allclose(contribs, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(contribs, expected)          # bit-identical, in fact
    np.testing.assert_array_equal(margin, expected_margin)
    for i in range(0, len(X), 7):                              # one row at a time takes the other path
        one, one_margin = model.contributions_and_margin(X[i:i + 1])
        np.testing.assert_array_equal(one[0], expected[i])
        assert one_margin[0] == expected_margin[i]


def test_lookup_tables_cover_missing_values_and_values_on_a_threshold(trained):
    dataset, model, _ = trained
    X = np.asarray(dataset.X.iloc[:200], dtype=np.float32).copy()
    rng = np.random.default_rng(0)
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:50, model.tables_.features[0]] = model.tables_.thresholds[0]      # exactly on a split threshold
    contribs, margin = model.contributions_and_margin(X)
    expected, expected_margin = _xgboost_own(model, X)
    np.testing.assert_array_equal(contribs, expected)
    np.testing.assert_array_equal(margin, expected_margin)


def test_lookup_tables_are_cached_and_reload_identical(trained, tmp_path):
    dataset, model, _ = trained
    folder = model_dir(dataset.spec.name)
    built = load_tables(folder / "model.json", lambda: model.booster_, cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = load_tables(folder / "model.json", lambda: pytest.fail("read from the cache"), cache=tmp_path)
    X = np.asarray(dataset.X.iloc[:300], dtype=np.float32)
    for a, b in zip(built.predict(X), again.predict(X)):
        np.testing.assert_array_equal(a, b)
    assert again.model_sha256 == built.model_sha256 == model_dir_sha(folder)


def model_dir_sha(folder):
    return json.loads((folder / "metadata.json").read_text())["model_sha256"]


def test_a_loaded_model_scores_without_reading_its_booster(trained):
    dataset, _, meta = trained
    model = RiskModel.load(model_dir(dataset.spec.name))          # tables cached by the fixture's load
    contribs, _ = model.contributions_and_margin(np.asarray(dataset.X.iloc[:20], dtype=np.float32))
    assert model._booster is None and model.sha256 == meta["model_sha256"] and contribs.shape[0] == 20
    assert model.booster_.feature_names == dataset.spec.model_columns()      # read on first use


def test_deep_trees_and_other_objectives_fall_back_to_xgboost():
    import xgboost as xgb

    rng = np.random.default_rng(1)
    X, y = rng.random((300, 4)).astype(np.float32), rng.integers(0, 2, 300)
    deep = xgb.train({"max_depth": 5, "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 5)
    regression = xgb.train({"max_depth": 2, "objective": "reg:squarederror"}, xgb.DMatrix(X, label=y), 5)
    shallow = xgb.train({"max_depth": 3, "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 20)
    assert TreeTables.build(deep) is None and TreeTables.build(regression) is None
    contribs, margin = TreeTables.build(shallow).predict(X)
    np.testing.assert_array_equal(contribs, shallow.predict(xgb.DMatrix(X), pred_contribs=True))
    np.testing.assert_array_equal(margin, shallow.inplace_predict(X, predict_type="margin"))
