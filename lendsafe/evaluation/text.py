"""Text similarity for the evaluation: ROUGE-1/2/L and BERTScore (local MiniLM), with an unrelated-pairs floor.

Similarity to composer-written references measures imitation of the reference wording, not truth:
the evaluation always reports it beside the faithfulness checks, the composer's own ceiling and the
floor of unrelated pairs (another applicant's reference of the same dataset and decision).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from lendsafe.knowledge.embeddings import model_path, set_offline, torch_threads
from lendsafe.lm.loading import MODEL_LOADING

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
BERTSCORE_LAYERS = 6          # all-MiniLM-L6-v2 has six layers; the last one is used
BERTSCORE_BATCH = 64
BERTSCORE_THREADS = 1
METRIC_NAMES = (*ROUGE_TYPES, "bertscore_precision", "bertscore_recall", "bertscore_f1")


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(candidates: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """ROUGE F-measure per pair, one list per ROUGE type."""
    scorer = _rouge_scorer()
    scores = [scorer.score(ref, cand) for cand, ref in zip(candidates, references)]
    return {name: [s[name].fmeasure for s in scores] for name in ROUGE_TYPES}


@lru_cache(maxsize=1)
def bert_scorer() -> Any:
    """BERTScore over the local all-MiniLM-L6-v2 (no download, no baseline rescaling)."""
    set_offline()
    from bert_score import BERTScorer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    with MODEL_LOADING:
        return BERTScorer(model_type=str(model_path()), num_layers=BERTSCORE_LAYERS, lang="en",
                          rescale_with_baseline=False, device="cpu", batch_size=BERTSCORE_BATCH)


def bertscore(candidates: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """BERTScore precision, recall and F1 per pair (raw cosine-based values, not rescaled)."""
    if not candidates:
        return {"bertscore_precision": [], "bertscore_recall": [], "bertscore_f1": []}
    with torch_threads(BERTSCORE_THREADS):
        precision, recall, f1 = bert_scorer().score(list(candidates), list(references))
    return {"bertscore_precision": precision.tolist(), "bertscore_recall": recall.tolist(),
            "bertscore_f1": f1.tolist()}


def pair_scores(candidates: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Every metric per (candidate, reference) pair; empty texts score 0 (nothing was written)."""
    candidates = [c or "" for c in candidates]
    placeholders = [c if c.strip() else "." for c in candidates]    # bert_score cannot encode "" (transformers 5)
    scores = {**rouge(candidates, references), **bertscore(placeholders, references)}
    for name in ("bertscore_precision", "bertscore_recall", "bertscore_f1"):
        scores[name] = [0.0 if not c.strip() else s for c, s in zip(candidates, scores[name])]
    return scores


def mean_scores(scores: dict[str, list[float]]) -> dict[str, float | int | None]:
    """Mean of each metric (None when there were no pairs) and the number of pairs."""
    count = len(next(iter(scores.values()), []))
    means = {name: (round(float(np.mean(values)), 4) if values else None) for name, values in scores.items()}
    return {**means, "pairs": count}


def unrelated_pairs(groups: Sequence[str], seed: int) -> list[tuple[int, int]]:
    """(candidate index, reference index) pairs that never match an item with itself: a random cyclic
    shift within each group (same dataset and decision), so the floor is not made low by comparing a
    denial with an approval. Groups of one item give no pair."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        by_group.setdefault(group, []).append(index)
    pairs = []
    for name in sorted(by_group):
        members = [int(i) for i in rng.permutation(by_group[name])]
        if len(members) > 1:
            pairs += [(members[k], members[(k + 1) % len(members)]) for k in range(len(members))]
    return sorted(pairs)


def similarity(candidates: Sequence[str], references: Sequence[str]) -> dict[str, float | int | None]:
    """Mean ROUGE and BERTScore of matching (candidate, reference) pairs."""
    return mean_scores(pair_scores(candidates, references))
