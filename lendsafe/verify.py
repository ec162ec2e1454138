"""Truth checks on an explanation: a structured report (check -> pass/fail + detail), never a bool.

The verifier proves that a text states only the decision's true reasons, in order, with the applicant's
true figures *and their true meaning*: a coded value is described with its own level's words (the spec's
``levels`` and ``markers``), a yes/no fact is true of the applicant, a missing value is never stated as a
fact, no reason is presented as favourable. It is open-world: every sentence must be made of the
decision's own reasons, the framing a notice needs and plain connective words; anything else (an
invented factor, advice, hedging, a promise, an indirect protected basis, sales talk) fails. It also
rejects applicant-facing citations to sample forms or commentary and texts that end mid-sentence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from lendsafe.composer import FEATURE_PHRASES, MISSING_PHRASE
from lendsafe.datasets import FeatureSpec, builtin_dataset_names, is_missing, load_spec, with_derived
from lendsafe.decision import Decision
from lendsafe.grounding import LEGAL_CUES, applicable_rights, grounding, prose
from lendsafe.prompts import product_word
from lendsafe.reasons import load_catalog
from lendsafe.sentences import sentences, spelled_numbers, without_list_markers

# Phrases that show a factor is being presented, per reason code (catalog statements are added too).
REASON_PATTERNS: dict[str, tuple[str, ...]] = {
    "DEBT_TO_INCOME": (r"debt[- ]to[- ]income", r"obligations (?:that are )?(?:high |large )?(?:in relation|compared) (?:to|with) (?:your )?income"),
    "HOUSING_EXPENSE_TO_INCOME": (r"housing[- ]expense", r"housing costs?"),
    "LOAN_TO_VALUE": (r"loan[- ]to[- ](?:value|price)", r"value of (?:the )?(?:collateral|property)",
                      r"price of the item financed"),
    "CONSUMER_CREDIT_HISTORY": (r"consumer credit (?:history|payment|accounts?)", r"credit obligations with others",
                                r"limited credit experience: insufficient consumer"),
    "MORTGAGE_PAYMENT_HISTORY": (r"mortgage (?:credit|payment) history", r"late (?:payments on (?:past or present )?)?mortgage"),
    "PUBLIC_RECORD": (r"public record", r"bankruptcy", r"derogatory (?:credit )?record", r"public bad credit"),
    "MORTGAGE_INSURANCE_DENIED": (r"mortgage insurance",),
    "SELF_EMPLOYMENT": (r"self[- ]employ\w*", r"type of (?:your )?employment"),
    "PROPERTY_TYPE": (r"condominium", r"type of collateral"),
    "LENGTH_OF_EMPLOYMENT": (r"length of (?:your )?employment", r"(?:years?|time) with your (?:current )?employer"),
    "RESIDENCE_STATUS": (r"type of residence", r"housing status", r"housing type", r"type of housing"),
    "LOAN_TERM": (r"loan term", r"term of the loan", r"repayment term"),
    "HOUSEHOLD_EXPENSES": (r"household expenses", r"monthly expenses"),
    "INCOME_INSUFFICIENT": (r"monthly income", r"stated income", r"income (?:is )?insufficient",
                            r"stated monthly income"),
    "ASSETS": (r"\bassets\b",),
    "EXISTING_DEBT": (r"existing debt", r"outstanding debt", r"debt information"),
    "AMOUNT_REQUESTED": (r"size of the loan", r"amount of credit requested", r"loan amount"),
}
# Protected bases of 12 CFR 1002.2(z) and 1002.6(b), their direct words and the indirect ways texts name them.
PROTECTED_PATTERNS = (
    r"\brace\b", r"\bracial", r"\bcolou?r\b", r"\breligio", r"\bchurch", r"\bmosque", r"\bsynagogue", r"\bfaith\b",
    r"national origin", r"\bethnic", r"\bimmigra", r"\bcitizenship", r"\bforeign", r"\baccent\b", r"\bnative\b",
    r"\bsex\b", r"\bgender", r"\bfemale", r"\bmale\b", r"\bwom[ae]n\b", r"\bman\b", r"\bmen\b", r"\bmother",
    r"\bfather", r"\bhusband", r"\bwife\b", r"marital", r"\bmarried", r"\bunmarried", r"\bsingle\b", r"\bdivorc",
    r"\bwidow", r"\bspouse", r"\bpartner\b", r"\bage\b", r"\baged\b", r"years old", r"\belderly", r"\bsenior",
    r"\byoung", r"\bolder\b", r"\bretire", r"stage of (?:your )?life", r"\bgeneration", r"public assistance",
    r"\bwelfare\b", r"food stamps", r"\bbenefits\b", r"\bpregnan", r"childbear", r"\bchild", r"\bkids?\b",
    r"growing family", r"family size", r"start(?:ing)? a family", r"\bmaternity", r"\bdisab", r"\bhandicap",
    r"african", r"\bblack\b", r"\bwhite\b", r"\basian", r"hispanic", r"\blatin[oa]", r"\bneighbou?rhood",
    r"zip code", r"postal code", r"your area\b", r"where you live", r"your community", r"\beducation",
    r"high school", r"telephone listing", r"phone listing", r"part-time income", r"\balimony", r"child support",
    r"consumer credit protection act",
)
# Promises: never in a notice, neither in the explanation nor in the notice's own wording.
FORBIDDEN_PATTERNS = (
    r"re-?apply", r"apply again", r"guarantee", r"pre-?approved", r"reconsider", r"promise", r"\bassured\b",
    r"will (?:surely |certainly |then |likely )?(?:be approved|qualify|get approved)", r"you will be approved",
    r"approval is assured",
)
# Counterfactuals and advice: an explanation states reasons; it does not predict or coach another decision.
COUNTERFACTUAL_PATTERNS = (
    r"would (?:have )?(?:been )?approved", r"would (?:then )?qualify", r"could (?:have )?(?:been )?approved",
    r"\bqualify\b", r"\beligible\b", r"\bif you\b", r"\bhad you\b", r"\bwere you to\b", r"\bonce you\b",
    r"\bas soon as\b", r"next time", r"in the future", r"\bpay (?:down|off)\b", r"you should",
    r"\bwe (?:recommend|suggest|advise|encourage)", r"\bconsider (?:paying|reducing|improving|lowering|raising)",
    r"\bimprov", r"\btry (?:again|to)\b", r"your chances", r"\bwould have\b", r"you will\b", r"\bunless\b",
)
HEDGING_PATTERNS = (
    r"\bmay\b", r"\bmight\b", r"\bpossibl", r"\bperhaps\b", r"\blikely\b", r"\bprobabl", r"\bcould have\b",
    r"\bseems?\b", r"\bappears? to\b", r"\bwe (?:think|believe|feel|suspect)\b", r"\bsomewhat\b", r"\bmaybe\b",
    r"\bpresumably\b", r"\bit is possible\b", r"\bto some extent\b", r"\bsort of\b", r"\bkind of\b",
)
BLAME_AND_SALES_PATTERNS = (
    r"your fault", r"\birresponsib", r"\bcareless", r"\breckless", r"poor choices", r"\bmismanag", r"should have",
    r"\byou failed\b", r"\blazy\b", r"bad with money", r"special offer", r"limited time", r"\bcall\b", r"act now",
    r"\bupgrade", r"\bpremium\b", r"\bexclusive\b", r"don'?t miss", r"sign up", r"credit repair", r"fix (?:your|this)",
    r"\btoday\b", r"\boffer\b", r"\bdeal\b", r"\bvisit\b", r"www\.", r"https?:", r"\b1-\d{3}-\d{3}-\d{4}\b",
    r"\(\d{3}\)\s*\d{3}", r"\b\d{3}-\d{3}-\d{4}\b", r"\bhurry\b", r"\bbonus\b", r"\bdiscount",
)
# Names of the system's own parts: never in anything the applicant reads.
MODEL_NAME_PATTERNS = (r"\blora\b", r"adapter", r"smollm", r"granite", r"xgboost", r"\bshap\b", r"log-?odds",
                       r"treeshap", r"machine learning", r"\balgorithm", r"lendsafe")
INTERNAL_PATTERNS = (r"threshold", r"cut-?off", r"\bscore", r"probabilit", r"\brisk\b", r"\bmodel\b",
                     r"contribution", r"\bai\b", *MODEL_NAME_PATTERNS)
DENIAL_PATTERNS = (r"cannot approve", r"can ?not approve", r"unable to approve", r"not (?:been )?approved",
                   r"not to approve", r"not able to approve",
                   r"\bdenied\b", r"\bdecline", r"\bdeny\b", r"could not approve")
APPROVAL_PATTERNS = (r"pleased to approve", r"\bapproved\b", r"approve your")
# Sample forms and commentary show what a notice may look like; they are not what requires it.
LEGAL_BASIS_PATTERNS = (r"\bApp(?:\.|endix)\s*C\b", r"\bForm\s*C-\d", r"\bSupp(?:\.|lement)\s*I\b",
                        r"\bcomment\s+\d+\(", r"official interpretation", r"\bas required by\b")
CITATION_RE = re.compile(
    r"(?:12|15)\s+(?:CFR|C\.F\.R\.|U\.S\.C\.|USC)\s+§*\s*\d+(?:\.\d+[a-z]?)?(?:\([a-zA-Z0-9]+\))*"
    r"(?:,\s*(?:App\.|Appendix|Supp\.|Supplement)\s*[A-Z]*\b(?:,\s*(?:Form\s*C-\d+|comment\s*[\w()]+-\d+))?)?"
    r"|comment\s+\d+\([a-z]\)(?:\(\d+\))*-\d+|§+\s*\d+(?:\.\d+)?(?:\([a-z0-9]+\))*",
    re.IGNORECASE)
NUMBER_RE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?%?")
LIMITS = {"deny": (25, 300), "approve": (8, 120)}
MAX_SENTENCE_WORDS = 50
MAX_MEAN_SENTENCE_WORDS = 32
UNFINISHED_ENDINGS = {"app", "supp", "no", "form", "comment", "cfr", "u.s.c", "usc", "by", "to", "of", "the", "a",
                      "an", "and", "or", "with", "for", "in", "on", "as", "is", "are", "your", "our", "e.g", "i.e",
                      "etc", "which", "that", "because", "than"}
MONEY_RELATIVE_TOLERANCE = 0.005     # "$245,000" for 244,900: rounded to the figure's own precision

# Words any notice paragraph may use: function words, the framing of a decision, ordering, plain links.
CONNECTIVE_WORDS = frozenset("""
a an the this that these those it its is are was were be been being has have had do does did not no
of in on at to for from by with as and or but than then so also both each all any other others
we our us you your yours their there here which who whom whose what when where why how
because due since given while whereas although though after before about against between into over under
most more least less main key chief primary principal first second third fourth last final next further
another additional additionally reason reasons factor factors important importance order listed list below
above following follows follow decision decided decide application applied applying apply request requested
cannot can could unable able approve approved approval deny denied decline declined declining credit
mortgage loan weighed weigh weighs counted count led lead leads contributed contribute contributes played
role part considered consider review reviewed reviewing explain explanation notice paragraph
pleased terms described document documents accompany accompanying letter thank
right rights dispute disputing inaccurate incomplete information report reporting contact question questions
regarding concerning relating related about shows show showed shown means mean meant indicates indicate
record records recorded recording level levels high higher too much many large larger very excessive
compared comparison relation relative relatively ratio value figure figures amount amounts total
sufficient sufficiently insufficient little less low lower limited short shorter long longer small smaller
stated state states provided provide absence absent missing given give gave
one two three four it law federal under act provides
""".split())


def _stem(word: str) -> str:
    """Crude plural folding, applied alike to the text and to every vocabulary."""
    word = re.sub(r"'s$", "", word.lower().strip("'"))
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in re.findall(r"[A-Za-z][A-Za-z']*", text)]


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class VerificationReport:
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [c.check for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures,
                "checks": {c.check: {"passed": c.passed, "detail": c.detail} for c in self.checks}}


def _find(patterns: tuple[str, ...], text: str) -> list[str]:
    return [m.group(0) for p in patterns for m in re.finditer(p, text, re.IGNORECASE)]


# ---------------------------------------------------------------------------- text preparation

def strip_citations(text: str) -> str:
    return CITATION_RE.sub(" ", text)


def cited_sections(text: str) -> list[str]:
    return [m.group(0).strip() for m in CITATION_RE.finditer(text)]


def _masked_citations(text: str) -> str:
    """The text with citations blanked out, positions kept."""
    return CITATION_RE.sub(lambda m: " " * len(m.group(0)), text)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    starts = [0] + [m.end() for m in re.finditer(r"[.!?]\s+", text)]
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends))


# ---------------------------------------------------------------------------- factors

@lru_cache(maxsize=1024)
def mentioned_factors(text: str) -> tuple[tuple[int, str], ...]:
    """(position, code) of every factor the text presents, full catalog statements matched first."""
    masked, found = text, []
    for code, statement in _statement_patterns():
        for match in re.finditer(re.escape(statement), masked, re.IGNORECASE):
            found.append((match.start(), code))
            masked = masked[:match.start()] + " " * len(match.group(0)) + masked[match.end():]
    for code, patterns in REASON_PATTERNS.items():
        for pattern in patterns:
            found += [(m.start(), code) for m in re.finditer(pattern, masked, re.IGNORECASE)]
    return tuple(sorted(found))


@lru_cache(maxsize=1)
def _statement_patterns() -> tuple[tuple[str, str], ...]:
    pairs = [(code, s) for code, entry in load_catalog().items() for s in entry.statements()]
    return tuple(sorted(pairs, key=lambda pair: -len(pair[1])))


def check_reasons_stated(decision: Decision, text: str) -> CheckResult:
    found = {code for _, code in mentioned_factors(text)}
    missing = [r.code for r in decision.reasons if r.code not in found]
    return CheckResult("reasons_stated", not missing, f"missing: {missing}" if missing else
                       f"all {len(decision.reasons)} principal reasons stated")


def check_no_other_factors(decision: Decision, text: str) -> CheckResult:
    allowed = {r.code for r in decision.reasons}
    extra = sorted({code for _, code in mentioned_factors(text)} - allowed)
    return CheckResult("no_other_factors", not extra, f"not principal reasons: {extra}" if extra else
                       "no other factor presented")


def check_reason_order(decision: Decision, text: str) -> CheckResult:
    first_seen: dict[str, int] = {}
    for position, code in mentioned_factors(text):
        first_seen.setdefault(code, position)
    order = [r.code for r in decision.reasons if r.code in first_seen]
    stated = sorted(order, key=first_seen.__getitem__)
    return CheckResult("reasons_in_order", stated == order, f"stated order {stated}; model order {order}")


def check_repeated_reason(decision: Decision, text: str) -> CheckResult:
    """Each reason is stated once: the same factor presented in two sentences reads as two reasons."""
    counts: dict[str, int] = {}
    for sentence in sentences(text):
        for code in {code for _, code in mentioned_factors(sentence)}:
            counts[code] = counts.get(code, 0) + 1
    repeated = sorted(code for code, n in counts.items() if n > 1)
    return CheckResult("no_repeated_reason", not repeated, f"stated in more than one sentence: {repeated}"
                       if repeated else "each reason stated once")


# ---------------------------------------------------------------------------- numbers

def numbers_by_reason(decision: Decision) -> dict[str, list[float]]:
    """Reason code -> the application's numeric values of the features behind it (missing ones left out)."""
    spec = load_spec(decision.dataset)
    application = with_derived(spec, decision.application)
    by_code: dict[str, list[float]] = {}
    for feature in spec.features:
        value = application.get(feature.name)
        by_code.setdefault(feature.reason or "", [])
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not is_missing(value):
            by_code[feature.reason or ""].append(float(value))
    return by_code


