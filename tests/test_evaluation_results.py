"""The typed results: the committed results file read, typed and given back unchanged; one key-path walker."""
import json

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.evaluation.results import (
    EvaluationMismatchError, EvaluationResults, ExplanationsSection, NoticesSection, RetrievalSection, RiskSection,
    WriterSummary, dig, load_results,
)

COMMITTED = [PROJECT_ROOT / "data" / "eval" / name for name in ("results.json", "ablation.json")]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_results_are_typed_and_given_back_unchanged(path):
    data = json.loads(path.read_text())
    results = EvaluationResults.from_dict(data)
    assert json.dumps(results.to_dict()) == json.dumps(data)          # same keys, values and order
    assert isinstance(results.explanations, ExplanationsSection)
    assert all(isinstance(s, WriterSummary) for s in results.writers.values())


def test_load_results_reads_the_committed_evaluation_with_absolute_plot_paths():
    results = load_results(COMMITTED[0])
    assert isinstance(results.risk, RiskSection) and isinstance(results.retrieval, RetrievalSection)
    assert isinstance(results.notices, NoticesSection) and results.notices.completeness_pass_rate == 1.0
    assert results.writers["lora"].final_pass_rate == 1.0 and results.writers["lora"].label
    assert all(entry["png"].startswith("/") for entry in results.plots.values())


def test_dig_walks_dicts_and_result_objects_alike():
    summary = WriterSummary(decisions=3, faithfulness={"first_attempt": {"factor_recall": 0.9}})
    path = ("faithfulness", "first_attempt", "factor_recall")
    assert dig(summary, path) == dig(summary.to_dict(), path) == 0.9
    assert dig(summary, ("decisions",)) == 3 and dig(summary, ("no_such_figure",)) is None
    assert dig({"a": 1}, ("a", "b")) is None and dig(None, ("a",)) is None


def test_unknown_keys_are_kept_and_absent_ones_not_invented():
    data = {"schema_version": 1, "kind": "full", "config": {}, "artifacts": {}, "started": "t", "complete": False,
            "sections": {"notices": {"notices": 2, "completeness_pass_rate": 1.0, "failures_by_check": {},
                                     "writer": "lora", "new_figure": 7}}, "timing": {}, "plots": {}, "later": True}
    results = EvaluationResults.from_dict(data)
    assert results.notices.extra == {"new_figure": 7} and results.extra == {"later": True}
    assert results.to_dict() == data and "machine" not in results.to_dict()


def test_results_of_another_schema_are_refused(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(EvaluationMismatchError, match="schema_version 0"):
        load_results(path)
