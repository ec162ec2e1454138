"""Fine-tuning data: enough real examples, split by application, every target faithful to its decision."""
from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.explain.prompts import build_messages
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.decide.scoring import Scorer
from lendsafe.train.sft import SPLITS, SftConfig, cached_citations, load_examples, perturb, split_of, training_applications
from lendsafe.explain.verify import verify

SFT_DIR = PROJECT_ROOT / "data" / "sft"


@pytest.fixture(scope="module")
def examples():
    return {name: load_examples(SFT_DIR / f"{name}.jsonl") for name, _ in SPLITS}


def test_enough_examples_of_both_datasets_and_both_outcomes(examples):
    everything = [e for split in examples.values() for e in split]
    counts = Counter((e["dataset"], e["decision"]) for e in everything)
    assert len(everything) >= 1500
    assert all(counts[(d, o)] > 0 for d in ("hmda", "credit") for o in ("deny", "approve"))
    manifest = json.loads((SFT_DIR / "manifest.json").read_text())
    assert manifest["examples"] == len(everything)


def test_no_application_is_in_two_splits(examples):
    groups = {name: {e["application_id"] for e in split} for name, split in examples.items()}
    assert not groups["train"] & groups["validation"] and not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    assert all(e["split"] == name == split_of(e["application_id"]) for name, split in examples.items() for e in split)


def test_examples_come_from_risk_model_training_rows_only(examples):
    for dataset in ("hmda", "credit"):
        test_rows = {f"{dataset}-{int(i)}" for i in RiskModel.load(model_dir(dataset)).test_index_}
        used = {e["application_id"] for split in examples.values() for e in split if e["dataset"] == dataset}
        assert used and not used & test_rows


def rescored(example):
    return rescored_all([example])[0]


def rescored_all(batch: list[dict]) -> list:
    """Each example's decision re-scored from its application (batched per dataset and reference)."""
    decisions: dict[int, object] = {}
    for key in {(e["dataset"], e["reference"]) for e in batch}:
        indexes = [i for i, e in enumerate(batch) if (e["dataset"], e["reference"]) == key]
        scored = Scorer.load(key[0]).score_many([batch[i]["application"] for i in indexes], key[1])
        decisions.update(zip(indexes, scored))
    knowledge = _knowledge()
    return [decisions[i].with_updates(citations=cached_citations(knowledge, decisions[i])) for i in range(len(batch))]


@lru_cache(maxsize=1)
def _knowledge():
    """The retrieval the data was built with: the decision's passages come back the same way."""
    from lendsafe.knowledge.retrieval import KnowledgeBase

    return KnowledgeBase()


def test_every_target_states_only_what_its_rescored_decision_supports(examples):
    """No example states a reason or a number its decision does not support (all splits, every example)."""
    problems = []
    everything = [e for split in examples.values() for e in split]
    for example, decision in zip(everything, rescored_all(everything)):
        if decision.decision != example["decision"] or [r.code for r in decision.reasons] != example["reason_codes"]:
            problems.append((example["id"], "decision or reasons differ on re-scoring"))
        elif not (report := verify(decision, example["target"])).passed:
            problems.append((example["id"], report.failures))
    assert not problems, problems[:5]


def test_prompts_are_the_pure_prompt_of_the_decision_and_hide_internals(examples):
    for example in examples["test"][:80]:
        decision = rescored(example)
        assert example["messages"] == build_messages(decision)
        text = json.dumps(example["messages"])
        assert f"{decision.risk:.3f}" not in text and "threshold" not in text.lower()


def test_targets_vary_with_content_not_at_random(examples):
    targets = [e["target"] for e in examples["train"]]
    assert len(set(targets)) > 0.5 * len(targets)
    openings = Counter(t.split(".")[0] for t in targets)
    assert len(openings) < 40


def test_perturbations_stay_realistic_and_within_the_schema():
    import numpy as np

    model = RiskModel.load(model_dir("hmda"))
    rng = np.random.default_rng(0)
    for _, application in training_applications(model.spec, model)[:200]:
        changed = perturb(model.spec, application, rng)
        for feature in model.spec.input_fields:
            value, before = changed.get(feature.name), application.get(feature.name)
            if feature.type == "float" and before is not None:
                assert abs(value - before) <= 0.151 * abs(before) + 1e-9
                assert feature.min is None or value >= feature.min
            if feature.type == "int" and before is not None:
                assert abs(value - before) <= 1 and feature.min <= value <= feature.max
        Scorer.load("hmda").score(changed)


def test_bad_settings_are_refused():
    from lendsafe.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="cutoff_share"):
        SftConfig(cutoff_share=1.5)
    with pytest.raises(ConfigurationError, match="perturbations"):
        SftConfig(perturbations=-1)