def allowed_numbers(decision: Decision) -> list[float]:
    """Figures the text may state: the application's own values (and derived ratios)."""
    values = [v for values in numbers_by_reason(decision).values() for v in values]
    if decision.application.get("loan_amount") is not None:
        values.append(float(decision.application["loan_amount"]))
    return values


def _money_close(target: float, values: list[float], decimals: int) -> bool:
    """A whole-dollar figure with trailing zeros may round the recorded amount to its own precision."""
    if decimals or target < 1000 or target % 10:
        return False
    zeros = len(str(int(target))) - len(str(int(target)).rstrip("0"))
    step = 10 ** zeros
    return any(round(v / step) * step == target and abs(v - target) <= MONEY_RELATIVE_TOLERANCE * v for v in values)


def _matches(written: str, values: list[float], money: bool = False) -> bool:
    percent = written.endswith("%")
    number = written.rstrip("%").replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    target = float(number)
    scale = 100.0 if percent else 1.0
    exact = any(_half_up(v * scale, decimals) == target or (percent and _half_up(v, decimals) == target)
                for v in values)
    return exact or (money and _money_close(target, values, decimals))


def _half_up(value: float, decimals: int) -> float:
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def _factor_before(factors: list[tuple[int, str]], sentence_start: int, position: int) -> str | None:
    """The factor named last before ``position`` within the same sentence, if any."""
    named = [code for at, code in factors if sentence_start <= at < position]
    return named[-1] if named else None


