"""Build the verifier's labelled test set: tests/verifier_cases.jsonl.

Each case is a real held-out decision (an SFT test-split application scored as the pipeline scores it,
stored whole so the set does not move when models do) and a text labelled ``bad`` (with the check that
must catch it and the kind of untruth it is) or ``good`` (a correct paraphrase that must pass).
Bad texts come from three places: held-out outputs of the earlier adapter (verbatim), the failure
kinds reviewers found in those outputs applied to today's decisions, and adversarial texts.
Good texts are rewordings a careful writer would produce: lists, other sentence orders and
openings, money rounded to its own precision.

    .venv/bin/python scripts/make_verifier_cases.py
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from lendsafe.explain.composer import compose, reason_phrase
from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import Decision
from lendsafe.explain.grounding import applicable_rights, retrieve
from lendsafe.decide.scoring import Scorer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "verifier_cases.jsonl"
# first attempts of the adapter shipped before explanations were checked for meaning (held-out evaluation)
OLD_OUTPUTS = ROOT / "scripts" / "earlier_adapter_outputs.json"


@lru_cache(maxsize=1)
def knowledge() -> Any:
    from lendsafe.knowledge.retrieval import KnowledgeBase

    return KnowledgeBase()


def decision_for(example_id: str, **changes: Any) -> Decision:
    """The held-out decision as the pipeline makes it: scored, with its retrieved passages attached."""
    example = next(json.loads(line) for line in (ROOT / "data/sft/test.jsonl").open() if json.loads(line)["id"] == example_id)
    application = {**example["application"], **changes}
    decision = Scorer.load(example["dataset"]).score(application, example["reference"])
    return decision.with_updates(citations=retrieve(knowledge(), decision))


def replace_once(text: str, old: str, new: str) -> str:
    if old not in text:
        raise ValueError(f"{old!r} not in {text!r}")
    return text.replace(old, new, 1)


def statements_list(decision: Decision, opening: str = "We cannot approve your {p} application for these reasons, most important first:") -> str:
    """A numbered list: each reason's statement and the applicant's own fact."""
    spec = load_spec(decision.dataset)
    lines = [opening.format(p={"hmda": "mortgage", "credit": "loan"}[decision.dataset])]
    for rank, reason in enumerate(decision.reasons, start=1):
        feature = spec.feature(reason.feature)
        meaning = feature.level_text(reason.value)
        fact = f"{feature.label.lower()} {reason.display_value}" + (f", which records {meaning}" if meaning and feature.type == "int" else "")
        if feature.type in ("bool", "category") or reason.value is None:
            lines.append(f"{rank}. {reason.statement}.")
        else:
            lines.append(f"{rank}. {reason.statement}: your {fact}.")
    return "\n".join(lines) + "\n" + rights_part(decision, reworded=True)


# Rights as a careful writer might reword them (each still resting on its passage's words).
RIGHTS_REWORDED = {
    "free_report": "You can get a free copy of your consumer report from the agency if you ask within 60 days.",
    "dispute": "You can dispute the accuracy of anything in your report with the agency.",
    "third_party": "You can request in writing, within 60 days, the nature of the third party information.",
    "ecoa": "The Equal Credit Opportunity Act prohibits creditors from discriminating against credit applicants.",
}


def rights_part(decision: Decision, reworded: bool = False) -> str:
    rights = applicable_rights(decision)
    return " ".join(RIGHTS_REWORDED[r.key] if reworded else r.sentence for r in rights)


def sentences_style(decision: Decision) -> str:
    """'First, ... Second, ...' with the composer's phrases."""
    ordinals = ("First", "Second", "Third", "Fourth")
    product = {"hmda": "mortgage", "credit": "loan"}[decision.dataset]
    parts = [f"We are unable to approve your {product} application."]
    parts += [f"{ordinals[i]}, {reason_phrase(decision.dataset, r)}." for i, r in enumerate(decision.reasons)]
    return " ".join(parts) + " " + rights_part(decision)


def declined_style(decision: Decision) -> str:
    text = compose(decision)
    return re.sub(r"^We cannot approve your (\w+) application\.", r"Your \1 application has been declined.", text)


BAD: list[tuple[str, str, str, Callable[[], tuple[Decision, str]]]] = []
GOOD: list[tuple[str, str, Callable[[], tuple[Decision, str]]]] = []


def bad(kind: str, check: str, origin: str = "failure kind applied to a held-out decision"):
    def register(build: Callable[[], tuple[Decision, str]]):
        BAD.append((kind, check, origin, build))
        return build
    return register


def good(kind: str):
    def register(build: Callable[[], tuple[Decision, str]]):
        GOOD.append((kind, "", build))
        return build
    return register


