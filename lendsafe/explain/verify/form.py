"""Form: a complete last sentence, length and readability, citations only of retrieved passages."""
from __future__ import annotations

import re

from lendsafe.decide.decision import Decision
from lendsafe.explain.sentences import sentences
from lendsafe.explain.verify.patterns import LIMITS, MAX_MEAN_SENTENCE_WORDS, MAX_SENTENCE_WORDS, UNFINISHED_ENDINGS
from lendsafe.explain.verify.report import CheckResult
from lendsafe.explain.verify.text import cited_sections


def unfinished(text: str) -> str | None:
    """Why the text ends mid-sentence, or None: no closing stop, or a last word that cannot end a sentence."""
    stripped = text.strip().rstrip("\"')\u201d")
    if not stripped:
        return "empty"
    if stripped[-1] not in ".!?":
        return "unfinished last sentence"
    last = re.findall(r"[\w.§]+", stripped[:-1].lower())
    if last and last[-1].strip(".") in UNFINISHED_ENDINGS:
        return f"ends mid-sentence ('{last[-1]}.')"
    if last and len(sentences(text)[-1].split()) < 3:
        return "last sentence is a fragment"
    return None


def check_complete(decision: Decision, text: str) -> CheckResult:
    problem = unfinished(text)
    return CheckResult("complete_text", problem is None, problem or "ends with a complete sentence")


def check_readability(decision: Decision, text: str) -> CheckResult:
    words = text.split()
    low, high = LIMITS[decision.decision]
    parts = sentences(text)
    lengths = [len(s.split()) for s in parts] or [0]
    problems = []
    if not low <= len(words) <= high:
        problems.append(f"{len(words)} words, expected {low}-{high}")
    if max(lengths) > MAX_SENTENCE_WORDS or sum(lengths) / len(lengths) > MAX_MEAN_SENTENCE_WORDS:
        problems.append(f"sentences too long (max {max(lengths)} words)")
    if len(set(parts)) < len(parts):
        problems.append("repeated sentence")
    if any(not (ch.isprintable() or ch in "\n") for ch in text):
        problems.append("unprintable characters")
    return CheckResult("length_and_readability", not problems, "; ".join(problems) or
                       f"{len(words)} words in {len(parts)} sentences")


def _normal(citation: str) -> str:
    return re.sub(r"[^0-9a-z()\-.]", "", citation.lower().replace("§", "")).rstrip(".")


def check_citations(decision: Decision, text: str) -> CheckResult:
    retrieved = [_normal(c.citation) for c in decision.citations]
    cited = cited_sections(text)
    unknown = [c for c in cited if not any(_normal(c) and _normal(c) in r or r in _normal(c) for r in retrieved)]
    return CheckResult("citations_retrieved", not unknown, f"not among retrieved passages: {unknown}" if unknown
                       else f"{len(cited)} citation(s), all retrieved")
