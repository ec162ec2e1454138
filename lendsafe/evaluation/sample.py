"""The held-out sample of explanations: SFT test-split examples that share nothing with training.

Held out means: an SFT test-split example whose application group (the original row and its
perturbations), application and exact prompt all differ from every training and validation example.
Approval prompts name only the product, so every approval prompt was seen in training and approvals
are left out. References are the SFT targets, written by the deterministic composer.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from lendsafe.errors import ArtifactNotFoundError
from lendsafe.explain.prompts import messages_sha256
from lendsafe.train.sft import load_examples

TRAINING_SPLITS = ("train", "validation")
# The gate's fixed 34 decisions: with 34 one decision is 2.9 points, so the 3-point tolerance on first-pass
# faithfulness admits one flipped near-tie and fails on two (with 30, a single flip would already fail).
GATE_QUOTAS = {("credit", "deny"): 17, ("hmda", "deny"): 17}


def stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def application_key(application: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(application, sort_keys=True, default=str).encode()).hexdigest()


def prompt_key(messages: list[dict[str, Any]]) -> str:
    return messages_sha256(messages)


def training_keys(training: list[dict[str, Any]]) -> dict[str, set[str]]:
    return {"application_groups": {e["application_id"] for e in training},
            "applications": {application_key(e["application"]) for e in training},
            "prompts": {prompt_key(e["messages"]) for e in training}}


def shared_with_training(example: dict[str, Any], keys: dict[str, set[str]]) -> list[str]:
    """What of an example also appears in training: its group, its application, its prompt."""
    own = {"application_groups": example["application_id"], "applications": application_key(example["application"]),
           "prompts": prompt_key(example["messages"])}
    return [name for name, key in own.items() if key in keys[name]]


def overlap_report(evaluated: list[dict[str, Any]], training: list[dict[str, Any]]) -> dict[str, int]:
    """Evaluated examples that share a group, an application or a prompt with training (all must be 0)."""
    keys = training_keys(training)
    counts = Counter(name for e in evaluated for name in shared_with_training(e, keys))
    return {"evaluated": len(evaluated), "training_examples": len(training),
            **{f"shared_{name}": counts.get(name, 0) for name in keys}}


def load_split(sft_dir: Path, name: str) -> list[dict[str, Any]]:
    path = Path(sft_dir) / f"{name}.jsonl"
    if not path.is_file():
        raise ArtifactNotFoundError(f"expected the SFT {name} split at {path}; run `lendsafe make-sft-data`")
    return load_examples(path)


def held_out_examples(sft_dir: Path, split: str = "test") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The split's examples that share nothing with training, and a report of what was left out."""
    candidates = load_split(sft_dir, split)
    training = [e for name in TRAINING_SPLITS for e in load_split(sft_dir, name)]
    keys = training_keys(training)
    kept = [e for e in candidates if not shared_with_training(e, keys)]
    left_out = Counter(f"{e['dataset']}/{e['decision']}" for e in candidates if shared_with_training(e, keys))
    return kept, {"split": split, "candidates": len(candidates), "held_out": len(kept),
                  "left_out_prompt_or_application_seen_in_training": dict(sorted(left_out.items()))}


def choose(examples: list[dict[str, Any]], limit: int | None, sample: str) -> list[dict[str, Any]]:
    """The evaluated examples: the gate's fixed quotas, or the first ``limit`` by a stable hash of the id."""
    if sample == "gate":
        chosen = []
        for (dataset, decision), quota in GATE_QUOTAS.items():
            group = [e for e in examples if e["dataset"] == dataset and e["decision"] == decision]
            chosen += sorted(group, key=lambda e: stable_fraction(f"gate:{e['id']}"))[:quota]
    else:
        chosen = sorted(examples, key=lambda e: stable_fraction(f"eval:{e['id']}"))[:limit]
    return sorted(chosen, key=lambda e: e["id"])
