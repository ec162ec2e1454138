"""Rights the applicant has after a denial, grounded in retrieved regulation passages.

Each right names the decisions it applies to (every denial; a consumer report used; information from a
third party that is not a consumer reporting agency), the corpus passage it is written from, the query
that retrieves that passage, and the plain-language sentence the composer writes from it. The writer
sees the passages themselves (trimmed to a word budget); the verifier's support check accepts a legal
or rights sentence only when a retrieved passage that applies to the decision supports it: its numbers
and periods match the passage and its content words are the passage's own or accepted paraphrases.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import Citation, Decision
from lendsafe.decide.reasons import load_catalog
from lendsafe.errors import LendSafeError
from lendsafe.explain.sentences import sentences, spelled_numbers

MAX_PASSAGE_WORDS = 48          # per passage in the prompt: keeps the prompt (and latency) small


@dataclass(frozen=True)
class Right:
    key: str
    applies: str                # "denial" | "consumer_report" | "third_party"
    passage_id: str             # the corpus passage the sentence is written from
    citation: str
    query: str                  # what retrieves it
    sentence: str               # the composer's sentence, in words of the passage
    excerpt: tuple[str, int] = ("", MAX_PASSAGE_WORDS)   # where the prompt's excerpt starts, and its length


RIGHTS = (
    Right("free_report", "consumer_report", "fcra-615a-4", "15 U.S.C. 1681m(a)(4)",
          "right to obtain a free copy of the consumer report within 60 days and to dispute its accuracy",
          "You have the right to obtain a free copy of your consumer report from the agency if you ask for it "
          "within 60 days."),
    Right("dispute", "consumer_report", "fcra-615a-4", "15 U.S.C. 1681m(a)(4)",
          "right to dispute with the consumer reporting agency the accuracy or completeness of the report",
          "You also have the right to dispute with the agency the accuracy or completeness of anything in "
          "your report."),
    Right("third_party", "third_party", "fcra-615b", "15 U.S.C. 1681m(b)(1)",
          "credit denied because of information from a third party that is not a consumer reporting agency: "
          "right to ask in writing within 60 days for the nature of that information",
          "Because information from a third party was used, you have the right to ask us in writing, within "
          "60 days, for the nature of that information.", ("because of information", 48)),
    Right("ecoa", "denial", "reg-b-1002-9-b-1", "12 CFR 1002.9(b)(1)",
          "ECOA notice on an adverse action letter: federal law prohibits creditors from discriminating "
          "against credit applicants",
          "Federal law, the Equal Credit Opportunity Act, prohibits creditors from discriminating against "
          "credit applicants.", ("federal law", 12)),
)
RIGHTS_BY_PASSAGE = {right.passage_id: right for right in RIGHTS}


def information_sources(decision: Decision) -> frozenset[str]:
    """Where the decision's information came from: the principal reasons' sources (a code the catalog does
    not hold: the application), plus a consumer report whenever any model input rests on one (FCRA 615(a)
    applies to decisions based 'in whole or in part'). The one table of sources: notices use it too."""
    catalog = load_catalog()
    sources = {catalog[r.code].source if r.code in catalog else "application" for r in decision.reasons}
    return frozenset(sources | ({"consumer_report"} & input_sources(decision.dataset)))


@lru_cache(maxsize=16)
def input_sources(dataset: str) -> frozenset[str]:
    """Information sources of a dataset's model inputs (none when the dataset is not known)."""
    try:
        features = load_spec(dataset).model_features
    except LendSafeError:
        return frozenset()
    catalog = load_catalog()
    return frozenset(catalog[f.reason].source for f in features if f.reason in catalog)


def applies(right: Right, decision: Decision) -> bool:
    if not decision.denied:
        return False
    return right.applies == "denial" or right.applies in information_sources(decision)


def applicable_rights(decision: Decision) -> tuple[Right, ...]:
    return tuple(right for right in RIGHTS if applies(right, decision))


def rights_sentences(decision: Decision) -> list[str]:
    """The composer's rights part: one sentence per right that applies, in the table's order."""
    return [right.sentence for right in applicable_rights(decision)]


def excerpt(text: str, start: str = "", limit: int = MAX_PASSAGE_WORDS) -> str:
    """The passage from ``start`` (when found) for at most ``limit`` words, elisions marked."""
    at = text.lower().find(start.lower()) if start else 0
    words = text[max(at, 0):].split()
    head = "... " if at > 0 else ""
    return head + " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def prompt_passages(decision: Decision) -> list[tuple[str, Citation, str]]:
    """(short id, passage, excerpt) for each retrieved passage a right that applies rests on, in order."""
    by_id = {c.passage_id: c for c in decision.citations if c.passage_id}
    wanted: dict[str, Right] = {}
    for right in applicable_rights(decision):
        wanted.setdefault(right.passage_id, right)
    found = [(by_id[pid], right) for pid, right in wanted.items() if pid in by_id]
    return [(f"R{i}", citation, excerpt(citation.text, *right.excerpt)) for i, (citation, right) in enumerate(found, 1)]


# ---------------------------------------------------------------------------- support