def _number_text(text: str) -> str:
    """The text as its figures are checked: list markers, citations and level phrases out, words as digits."""
    return spelled_numbers(_masked_markers(_masked_citations(without_list_markers(text))))


def wrong_numbers(decision: Decision, text: str) -> list[str]:
    """Figures that match no application value, or not the value of the factor they are written beside;
    a factor whose value is missing takes no figure at all."""
    masked = _number_text(prose(decision, text))          # a supported legal sentence's periods are its passage's
    factors, by_code, anywhere = mentioned_factors(masked), numbers_by_reason(decision), allowed_numbers(decision)
    money_codes = _money_codes(decision.dataset)
    wrong = []
    for match in NUMBER_RE.finditer(masked):
        written = match.group(0).rstrip(".,")
        start = max(s for s, _ in _sentence_spans(masked) if s <= match.start())
        code = _factor_before(list(factors), start, match.start())
        allowed = by_code.get(code, anywhere) if code else anywhere
        if not _matches(written, allowed, money=code in money_codes or masked[max(0, match.start() - 1)] == "$"):
            wrong.append(written)
    return wrong


@lru_cache(maxsize=8)
def _money_codes(dataset: str) -> frozenset[str]:
    return frozenset(f.reason for f in load_spec(dataset).features if f.unit == "$" and f.reason)


