"""Validation decisions for choosing among trained writers: the SFT validation split's denials that share
nothing with training, rebuilt as decisions so the verifier can check what an adapter writes for them.

Shares nothing means: no application group (original row and its perturbations), no application and no
exact prompt in common with any training example (approval prompts name only the product, so every
validation approval is left out). The test split is never read here: it is the held-out set that
`lendsafe evaluate` reports on. A decision is rebuilt the way the pipeline builds it (score, reasons,
retrieved passages); its first-attempt prompt must equal the stored one, or the example is refused.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lendsafe.config import Settings
from lendsafe.decide.decision import Decision
from lendsafe.decide.scoring import Scorer
from lendsafe.errors import ConfigurationError
from lendsafe.explain.generation import LoraGenerator
from lendsafe.explain.grounding import retrieval_key, retrieve
from lendsafe.explain.prompts import build_messages, messages_sha256
from lendsafe.explain.verify import TRUTH_CHECKS, verify
from lendsafe.train.sft import load_examples

VALIDATION_SPLIT = "validation"
TRAINING_SPLIT = "train"
# The meaning errors as the held-out evaluation counts them: the verifier's truth checks and unsupported content.
MEANING_CHECKS = TRUTH_CHECKS + ("only_decision_content",)


def application_key(application: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(application, sort_keys=True, default=str).encode()).hexdigest()


# What of an example may also appear in training, and how each is keyed.
OVERLAP_KEYS = {
    "application_groups": lambda example: example["application_id"],
    "applications": lambda example: application_key(example["application"]),
    "prompts": lambda example: messages_sha256(example["messages"]),
}


def stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def split_examples(sft_dir: Path, split: str) -> list[dict[str, Any]]:
    path = Path(sft_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigurationError(f"expected the SFT {split} split at {path}; got no file (run `lendsafe prepare`)")
    return load_examples(path)


def held_apart(sft_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Validation examples sharing no group, application or prompt with training, and what was left out."""
    candidates = split_examples(sft_dir, VALIDATION_SPLIT)
    training = split_examples(sft_dir, TRAINING_SPLIT)
    seen = {name: {key(e) for e in training} for name, key in OVERLAP_KEYS.items()}
    shared = [[name for name, key in OVERLAP_KEYS.items() if key(e) in seen[name]] for e in candidates]
    kept = [e for e, names in zip(candidates, shared) if not names]
    left_out = Counter(f"{e['dataset']}/{e['decision']}" for e, names in zip(candidates, shared) if names)
    return kept, {"split": VALIDATION_SPLIT, "candidates": len(candidates), "held_apart": len(kept),
                  "left_out_sharing_with_training": dict(sorted(left_out.items()))}


def first_by_hash(examples: list[dict[str, Any]], limit: int | None, salt: str) -> list[dict[str, Any]]:
    """The first ``limit`` examples in a stable hash order of their ids (all when ``limit`` is None)."""
    return sorted(examples, key=lambda e: stable_fraction(f"{salt}:{e['id']}"))[:limit]


def examples_sha256(examples: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps([e["id"] for e in examples]).encode()).hexdigest()


@dataclass
class ValidationSet:
    """Validation denials with their rebuilt decisions and first-attempt prompts."""

    examples: list[dict[str, Any]]
    decisions: list[Decision]
    prompts: list[list[dict]]
    report: dict[str, Any]


def rebuild_decisions(examples: list[dict[str, Any]], settings: Settings, knowledge: Any) -> list[Decision]:
    """Each example's decision as the pipeline makes it; refuses one whose prompt differs from the stored one."""
    citations: dict[tuple, tuple] = {}
    decisions = []
    for example in examples:
        decision = Scorer.load(example["dataset"], settings).score(example["application"], example["reference"])
        key = retrieval_key(decision)
        citations.setdefault(key, retrieve(knowledge, decision))
        decision = decision.with_updates(citations=citations[key])
        if build_messages(decision) != example["messages"]:
            raise ConfigurationError(f"expected the rebuilt prompt of {example['id']} to equal the stored one; "
                                     f"got a different prompt (the SFT data is older than the model or corpus)")
        decisions.append(decision)
    return decisions


def validation_set(sft_dir: Path, limit: int | None, settings: Settings, knowledge: Any,
                   salt: str = "validation") -> ValidationSet:
    """The first ``limit`` held-apart validation denials (stable hash order), rebuilt as decisions."""
    kept, report = held_apart(sft_dir)
    chosen = sorted(first_by_hash([e for e in kept if e["decision"] == "deny"], limit, salt), key=lambda e: e["id"])
    decisions = rebuild_decisions(chosen, settings, knowledge)
    report = {**report, "evaluated": len(chosen), "ids_sha256": examples_sha256(chosen),
              "selection": f"first {limit} held-apart denials by sha256('{salt}:' + id)"}
    return ValidationSet(chosen, decisions, [build_messages(d) for d in decisions], report)


def verification_figures(decisions: list[Decision], texts: list[str]) -> dict[str, Any]:
    """First-attempt verification of ``texts``: pass rate, meaning errors and failures by check."""
    failures = [verify(decision, text).failures for decision, text in zip(decisions, texts)]
    untrue = [any(check in found for check in MEANING_CHECKS) for found in failures]
    count = max(len(texts), 1)
    return {"texts": len(texts), "first_pass": sum(not found for found in failures),
            "first_pass_rate": round(sum(not found for found in failures) / count, 4),
            "meaning_errors": sum(untrue), "meaning_error_rate": round(sum(untrue) / count, 4),
            "failures_by_check": dict(sorted(Counter(c for found in failures for c in found).items()))}


def measure_adapter(adapter_dir: Path, vset: ValidationSet, settings: Settings, drafts: bool = True,
                    **writer_options: Any) -> dict[str, Any]:
    """What the adapter writes on its first attempt for every validation decision, verified and timed
    (int8 decoding as the app ships it; greedy unless ``writer_options`` give a sampling). ``drafts``:
    decode with the composer's drafts as the app does (fast when the adapter writes like the composer);
    without, greedy in left-padded batches (fast for an adapter that does not yet)."""
    with tempfile.TemporaryDirectory() as cache:
        writer = LoraGenerator(settings, adapter_dir=adapter_dir, cache_dir=cache, **writer_options)
        started = time.perf_counter()
        results = writer.write(vset.decisions, vset.prompts, use_cache=False, drafts=drafts)
        seconds = time.perf_counter() - started
    texts = [r.text for r in results]
    tokens = sum(r.tokens for r in results)
    figures = verification_figures(vset.decisions, texts)
    return {**figures, "generated_tokens": tokens, "generation_seconds": round(seconds, 1),
            "generation_tokens_per_s": round(tokens / max(seconds, 1e-9), 1), "decoding": writer.describe()["decoding"] + ("" if drafts else ", batched"),
            "texts_by_id": {e["id"]: text for e, text in zip(vset.examples, texts)}}
