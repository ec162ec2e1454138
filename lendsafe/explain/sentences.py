"""Sentences and numbers as a reader sees them: list numbering is not a figure, 'sixty-two percent' is."""
from __future__ import annotations

import re

LIST_MARKER_RE = re.compile(r"(?m)(?:^|(?<=[.!?:;]\s)|(?<=[.!?:;]\s\s))\s*(?:\d{1,2}[.)]|[-*\u2022])\s+(?=\S)")

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
TENS_WORDS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
SCALE_WORDS = {"hundred": 100, "thousand": 1000}
NUMBER_WORD_RE = re.compile(
    r"\b(?:(?:%s)(?:[- ](?:%s))*)\b(?:\s+(percent|per cent))?" % (
        "|".join([*NUMBER_WORDS, *TENS_WORDS, *SCALE_WORDS]), "|".join([*NUMBER_WORDS, *TENS_WORDS, *SCALE_WORDS])),
    re.IGNORECASE)


def without_list_markers(text: str) -> str:
    """'1. Debt ... 2. Income ...' read as sentences: list numbering and bullets are not figures."""
    return LIST_MARKER_RE.sub(" ", text)


def _number_word_value(phrase: str) -> int | None:
    total, current = 0, 0
    for word in re.split(r"[- ]+", phrase.lower()):
        if word in NUMBER_WORDS:
            current += NUMBER_WORDS[word]
        elif word in TENS_WORDS:
            current += TENS_WORDS[word]
        elif word in SCALE_WORDS:
            current = max(current, 1) * SCALE_WORDS[word]
            if SCALE_WORDS[word] >= 1000:
                total, current = total + current, 0
    return total + current


COUNT_NOUNS = re.compile(r"\s+(?:\w+\s+)?(?:factors?|reasons?|things?|items?|points?|of (?:them|these))\b", re.I)


def spelled_numbers(text: str) -> str:
    """Numbers written in words become digits ('sixty-two percent' -> '62%'), except counts of reasons."""
    def replace(match: re.Match) -> str:
        if COUNT_NOUNS.match(text, match.end()) and not match.group(1):
            return match.group(0)
        value = _number_word_value(match.group(0).rsplit(" per", 1)[0].replace(" percent", ""))
        return f"{value}%" if match.group(1) else str(value)
    return NUMBER_WORD_RE.sub(replace, text)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", without_list_markers(text).strip()) if s.strip()]