def check_numbers(decision: Decision, text: str) -> CheckResult:
    written = NUMBER_RE.findall(_number_text(prose(decision, text)))
    wrong = wrong_numbers(decision, text)
    return CheckResult("numbers_match", not wrong, f"not in the application: {wrong}" if wrong else
                       f"{len(written)} figure(s), all match the application")


# ---------------------------------------------------------------------------- meaning

@lru_cache(maxsize=8)
def _coded_features(dataset: str) -> tuple[FeatureSpec, ...]:
    return tuple(f for f in load_spec(dataset).features if f.is_coded)


@lru_cache(maxsize=8)
def _all_markers(dataset: str) -> tuple[str, ...]:
    phrases = {p for f in _coded_features(dataset) for ps in f.level_markers().values() for p in ps}
    return tuple(sorted(phrases, key=len, reverse=True))


def _masked_markers(text: str, dataset: str | None = None) -> str:
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
    phrases = sorted(((p, f, level) for f in _coded_features(spec.name) for level, ps in f.level_markers().items()
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
    for sentence in sentences(_masked_citations(text)):
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
        problems += [f"'{w}' in '{sentence.strip()}'" for w in _words(sentence) if w in GOOD_WORDS]
        for at, code in found:
            favourable = {1: DOWN_WORDS, -1: UP_WORDS}.get(direction.get(code, 0), frozenset())
            before = _words(sentence[max(0, at - 30):at])[-2:]
            after = DIRECTION_WINDOW.findall(sentence[at:at + 90])
            problems += [f"'{w}' describes {code} as favourable" for w in (*before, *after[:1]) if w.lower() in favourable]
    return problems


def check_direction(decision: Decision, text: str) -> CheckResult:
    problems = favourable_descriptions(decision, text)
    return CheckResult("adverse_direction", not problems, "; ".join(problems) if problems else
                       "every reason described in its adverse direction")


# ---------------------------------------------------------------------------- open world

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
    return frozenset(w for text in texts for w in _words(text))


_CONNECTIVES = frozenset(_stem(w) for w in CONNECTIVE_WORDS)


def unsupported_words(decision: Decision, text: str) -> list[str]:
    """Words that belong to no reason of this decision, no framing and no plain connective."""
    allowed = _CONNECTIVES | _reason_vocabulary(decision.dataset, tuple((r.code, r.feature) for r in decision.reasons))
    allowed |= {_stem(w) for w in _words(product_word(decision))}
    prose = " ".join(s for s in sentences(strip_citations(text)) if not LEGAL_CUES.search(s))
    return sorted({w for w in _words(prose) if w not in allowed})


def check_open_world(decision: Decision, text: str) -> CheckResult:
    unknown = unsupported_words(decision, text)
    return CheckResult("only_decision_content", not unknown, f"words that state nothing of this decision: {unknown}"
                       if unknown else "every sentence is a reason of this decision or framing")


# ---------------------------------------------------------------------------- forbidden content

def _pattern_check(name: str, patterns: tuple[str, ...], what: str, in_prose: bool = False) -> Any:
    """A check that fails on any pattern; ``in_prose`` leaves out legal sentences a passage supports."""
    def check(decision: Decision, text: str) -> CheckResult:
        hits = _find(patterns, strip_citations(prose(decision, text) if in_prose else text))
        return CheckResult(name, not hits, f"{what}: {hits}" if hits else "none found")
    check.__name__ = f"check_{name}"
    return check


check_protected = _pattern_check("no_protected_basis", PROTECTED_PATTERNS, "mentions")
check_forbidden = _pattern_check("no_forbidden_phrase", FORBIDDEN_PATTERNS, "promise")
check_counterfactual = _pattern_check("no_counterfactual_or_advice", COUNTERFACTUAL_PATTERNS,
                                      "counterfactual or advice", in_prose=True)
check_hedging = _pattern_check("no_hedging", HEDGING_PATTERNS, "hedged", in_prose=True)
check_blame = _pattern_check("no_blame_or_sales", BLAME_AND_SALES_PATTERNS, "blame or sales language")


def check_internal(decision: Decision, text: str) -> CheckResult:
    hits = _find(INTERNAL_PATTERNS, text)
    risk_numbers = {f"{decision.risk:.2f}", f"{decision.risk * 100:.0f}%", f"{decision.threshold:g}",
                    f"{decision.threshold * 100:.0f}%"}
    hits += [n for n in NUMBER_RE.findall(strip_citations(text)) if n in risk_numbers
             and not _matches(n, allowed_numbers(decision))]
    return CheckResult("no_threshold_or_score", not hits, f"reveals {hits}" if hits else "nothing internal")


def check_supported(decision: Decision, text: str) -> CheckResult:
    """Every legal or rights sentence rests on a retrieved passage that applies to the decision."""
    rows = grounding(decision, text)
    unsupported = [f"'{r['sentence']}' ({r['why_unsupported']})" for r in rows if not r["passage_id"]]
    return CheckResult("legal_sentences_supported", not unsupported, "; ".join(unsupported) if unsupported else
                       f"{len(rows)} legal sentence(s), each resting on a retrieved passage")


def check_rights_stated(decision: Decision, text: str) -> CheckResult:
    """A denial tells the applicant the rights that apply to it (each right's passage supports a sentence)."""
    grounded = {r["passage_id"] for r in grounding(decision, text) if r["passage_id"]}
    retrieved = {c.passage_id for c in decision.citations}
    missing = [right.key for right in applicable_rights(decision)
               if right.passage_id in retrieved and right.passage_id not in grounded]
    return CheckResult("rights_stated", not missing, f"rights that apply but are not stated: {missing}" if missing
                       else "every right that applies is stated")


def check_legal_basis(decision: Decision, text: str) -> CheckResult:
    hits = _find(LEGAL_BASIS_PATTERNS, text)
    return CheckResult("legal_basis", not hits, f"cites a sample form or commentary as the basis: {hits}" if hits
                       else "no sample form or commentary cited as the basis")


def check_decision_stated(decision: Decision, text: str) -> CheckResult:
    denial = bool(_find(DENIAL_PATTERNS, text))
    approval = bool(_find(APPROVAL_PATTERNS, text)) and not denial
    ok = denial if decision.denied else approval
    return CheckResult("decision_stated", ok, f"text reads as {'denial' if denial else 'approval' if approval else 'neither'}"
                       f"; decision is {decision.decision}")


# ---------------------------------------------------------------------------- form

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


CHECKS = (check_decision_stated, check_reasons_stated, check_no_other_factors, check_reason_order,
          check_repeated_reason, check_numbers, check_meaning, check_missing, check_direction, check_open_world,
          check_protected, check_forbidden, check_counterfactual, check_hedging, check_blame, check_internal, check_legal_basis,
          check_supported, check_rights_stated, check_complete, check_readability, check_citations)
# The checks whose failure means the text says something untrue of the applicant (the "meaning errors").
TRUTH_CHECKS = ("meaning_matches_value", "missing_not_fact", "adverse_direction", "no_other_factors",
                "numbers_match", "complete_text", "legal_basis", "legal_sentences_supported")


def verify(decision: Decision, text: str) -> VerificationReport:
    """Run every check on an explanation of ``decision``."""
    return VerificationReport(tuple(check(decision, text or "") for check in CHECKS))


def report_dict(report: VerificationReport) -> dict[str, Any]:
    return report.to_dict()


__all__ = ["CHECKS", "TRUTH_CHECKS", "CheckResult", "VerificationReport", "verify", "mentioned_factors",
           "FORBIDDEN_PATTERNS", "INTERNAL_PATTERNS", "MODEL_NAME_PATTERNS", "PROTECTED_PATTERNS"]