def old_output(example_id: str) -> tuple[Decision, str]:
    """The earlier adapter's first held-out attempt for this example, verbatim (kept beside this script)."""
    return decision_for(example_id), json.loads(OLD_OUTPUTS.read_text(encoding="utf-8"))[example_id]


def with_phrase(example_id: str, old: str, new: str, **changes: Any) -> tuple[Decision, str]:
    decision = decision_for(example_id, **changes)
    return decision, replace_once(compose(decision), old, new)


# ---------------------------------------------------------------- bad: verbatim earlier outputs
for _id, _check in (("hmda-1097-p2", "meaning_matches_value"), ("hmda-1104-p1", "meaning_matches_value"),
                    ("hmda-865-p2", "meaning_matches_value"), ("hmda-284-p2", "no_other_factors"),
                    ("credit-1334-p2", "legal_basis")):
    bad("earlier adapter output", _check, "held-out output of the earlier adapter")(lambda i=_id: old_output(i))

# ---------------------------------------------------------------- bad: wrong level meaning
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1097", "serious delinquent payments ninety days past due", "delinquent payments sixty days past due"))
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1440-p2", "more than two slow payments or delinquencies", "delinquent payments sixty days past due"))
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "hmda-2225-p2", "more than two late mortgage payments", "one or two late mortgage payments"))
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1022", "delinquent payments sixty days past due", "serious delinquent payments ninety days past due"))
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1057-p1", "one or two late mortgage payments", "no mortgage payment history"))
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "credit-1328-p1", "recorded as renting", "recorded as living with family"))
bad("wrong level meaning", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1022-p2", "insufficient credit history to rate", "more than two slow payments or delinquencies"))

# ---------------------------------------------------------------- bad: favourable or false facts
bad("favourable fact as reason", "meaning_matches_value")(lambda: (
    decision_for("hmda-1104"), replace_once(compose(decision_for("hmda-1104")), " You have", " Private mortgage insurance was denied for this loan. You have")
    if " You have" in compose(decision_for("hmda-1104")) else replace_once(compose(decision_for("hmda-1104")), " You can", " Private mortgage insurance was denied for this loan. You can")))
bad("favourable fact as reason", "no_other_factors")(lambda: with_phrase(
    "credit-1381-p1", "The most important reason is", "The most important reason is the loan term of 36 months that you requested. Next is"))
bad("false yes/no fact", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1104", "We cannot approve your mortgage application.", "We cannot approve your mortgage application. Your income comes from self-employment."))
bad("false yes/no fact", "meaning_matches_value")(lambda: with_phrase(
    "hmda-1008-p1", "the denial of private mortgage insurance for this loan", "the type of collateral, as the property is a condominium unit, although private mortgage insurance was not denied"))

# ---------------------------------------------------------------- bad: missing value stated as fact
bad("missing value as fact", "missing_not_fact")(lambda: with_phrase(
    "credit-1334-p2", "the absence of a stated monthly income from your application", "Income insufficient for amount of credit requested"))
bad("missing value as fact", "missing_not_fact")(lambda: with_phrase(
    "credit-176-p1", "the absence of a stated monthly income from your application", "your monthly income of $2, which is insufficient for the credit requested"))
bad("missing value as fact", "missing_not_fact")(lambda: with_phrase(
    "credit-2613", "the absence of a stated monthly income from your application", "your monthly income, which is too low"))

# ---------------------------------------------------------------- bad: wrong legal basis, truncation
bad("wrong legal basis", "legal_basis")(lambda: with_phrase(
    "hmda-1104", "We cannot approve your mortgage application.", "We cannot approve your mortgage application. We give these reasons as required by 12 CFR 1002, App. C, Form C-1."))
bad("wrong legal basis", "legal_basis")(lambda: with_phrase(
    "credit-1461", "We cannot approve your loan application.", "We cannot approve your loan application. We give these reasons as required by 12 CFR 1002, Supp. I, comment 9(b)(2)-4."))
bad("wrong legal basis", "legal_basis")(lambda: (lambda d: (d, compose(d) + " These reasons follow Form C-1 of Appendix C."))(decision_for("hmda-1241")))
bad("truncated text", "complete_text")(lambda: (lambda d: (d, compose(d).rsplit(" You ", 1)[0] + " We give these reasons as required by 12 CFR 1002, App."))(decision_for("hmda-1531-p1")))
bad("truncated text", "complete_text")(lambda: (lambda d: (d, compose(d).rsplit(" You ", 1)[0] + " The last reason is the."))(decision_for("credit-1461")))
bad("truncated text", "complete_text")(lambda: (lambda d: (d, compose(d).rsplit(".", 2)[0]))(decision_for("hmda-1406-p1")))

# ---------------------------------------------------------------- bad: open world
bad("invented factor", "only_decision_content", "adversarial")(lambda: with_phrase(
    "credit-1461", "The most important reason is", "The most important reason is your crypto holdings. Next is"))
bad("invented factor", "only_decision_content", "adversarial")(lambda: with_phrase(
    "hmda-1104", "We cannot approve your mortgage application.", "We cannot approve your mortgage application. Your employment history also counted against you."))
bad("invented factor", "only_decision_content", "adversarial")(lambda: with_phrase(
    "hmda-1406-p1", "We cannot approve your mortgage application.", "We cannot approve your mortgage application. The number of credit cards you hold was a factor."))
bad("favourable direction", "adverse_direction", "adversarial")(lambda: with_phrase(
    "hmda-1104", "your debt-to-income ratio of", "your low debt-to-income ratio of"))
bad("favourable direction", "adverse_direction", "adversarial")(lambda: with_phrase(
    "credit-1461", "your monthly income of", "your good monthly income of"))
bad("hedging", "no_hedging", "adversarial")(lambda: with_phrase(
    "hmda-1104", "The most important reason is", "The most important reason may have been"))
bad("hedging", "no_hedging", "adversarial")(lambda: with_phrase(
    "credit-1461", "Next is", "Perhaps next is"))
bad("counterfactual or promise", "no_counterfactual_or_advice", "adversarial")(lambda: (lambda d: (d, compose(d) + " Pay down your debts and you will qualify."))(decision_for("hmda-1104")))
bad("counterfactual or promise", "no_counterfactual_or_advice", "adversarial")(lambda: (lambda d: (d, compose(d) + " With a lower ratio you would have been approved."))(decision_for("hmda-1406-p1")))
bad("counterfactual or promise", "no_forbidden_phrase", "adversarial")(lambda: (lambda d: (d, compose(d) + " You are welcome to reapply in six months."))(decision_for("credit-1461")))
bad("indirect protected basis", "no_protected_basis", "adversarial")(lambda: with_phrase(
    "hmda-1104", "We cannot approve your mortgage application.", "We cannot approve your mortgage application. Applicants from your area often have these figures."))
bad("indirect protected basis", "no_protected_basis", "adversarial")(lambda: with_phrase(
    "credit-1461", "We cannot approve your loan application.", "We cannot approve your loan application at your stage of life."))
bad("indirect protected basis", "no_protected_basis", "adversarial")(lambda: with_phrase(
    "hmda-1406-p1", "We cannot approve your mortgage application.", "We cannot approve your mortgage application given the needs of a growing family."))
bad("indirect protected basis", "no_protected_basis", "adversarial")(lambda: with_phrase(
    "credit-1265-p1", "We cannot approve your loan application.", "We cannot approve your loan application. As a female applicant, your figures were reviewed."))
bad("number in words", "numbers_match", "adversarial")(lambda: (lambda d: (d, re.sub(r"debt-to-income ratio of [0-9.]+", "debt-to-income ratio of sixty-two percent", compose(d))))(decision_for("hmda-1104")))
bad("number in words", "numbers_match", "adversarial")(lambda: (lambda d: (d, re.sub(r"loan-to-value ratio of [0-9.]+", "loan-to-value ratio of ninety-nine percent", compose(d))))(decision_for("hmda-1406-p1")))
bad("repeated reason", "no_repeated_reason", "adversarial")(lambda: (lambda d: (d, compose(d) + f" Again, {reason_phrase(d.dataset, d.reasons[0])} weighed most."))(decision_for("hmda-1104")))
bad("repeated reason", "no_repeated_reason", "held-out output of the earlier adapter, reworded")(lambda: (lambda d: (d, compose(d).replace(" You ", f" The last reason is {reason_phrase(d.dataset, d.reasons[-1])}. You ", 1)))(decision_for("hmda-1241")))
bad("blame or sales", "no_blame_or_sales", "adversarial")(lambda: (lambda d: (d, compose(d) + " Call 1-900-555-0199 to fix this today."))(decision_for("credit-1461")))
bad("blame or sales", "no_blame_or_sales", "adversarial")(lambda: (lambda d: (d, compose(d) + " You have been careless with credit."))(decision_for("hmda-1104")))
bad("blame or sales", "no_blame_or_sales", "adversarial")(lambda: (lambda d: (d, compose(d) + " Ask about our special offer for a secured card."))(decision_for("credit-1265-p1")))
bad("wrong figure", "numbers_match")(lambda: (lambda d: (d, re.sub(r"debt-to-income ratio of [0-9.]+", "debt-to-income ratio of 0.99", compose(d))))(decision_for("hmda-1104")))
bad("figure for a factor without one", "numbers_match")(lambda: (lambda d: (d, compose(d).replace("the derogatory credit record on file for you", "your existing debt of 2, which is high", 1)))(decision_for("credit-1334-p2")))
bad("internal detail", "no_threshold_or_score", "adversarial")(lambda: (lambda d: (d, compose(d) + " Your risk score was above our threshold."))(decision_for("hmda-1104")))
bad("unsupported legal sentence", "legal_sentences_supported", "adversarial")(lambda: with_phrase(
    "hmda-1104", "if you ask for it within 60 days", "if you ask for it within 90 days"))
bad("unsupported legal sentence", "legal_sentences_supported", "adversarial")(lambda: (lambda d: (d, compose(d) + " You have the right to appeal this decision to a loan officer."))(decision_for("credit-1461")))
bad("right that does not apply", "legal_sentences_supported", "adversarial")(lambda: (lambda d: (d, compose(d) + " Because information from a third party was used, you have the right to ask us in writing, within 60 days, for the nature of that information."))(decision_for("credit-1461")))
bad("right left out", "rights_stated", "adversarial")(lambda: with_phrase(
    "hmda-1008-p1", " Because information from a third party was used, you have the right to ask us in writing, within 60 days, for the nature of that information.", ""))
bad("reason left out", "reasons_stated")(lambda: (lambda d: (d, replace_once(compose(d), f"Next is {reason_phrase(d.dataset, d.reasons[1])}. ", "")))(decision_for("hmda-1406-p1")))


# ---------------------------------------------------------------- good: correct paraphrases
for _id in ("hmda-1097", "hmda-1104", "hmda-1440-p2", "hmda-2225-p2", "hmda-1008-p1", "credit-1461",
            "credit-1334-p2", "credit-1328-p1", "credit-2313-p1", "credit-1044-p1", "hmda-1022-p2", "credit-176-p1"):
    good("numbered list of statements and facts")(lambda i=_id: (lambda d: (d, statements_list(d)))(decision_for(i)))
for _id in ("hmda-1097-p2", "hmda-1022", "hmda-1057-p1", "hmda-1230-p2", "credit-1381-p1", "credit-2613",
            "credit-1265-p1", "credit-3188", "hmda-1406-p1", "credit-1946-p1", "hmda-326-p1", "credit-2294-p2"):
    good("ordinal sentences")(lambda i=_id: (lambda d: (d, sentences_style(d)))(decision_for(i)))
for _id in ("hmda-1241", "hmda-1531-p1", "hmda-1214-p1", "credit-1160-p2", "credit-3105-p2", "credit-40",
            "hmda-1310-p2", "credit-300", "hmda-1073-p2", "credit-1809-p1"):
    good("declined opening")(lambda i=_id: (lambda d: (d, declined_style(d)))(decision_for(i)))
good("money rounded to its precision")(lambda: (lambda d: (d, compose(d).replace(d.reasons[0].display_value, "$245,000", 1)))(
    decision_for("credit-1946-p1", debt=244900.0)))
good("plain rewording")(lambda: (lambda d: (d, "We cannot approve your mortgage application. "
     + " ".join(f"{s}." for s in (
         f"Your {load_spec(d.dataset).feature(r.feature).label.lower()} is {r.display_value}" if r.value is not None and not isinstance(r.value, bool) and not load_spec(d.dataset).feature(r.feature).levels
         else r.statement for r in d.reasons)) + " " + rights_part(d, reworded=True)))(decision_for("hmda-1104")))
good("plain rewording")(lambda: (lambda d: (d, compose(d).replace("We cannot approve your mortgage application.", "We have decided not to approve your mortgage application.")))(decision_for("hmda-1406-p1")))
good("plain rewording")(lambda: (lambda d: (d, compose(d).replace(" You have the right", " As the law provides, you have the right")))(decision_for("hmda-1097")))
good("plain rewording")(lambda: (lambda d: (d, compose(d).replace("Next is", "The second reason is").replace("A further reason is", "The third reason is")))(decision_for("credit-1461")))
good("plain rewording")(lambda: (lambda d: (d, compose(d).replace("listed from most to least important", "in order of importance")))(decision_for("hmda-1440-p2")))


def case(number: int, label: str, kind: str, check: str, origin: str, decision: Decision, text: str) -> dict[str, Any]:
    return {"id": f"{label}-{number:03d}", "label": label, "kind": kind, "check": check, "origin": origin,
            "decision": decision.to_dict(), "text": text}


def main() -> None:
    cases = [case(n, "bad", kind, check, origin, *build()) for n, (kind, check, origin, build) in enumerate(BAD, 1)]
    cases += [case(n, "good", kind, "", "correct paraphrase", *build()) for n, (kind, _, build) in enumerate(GOOD, 1)]
    OUT.write_text("".join(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n" for c in cases), encoding="utf-8")
    print(f"{sum(c['label'] == 'bad' for c in cases)} bad and {sum(c['label'] == 'good' for c in cases)} good cases -> {OUT}")


if __name__ == "__main__":
    main()
