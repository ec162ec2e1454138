"""Meaning: coded values described with their own level's words, missing values never stated as fact,
no reason described as favourable."""
from __future__ import annotations

import re
from functools import lru_cache

from lendsafe.decide.catalog import load_catalog
from lendsafe.decide.catalog import is_missing
from lendsafe.decide.datasets import with_derived
from lendsafe.decide.specs import builtin_dataset_names, FeatureSpec, load_spec
from lendsafe.decide.decision import Decision
from lendsafe.explain.grounding import prose
from lendsafe.explain.sentences import sentences, spelled_numbers
from lendsafe.explain.verify.patterns import NUMBER_RE
from lendsafe.explain.verify.report import CheckResult
from lendsafe.explain.verify.text import masked_citations, mentioned_factors, words


@lru_cache(maxsize=8)
def coded_features(dataset: str) -> tuple[FeatureSpec, ...]:
    return tuple(f for f in load_spec(dataset).features if f.is_coded)


@lru_cache(maxsize=8)
def _all_markers(dataset: str) -> tuple[str, ...]:
    phrases = {p for f in coded_features(dataset) for ps in f.level_markers().values() for p in ps}
    return tuple(sorted(phrases, key=len, reverse=True))


def masked_markers(text: str, dataset: str | None = None) -> str:
    """Level phrases blanked (so 'one or two slow payments' is a meaning, not a figure)."""
    datasets = (dataset,) if dataset else tuple(_known_datasets())
    for name in datasets:
        for phrase in _all_markers(name):
            text = re.sub(re.escape(phrase), lambda m: " " * len(m.group(0)), text, flags=re.IGNORECASE)
    return text


@lru_cache(maxsize=1)
def _known_datasets() -> tuple[str, ...]:
    return tuple(builtin_dataset_names())


def misdescribed_values(decision: Decision, text: str) -> list[str]:
    """Phrases that describe a coded factor (rating, yes/no, category) with a value the applicant does not have.

    Longest phrases are matched first and blanked, so 'serious delinquent payments ninety days past due'
    is one level's phrase and not also another's shorter one.
    """
    spec = load_spec(decision.dataset)
    values = with_derived(spec, decision.application)
    phrases = sorted(((p, f, level) for f in coded_features(spec.name) for level, ps in f.level_markers().items()
                      for p in ps), key=lambda item: -len(item[0]))
    masked, wrong = text, []
    for phrase, feature, level in phrases:
        for match in list(re.finditer(r"(?<!\w)" + re.escape(phrase), masked, re.IGNORECASE)):
            own = values.get(feature.name)
            if is_missing(own) or level != own:
                wrong.append(f"'{match.group(0)}' describes {feature.label.lower()} = {feature.display(level)}; "
                             f"the applicant's is {feature.display(own)}")
            masked = masked[:match.start()] + " " * len(match.group(0)) + masked[match.end():]
    return wrong


def check_meaning(decision: Decision, text: str) -> CheckResult:
    wrong = misdescribed_values(decision, prose(decision, text))
    return CheckResult("meaning_matches_value", not wrong, "; ".join(wrong) if wrong else
                       "every coded value described with its own meaning")


ABSENCE_RE = re.compile(r"absence|not (?:been )?(?:provided|stated|given|supplied)|did not (?:provide|state|give)|"
                        r"\bmissing\b|\bincomplete\b|unable to verify|no (?:\w+ )?(?:was|were) (?:stated|provided)",
                        re.IGNORECASE)


def missing_stated_as_fact(decision: Decision, text: str) -> list[str]:
    """Sentences that present a reason whose value is missing as a fact (a figure, or no word of absence)."""
    missing = {r.code for r in decision.reasons if is_missing(r.value)}
    catalog = load_catalog()
    problems = []
    for sentence in sentences(masked_citations(text)):
        codes = {code for _, code in mentioned_factors(sentence)} & missing
        for code in sorted(codes):
            value_statements = [s for s in (catalog[code].statement, *dict(catalog[code].by_feature).values())
                                if s.lower() in sentence.lower()]
            if value_statements or not ABSENCE_RE.search(sentence) or NUMBER_RE.search(spelled_numbers(sentence)):
                problems.append(f"{code}: '{sentence.strip()}'")
    return problems


def check_missing(decision: Decision, text: str) -> CheckResult:
    problems = missing_stated_as_fact(decision, text)
    return CheckResult("missing_not_fact", not problems, "missing value stated as fact: " + "; ".join(problems)
                       if problems else "no missing value stated as fact")


UP_WORDS = frozenset("high higher highest large larger excessive heavy long longer many more elevated big great".split())
DOWN_WORDS = frozenset("low lower lowest small smaller limited insufficient short shorter few little modest".split())
GOOD_WORDS = frozenset("good strong excellent healthy solid favourable favorable positive acceptable reasonable "
                       "manageable adequate clean perfect great impressive stable safe ideal fine".split())
DIRECTION_WINDOW = re.compile(r"\b(?:is|was|are|were|being|seems|looks)\s+(?:very\s+|quite\s+|relatively\s+|fairly\s+|"
                              r"rather\s+|too\s+)?([a-z]+)", re.IGNORECASE)


def favourable_descriptions(decision: Decision, text: str) -> list[str]:
    """A reason described as favourable: 'your low debt-to-income ratio', 'income is high', 'good history'."""
    spec = load_spec(decision.dataset)
    direction = {r.code: spec.feature(r.feature).monotone for r in decision.reasons}
    problems = []
    for sentence in sentences(text):
        found = mentioned_factors(sentence)
        if not found:
            continue
        problems += [f"'{w}' in '{sentence.strip()}'" for w in words(sentence) if w in GOOD_WORDS]
        for at, code in found:
            favourable = {1: DOWN_WORDS, -1: UP_WORDS}.get(direction.get(code, 0), frozenset())
            before = words(sentence[max(0, at - 30):at])[-2:]
            after = DIRECTION_WINDOW.findall(sentence[at:at + 90])
            problems += [f"'{w}' describes {code} as favourable" for w in (*before, *after[:1]) if w.lower() in favourable]
    return problems


def check_direction(decision: Decision, text: str) -> CheckResult:
    problems = favourable_descriptions(decision, text)
    return CheckResult("adverse_direction", not problems, "; ".join(problems) if problems else
                       "every reason described in its adverse direction")
