"""The open world: every sentence is made of the decision's own reasons, framing and plain connectives."""
from __future__ import annotations

from functools import lru_cache

from lendsafe.decide.catalog import load_catalog
from lendsafe.explain.composer import FEATURE_PHRASES, MISSING_PHRASE
from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import Decision
from lendsafe.explain.grounding import LEGAL_CUES
from lendsafe.explain.prompts import product_word
from lendsafe.explain.sentences import sentences
from lendsafe.explain.verify.patterns import CONNECTIVE_WORDS
from lendsafe.explain.verify.report import CheckResult
from lendsafe.explain.verify.text import stem, strip_citations, words


@lru_cache(maxsize=256)
def _reason_vocabulary(dataset: str, codes_features: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """Words the decision's own reasons may be described with: catalog statements and factor text,
    the spec's label, help, unit and level meanings, and the composer's phrase for the feature."""
    spec, catalog = load_spec(dataset), load_catalog()
    texts: list[str] = [MISSING_PHRASE]
    for code, name in codes_features:
        feature = spec.feature(name)
        texts += [*catalog[code].statements(), catalog[code].factor, feature.label, feature.help, feature.unit,
                  FEATURE_PHRASES.get(name, ""), *[p for ps in feature.level_markers().values() for p in ps]]
        texts += [f.label for f in spec.features if f.name in feature.derived]
    return frozenset(w for text in texts for w in words(text))


_CONNECTIVES = frozenset(stem(w) for w in CONNECTIVE_WORDS)


def unsupported_words(decision: Decision, text: str) -> list[str]:
    """Words that belong to no reason of this decision, no framing and no plain connective."""
    allowed = _CONNECTIVES | _reason_vocabulary(decision.dataset, tuple((r.code, r.feature) for r in decision.reasons))
    allowed |= {stem(w) for w in words(product_word(decision))}
    prose = " ".join(s for s in sentences(strip_citations(text)) if not LEGAL_CUES.search(s))
    return sorted({w for w in words(prose) if w not in allowed})


def check_open_world(decision: Decision, text: str) -> CheckResult:
    unknown = unsupported_words(decision, text)
    return CheckResult("only_decision_content", not unknown, f"words that state nothing of this decision: {unknown}"
                       if unknown else "every sentence is a reason of this decision or framing")
