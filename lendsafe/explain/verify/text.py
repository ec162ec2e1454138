"""Text preparation: word stems, citations masked out, sentence spans, the factors a text presents."""
from __future__ import annotations

import re
from functools import lru_cache

from lendsafe.decide.catalog import load_catalog
from lendsafe.explain.verify.patterns import CITATION_RE, REASON_PATTERNS


def stem(word: str) -> str:
    """Crude plural folding, applied alike to the text and to every vocabulary."""
    word = re.sub(r"'s$", "", word.lower().strip("'"))
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[A-Za-z][A-Za-z']*", text)]


def find_all(patterns: tuple[str, ...], text: str) -> list[str]:
    return [m.group(0) for p in patterns for m in re.finditer(p, text, re.IGNORECASE)]


def strip_citations(text: str) -> str:
    return CITATION_RE.sub(" ", text)


def cited_sections(text: str) -> list[str]:
    return [m.group(0).strip() for m in CITATION_RE.finditer(text)]


def masked_citations(text: str) -> str:
    """The text with citations blanked out, positions kept."""
    return CITATION_RE.sub(lambda m: " " * len(m.group(0)), text)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    starts = [0] + [m.end() for m in re.finditer(r"[.!?]\s+", text)]
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends))


@lru_cache(maxsize=1024)
def mentioned_factors(text: str) -> tuple[tuple[int, str], ...]:
    """(position, code) of every factor the text presents, full catalog statements matched first."""
    masked, found = text, []
    for code, statement in statement_patterns():
        for match in re.finditer(re.escape(statement), masked, re.IGNORECASE):
            found.append((match.start(), code))
            masked = masked[:match.start()] + " " * len(match.group(0)) + masked[match.end():]
    for code, patterns in REASON_PATTERNS.items():
        for pattern in patterns:
            found += [(m.start(), code) for m in re.finditer(pattern, masked, re.IGNORECASE)]
    return tuple(sorted(found))


@lru_cache(maxsize=1)
def statement_patterns() -> tuple[tuple[str, str], ...]:
    pairs = [(code, s) for code, entry in load_catalog().items() for s in entry.statements()]
    return tuple(sorted(pairs, key=lambda pair: -len(pair[1])))
