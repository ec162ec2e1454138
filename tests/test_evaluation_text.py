"""Text similarity: ROUGE and BERTScore of identical and unrelated texts, unrelated pairs within a group."""
import pytest

from evaluation_fixtures import held_out  # noqa: F401 (fixture)
from lendsafe.evaluation.text import similarity, unrelated_pairs


def test_unrelated_pairs_never_pair_an_item_with_itself_and_stay_in_their_group():
    groups = ["a"] * 5 + ["b"] * 3 + ["c"]
    pairs = unrelated_pairs(groups, seed=1)
    assert len(pairs) == 8 and all(i != j and groups[i] == groups[j] for i, j in pairs)
    assert sorted(i for i, _ in pairs) == sorted(j for _, j in pairs)


def test_similarity_is_one_for_identical_texts_and_lower_for_unrelated_ones(held_out):
    examples, _ = held_out
    texts = [e["target"] for e in examples[:4]]
    same = similarity(texts, texts)
    assert same["rougeL"] == pytest.approx(1.0) and same["bertscore_f1"] == pytest.approx(1.0, abs=1e-3)
    other = similarity(texts, ["The weather in the harbour was calm all week."] * 4)
    assert other["rougeL"] < 0.2 and other["bertscore_f1"] < same["bertscore_f1"] - 0.1