LEGAL_CUES = re.compile(r"\brights?\b|\blaw\b|\bact\b|\bwithin \w+ days\b|\bfree\b|\bdispute\b|\bin writing\b|"
                        r"\bagency\b|\bprohibit|\bdiscriminat|\bregulation\b|\bentitled\b|\bmust\b|\brequire|"
                        r"\bstatement of reasons\b|\bforbid", re.IGNORECASE)
# Words a rights sentence may use for the passage's own (sentence word -> passage words it stands for).
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "get": ("obtain", "provide"), "ask": ("request", "asks"), "request": ("ask",), "report": ("file", "disclosure"),
    "credit": ("consumer",), "bureau": ("agency",), "agency": ("bureau",), "supplied": ("supply", "provided"),
    "completeness": ("complete", "incomplete"), "accuracy": ("accurate", "inaccurate"), "anything": ("any",),
    "information": ("item", "information"), "forbid": ("prohibit", "prohibits"), "forbids": ("prohibits",), "discriminate": ("discriminating",),
    "applicant": ("applicants",), "lender": ("creditor",), "lenders": ("creditors",), "us": ("creditor",),
    "we": ("creditor",), "our": ("creditor",), "used": ("based", "because"), "within": ("period",), "days": ("day",),
}
SUPPORT_FILLER = frozenset("""
you your yours the a an of to in on for from by with and or that this these those it its is are was
were be been has have had do does can may also any if as at which who whom what when there their them they
""".split())
NUMBER = re.compile(r"\d+")
LEGAL_SOURCE_WORDS = frozenset({"law", "laws", "federal", "provides", "says", "under"})


def _tokens(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Za-z]+", text)]


def legal_sentences(text: str) -> list[str]:
    return [s for s in sentences(text) if LEGAL_CUES.search(s)]


def _numbers(text: str) -> set[str]:
    return set(NUMBER.findall(spelled_numbers(text)))


def unsupported_words(sentence: str, passage: str, citation: str = "") -> list[str]:
    """Content words of ``sentence`` that neither the passage nor an accepted paraphrase of it contains;
    'the law provides' and the like are accepted for passages of a statute or regulation."""
    own = set(_tokens(passage)) | (LEGAL_SOURCE_WORDS if re.search(r"U\.S\.C\.|CFR", citation) else set())
    own |= {w[:-1] for w in own if w.endswith("s")} | {w + "s" for w in own}
    return [w for w in _tokens(spelled_numbers(sentence)) if w not in SUPPORT_FILLER and w not in own
            and not (set(PARAPHRASES.get(w, ())) & own)]


def support(decision: Decision, sentence: str) -> tuple[Citation | None, str]:
    """The retrieved passage that supports a legal sentence, or None with why not."""
    problems = []
    for citation in decision.citations:
        right = RIGHTS_BY_PASSAGE.get(citation.passage_id)
        extra_numbers = _numbers(sentence) - _numbers(citation.text)
        words = unsupported_words(sentence, citation.text, citation.citation)
        if not extra_numbers and not words:
            if right is not None and not applies(right, decision):
                problems.append(f"{citation.citation} does not apply to this decision")
                continue
            return citation, ""
        problems.append(f"{citation.citation}: " + ", ".join(
            [f"numbers {sorted(extra_numbers)} not in it"] * bool(extra_numbers) + [f"words {words[:6]} not in it"] * bool(words)))
    closest = min(problems, key=len) if problems else "no passage was retrieved"
    return None, closest


def prose(decision: Decision, text: str) -> str:
    """The text without its supported legal sentences (those are judged against their passages)."""
    supported = {r["sentence"] for r in grounding(decision, text) if r["passage_id"]}
    return " ".join(s for s in sentences(text) if s not in supported)


def grounding(decision: Decision, text: str) -> list[dict[str, Any]]:
    """Per legal sentence: the passage it rests on (id and citation), or the reason it has none."""
    rows = []
    for sentence in legal_sentences(text):
        citation, why = support(decision, sentence)
        rows.append({"sentence": sentence, "passage_id": citation.passage_id if citation else None,
                     "citation": citation.citation if citation else None, "why_unsupported": why or None})
    return rows


@lru_cache(maxsize=1)
def rights_vocabulary() -> frozenset[str]:
    return frozenset(w for right in RIGHTS for w in _tokens(right.sentence))


def retrieve(knowledge: Any, decision: Decision) -> tuple[Citation, ...]:
    """The decision's passages: the reasons' rules and the notice's requirements (the knowledge base's own
    choice), then the passage of every right that applies; duplicates removed, order kept."""
    found = list(knowledge.retrieve_for_decision(decision))
    found += [knowledge.retrieve_requirement(right.query, right.citation) for right in applicable_rights(decision)]
    unique: dict[tuple[str, str], Citation] = {}
    for citation in filter(None, found):
        unique.setdefault((citation.citation, citation.title), citation)
    return tuple(unique.values())


def retrieval_key(decision: Decision) -> tuple:
    """What retrieval depends on: dataset, decision, reasons and the rights that apply."""
    return (decision.dataset, decision.decision, tuple(r.code for r in decision.reasons),
            tuple(r.statement for r in decision.reasons), tuple(r.key for r in applicable_rights(decision)))
