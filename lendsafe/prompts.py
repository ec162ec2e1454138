"""Pure prompt building: a decision's facts -> chat messages (golden-file tested).

The prompt holds the decision, the principal reasons with their statements and rounded values,
and the retrieved citations. It never holds the threshold, the raw risk or any protected attribute.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from lendsafe.datasets import load_spec
from lendsafe.decision import Decision

SYSTEM_PROMPT = (
    "You write the explanation paragraph of a credit decision notice for a lender. "
    "Use only the facts given. State every listed reason, in the order given, with its figure. "
    "Do not mention any other factor, any score or any promise. Write plain English."
)

STRICT_SUFFIX = (
    "Rules: mention exactly the {count} reason(s) listed and nothing else; copy each figure exactly as "
    "written; cite only the sources listed; never use the words reapply, guarantee, pre-approved, "
    "reconsider, score or threshold."
)

PRODUCT_WORDS = {"hmda": "mortgage", "credit": "loan"}
MAX_PROMPT_CITATIONS = 3


def product_word(decision: Decision) -> str:
    """What the applicant applied for, in plain words (the application's own product if given)."""
    product = (decision.application.get("product") or "").strip()
    return product if 0 < len(product) <= 60 else PRODUCT_WORDS.get(decision.dataset, "credit")


def reason_lines(decision: Decision) -> list[str]:
    spec = load_spec(decision.dataset)
    lines = []
    for rank, reason in enumerate(decision.reasons, start=1):
        label = spec.feature(reason.feature).label
        lines.append(f"{rank}. {reason.statement} ({label}: {reason.display_value})")
    return lines


def prompt_citations(decision: Decision) -> list[str]:
    """Citations offered to the writer: each reason's own rule first, then the retrieved ones."""
    retrieved = [c.citation for c in decision.citations]
    ordered = [r.citation for r in decision.reasons if r.citation in retrieved] + retrieved
    unique = list(dict.fromkeys(ordered))
    return unique[:MAX_PROMPT_CITATIONS]


def user_prompt(decision: Decision, strict: bool = False) -> str:
    parts = [f"Decision: {'denied' if decision.denied else 'approved'}", f"Product: {product_word(decision)}"]
    if decision.denied:
        parts.append("Principal reasons, most important first:")
        parts.extend(reason_lines(decision))
        citations = prompt_citations(decision)
        if citations:
            parts.append("Sources: " + "; ".join(citations))
    if strict:
        parts.append(STRICT_SUFFIX.format(count=len(decision.reasons)))
    parts.append("Write the explanation.")
    return "\n".join(parts)


def build_messages(decision: Decision, strict: bool = False) -> list[dict[str, str]]:
    """Chat messages for the explanation writer (system + user)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_prompt(decision, strict)}]


def messages_sha256(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
