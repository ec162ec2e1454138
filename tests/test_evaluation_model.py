"""Risk-model and reason evaluation: the recorded test rows only, reason agreement, small perturbations."""
import numpy as np
import pytest

from evaluation_fixtures import SETTINGS
from lendsafe.evaluation.model import agreement, load_held_out, nudge, split_overlap


@pytest.mark.parametrize("dataset", ["hmda", "credit"])
def test_risk_evaluation_rows_are_the_recorded_test_rows_and_never_training_rows(dataset):
    held = load_held_out(dataset, SETTINGS)
    assert np.array_equal(held["test"], np.sort(held["model"].test_index_))
    assert split_overlap(held["train"], held["test"], held["dataset"].X)["shared_rows"] == 0
    assert split_overlap(held["train"], held["train"][:3], held["dataset"].X)["shared_rows"] == 3


def test_agreement_and_nudge():
    pairs = [(("A", "B"), ("A", "B")), (("A", "B"), ("B", "A")), (("C",), ("D",))]
    result = agreement(pairs)
    assert result["same_principal_reason"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["same_reasons_in_order"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["mean_jaccard"] == pytest.approx(2 / 3, abs=1e-4)
    spec = load_held_out("hmda", SETTINGS)["model"].spec
    application = {"debt_to_income": 2.99, "housing_expense_to_income": 0.3, "loan_to_value": 0.8,
                   "consumer_credit_history": 3, "mortgage_credit_history": 2, "public_bad_credit_record": True,
                   "mortgage_insurance_denied": False, "self_employed": False, "condominium": True}
    for seed in range(20):
        moved = nudge(spec, application, 0.02, np.random.default_rng(seed))
        assert moved["debt_to_income"] <= 3.0 and abs(moved["loan_to_value"] / 0.8 - 1) <= 0.02
        assert {k: moved[k] for k in application if not isinstance(application[k], float)} == \
               {k: v for k, v in application.items() if not isinstance(v, float)}
