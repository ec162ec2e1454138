"""What an edit changed in the plain-words paragraph: a unified diff, one sentence per line."""
from __future__ import annotations

import difflib
import re

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """The paragraph's sentences, one per line (blank lines dropped)."""
    return [part for line in (text or "").splitlines() for part in SENTENCE_END.split(line.strip()) if part]


def paragraph_diff(before: str, after: str, *, before_label: str = "before", after_label: str = "after") -> str:
    """A unified diff of the two paragraphs, sentence by sentence ("" when they are the same text)."""
    if before == after:
        return ""
    lines = difflib.unified_diff(sentences(before), sentences(after), before_label, after_label, lineterm="", n=1)
    return "\n".join(lines) or f"--- {before_label}\n+++ {after_label}\n(whitespace changed)"


def changed_words(before: str, after: str) -> tuple[int, int]:
    """(words removed, words added) between the two paragraphs."""
    removed = added = 0
    matcher = difflib.SequenceMatcher(a=(before or "").split(), b=(after or "").split(), autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "equal":
            removed, added = removed + a1 - a0, added + b1 - b0
    return removed, added
