"""The held-out sample: no group, application or prompt shared with training; the gate's fixed quotas."""
from evaluation_fixtures import SFT_DIR, held_out  # noqa: F401 (fixture)
from lendsafe.evaluation.sample import (
    GATE_QUOTAS, choose, load_split, overlap_report, shared_with_training, training_keys,
)


def test_evaluated_explanations_share_no_group_application_or_prompt_with_training(held_out):
    examples, report = held_out
    training = [e for name in ("train", "validation") for e in load_split(SFT_DIR, name)]
    overlap = overlap_report(examples, training)
    assert examples and report["held_out"] == len(examples) < report["candidates"]
    assert overlap["shared_application_groups"] == overlap["shared_applications"] == overlap["shared_prompts"] == 0
    left_out = [e for e in load_split(SFT_DIR, "test") if e["id"] not in {x["id"] for x in examples}]
    keys = training_keys(training)
    assert left_out and all(shared_with_training(e, keys) for e in left_out)


def test_overlap_report_catches_an_example_seen_in_training(held_out):
    examples, _ = held_out
    leaked = examples[0]
    overlap = overlap_report(examples[:5], [leaked])
    assert overlap["shared_application_groups"] >= 1 and overlap["shared_prompts"] >= 1
    copy = {**leaked, "application_id": "other", "messages": [{"role": "user", "content": "x"}]}
    assert overlap_report([leaked], [copy])["shared_applications"] == 1


def test_gate_sample_is_fixed_and_follows_its_quotas(held_out):
    examples, _ = held_out
    first, second = choose(examples, None, "gate"), choose(list(reversed(examples)), None, "gate")
    assert [e["id"] for e in first] == [e["id"] for e in second]
    for (dataset, decision), quota in GATE_QUOTAS.items():
        assert sum(e["dataset"] == dataset and e["decision"] == decision for e in first) == quota
    assert len(choose(examples, 7, "limit")) == 7
