"""Validation decisions for choosing among trained writers: held apart from training, never the test split,
rebuilt exactly as the pipeline builds them, and counted the way the held-out evaluation counts them."""
import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.evaluation.summaries import UNTRUE_STATEMENTS
from lendsafe.explain.composer import compose
from lendsafe.train import validation
from lendsafe.train.validation import (MEANING_CHECKS, OVERLAP_KEYS, first_by_hash, held_apart, split_examples,
                                       validation_set, verification_figures)

SFT = PROJECT_ROOT / "data" / "sft"


def test_meaning_errors_are_the_checks_the_evaluation_counts():
    assert set(MEANING_CHECKS) == set(UNTRUE_STATEMENTS.values())


def test_held_apart_examples_share_nothing_with_training_and_never_read_the_test_split(monkeypatch):
    read = []
    monkeypatch.setattr(validation, "split_examples", lambda folder, split: read.append(split) or split_examples(folder, split))
    kept, report = held_apart(SFT)
    training = split_examples(SFT, "train")
    for name, key in OVERLAP_KEYS.items():
        assert not {key(e) for e in kept} & {key(e) for e in training}, name
    assert "test" not in read and all(e["split"] == "validation" for e in kept)
    assert report["held_apart"] == len(kept) and report["candidates"] == len(kept) + sum(
        report["left_out_sharing_with_training"].values())
    assert all(e["decision"] == "deny" for e in kept)   # approval prompts all occur in training


def test_first_by_hash_is_stable_and_a_prefix_of_a_longer_choice():
    items = [{"id": f"x-{i}"} for i in range(50)]
    assert first_by_hash(items, 5, "s") == first_by_hash(list(reversed(items)), 10, "s")[:5]
    assert first_by_hash(items, 5, "s") != first_by_hash(items, 5, "t")


@pytest.fixture(scope="module")
def vset():
    from lendsafe.knowledge.retrieval import KnowledgeBase

    return validation_set(SFT, 6, Settings(), KnowledgeBase(Settings()))


@pytest.mark.slow
def test_rebuilt_decisions_give_the_stored_prompts_and_the_composer_passes(vset):
    assert vset.prompts == [e["messages"] for e in vset.examples]
    assert [compose(d) for d in vset.decisions] == [e["target"] for e in vset.examples]
    figures = verification_figures(vset.decisions, [compose(d) for d in vset.decisions])
    assert figures["first_pass"] == figures["texts"] == 6 and figures["meaning_errors"] == 0


@pytest.mark.slow
def test_a_wrong_figure_is_a_meaning_error(vset):
    decision = vset.decisions[0]
    text = compose(decision)
    figure = next(r.display_value for r in decision.reasons if any(ch.isdigit() for ch in str(r.display_value)))
    figures = verification_figures([decision], [text.replace(str(figure), "9" + str(figure), 1)])
    assert figures["first_pass"] == 0 and figures["meaning_errors"] == 1
