"""Per-decision records and their summaries: factors, figures and flags counted from each text."""
import json

import pytest

from evaluation_fixtures import SETTINGS
from lendsafe.evaluation.records import text_facts
from lendsafe.evaluation.summaries import faithfulness, meaning_errors, pass_rates, percentiles


def test_faithfulness_counts_factors_numbers_and_flags():
    from lendsafe.explain.composer import compose
    from lendsafe.decide.scoring import Scorer

    from passages import citations

    decision = Scorer.load("hmda").score(json.loads((SETTINGS.data_dir / "examples" / "hmda_denial.json").read_text()))
    decision = decision.with_updates(citations=citations())
    assert decision.denied and decision.reasons
    good = text_facts(decision, compose(decision))
    first = decision.reasons[0]
    wrong = text_facts(decision, f"We cannot approve your mortgage application. The principal reason is "
                                 f"{first.statement.lower()}, and your race. Your ratio of 9.99 is too high. Reapply soon.")
    assert good["passed"] and good["factors"] == sorted(r.code for r in decision.reasons)
    assert good["numbers"] == good["numbers_correct"]
    assert not wrong["passed"] and {"no_protected_basis", "no_forbidden_phrase", "numbers_match"} <= set(wrong["failures"])
    records = [{"reason_codes": [r.code for r in decision.reasons], "first": f} for f in (good, wrong)]
    summary = faithfulness(records, "first")
    expected = len(decision.reasons)
    assert summary["factor_recall"] == pytest.approx((expected + 1) / (2 * expected), abs=1e-4)
    assert summary["protected_basis_rate"] == summary["forbidden_phrase_rate"] == 0.5
    assert summary["number_accuracy"] < 1 and summary["pass_rate"] == 0.5
    assert summary["failures_by_check"]["no_protected_basis"] == 1


def record(first_passed: bool, final_passed: bool, failures=(), retried=False, fell_back=False, error=None) -> dict:
    facts = {"passed": first_passed, "failures": list(failures)}
    return {"dataset": "hmda", "decision": "deny", "first": facts, "final": {"passed": final_passed, "failures": []},
            "passed_on_retry": retried, "fell_back": fell_back, "error": error}


def test_pass_rates_and_meaning_errors_count_each_record_once():
    records = [record(True, True), record(False, True, ["numbers_match", "no_forbidden_phrase"], retried=True),
               record(False, True, ["meaning_matches_value", "numbers_match"], fell_back=True),
               record(False, False, ["not_issued"], error="refused")]
    rates = pass_rates(records)
    assert (rates["decisions"], rates["first_pass_rate"], rates["final_pass_rate"]) == (4, 0.25, 0.75)
    assert rates["passed_on_retry_rate"] == rates["fallback_rate"] == 0.25 and rates["not_issued"] == 1
    errors = meaning_errors(records, "first")
    assert errors["untrue_texts"] == 2 and errors["by_kind"]["wrong_figure"] == 2 and errors["rate"] == 0.5
    assert percentiles([None, 1.0, 3.0])["n"] == 2 and percentiles([])["p50"] is None
