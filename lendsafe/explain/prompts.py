"""Pure prompt building: a decision's facts -> chat messages (golden-file tested).

The prompt holds the decision, the principal reasons with their statements, rounded values and, for
coded values, their meanings, and the retrieved passages the applicant's rights rest on (trimmed). It never holds the threshold, the raw risk, any protected attribute
or free text from the application.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from lendsafe.decide.catalog import is_missing

from lendsafe.decide.specs import FeatureSpec, load_spec
from lendsafe.decide.decision import Decision, Reason
from lendsafe.explain.grounding import prompt_passages

SYSTEM_PROMPT = (
    "You write the explanation paragraph of a credit decision notice for a lender. "
    "Use only the facts given. State every listed reason, in the order given, with its figure and "
    "its meaning exactly as given, then the applicant's rights, written only from the passages given. "
    "Do not mention any other factor, any score or any promise. Write plain English."
)

STRICT_SUFFIX = (
    "Rules: mention exactly the {count} reason(s) listed and nothing else; copy each figure and each "
    "meaning exactly as written; a value that is not provided has no figure; cite nothing; never use the "
    "words reapply, guarantee, pre-approved, reconsider, score or threshold."
)

# The product is the dataset's own word, never free text from the application (which could steer the text).
PRODUCT_WORDS = {"hmda": "mortgage", "credit": "loan"}


def product_word(decision: Decision) -> str:
    """What the applicant applied for, in plain words: a controlled value per dataset."""
    return PRODUCT_WORDS.get(decision.dataset, "credit")


def reason_line(rank: int, reason: Reason, feature: FeatureSpec) -> str:
    """'1. Statement (Label: value, meaning ...)': the meaning of a coded value travels with it."""
    meaning = feature.level_text(reason.value) if not is_missing(reason.value) else None
    fact = f"{feature.label}: {reason.display_value}" + (f", meaning {meaning}" if meaning else "")
    return f"{rank}. {reason.statement} ({fact})"


def reason_lines(decision: Decision) -> list[str]:
    spec = load_spec(decision.dataset)
    return [reason_line(rank, reason, spec.feature(reason.feature))
            for rank, reason in enumerate(decision.reasons, start=1)]


def passage_lines(decision: Decision) -> list[str]:
    """The retrieved passages the applicant's rights rest on, trimmed, each with a short id."""
    found = prompt_passages(decision)
    if not found:
        return []
    return ["Passages (write the applicant's rights only from these):",
            *[f"[{pid}] {c.citation}: {text}" for pid, c, text in found]]


def user_prompt(decision: Decision, strict: bool = False, passages: bool = True) -> str:
    parts = [f"Decision: {'denied' if decision.denied else 'approved'}", f"Product: {product_word(decision)}"]
    if decision.denied:
        parts.append("Principal reasons, most important first:")
        parts.extend(reason_lines(decision))
        parts.extend(passage_lines(decision) if passages else [])
    if strict:
        parts.append(STRICT_SUFFIX.format(count=len(decision.reasons)))
    parts.append("Write the explanation.")
    return "\n".join(parts)


def build_messages(decision: Decision, strict: bool = False, passages: bool = True) -> list[dict[str, str]]:
    """Chat messages for the explanation writer (system + user); ``passages=False`` leaves the retrieved
    passages out (the evaluation's ablation)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_prompt(decision, strict, passages)}]


def messages_sha256(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
