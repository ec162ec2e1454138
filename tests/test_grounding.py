"""Grounding: the rights that apply to a decision, the passages they rest on, and the support check,
with a labelled set of supported and unsupported legal sentences."""
from __future__ import annotations

import json

import pytest

from lendsafe.explain.composer import compose
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.decision import Citation
from lendsafe.explain.grounding import (
    RIGHTS, applicable_rights, excerpt, grounding, information_sources, legal_sentences, prompt_passages,
    rights_sentences, support,
)
from lendsafe.knowledge.retrieval import load_corpus
from lendsafe.decide.scoring import Scorer
from lendsafe.explain.verify import verify

EXAMPLES = PROJECT_ROOT / "data" / "examples"
# The passages every context below has retrieved (fixed here, so the labelled set does not move with ranking).
RETRIEVED = ("fcra-615a", "fcra-615a-4", "fcra-615b", "fcra-612b", "fcra-611a-1", "reg-b-1002-9-b-1",
             "reg-b-1002-9-b-2", "ecoa-701d-2")


def citations(ids=RETRIEVED) -> tuple[Citation, ...]:
    corpus = {p.id: p for p in load_corpus(PROJECT_ROOT / "data" / "regulations")}
    return tuple(Citation(corpus[i].citation, corpus[i].title, corpus[i].text, 1.0, corpus[i].id) for i in ids)


@pytest.fixture(scope="module")
def third_party():
    """A mortgage denial resting partly on the private mortgage insurer's denial (FCRA 615(b) applies)."""
    application = json.loads((EXAMPLES / "hmda_denial.json").read_text())
    decision = Scorer.load("hmda").score({**application, "mortgage_insurance_denied": True})
    assert "MORTGAGE_INSURANCE_DENIED" in {r.code for r in decision.reasons}
    return decision.with_updates(citations=citations())


@pytest.fixture(scope="module")
def no_third_party():
    """A consumer-loan denial with no third-party information (615(b) does not apply)."""
    decision = Scorer.load("credit").score(json.loads((EXAMPLES / "credit_denial.json").read_text()))
    assert decision.denied and "third_party" not in information_sources(decision)
    return decision.with_updates(citations=citations())


SUPPORTED = [
    "You have the right to obtain a free copy of your consumer report from the agency if you ask for it within 60 days.",
    "You can obtain a free copy of your consumer report from the agency if you ask within 60 days.",
    "You can get a free copy of your consumer report from the agency if you ask for it within sixty days.",
    "You have the right to a free copy of your report from the consumer reporting agency within 60 days.",
    "You have the right to a free copy of the report within 60 days.",
    "You have the right to obtain a free copy of your consumer report.",
    "You also have the right to dispute with the agency the accuracy or completeness of anything in your report.",
    "You have the right to dispute inaccurate or incomplete information with the agency.",
    "You can dispute the accuracy of anything in your report with the agency.",
    "You have the right to dispute the completeness of your report with the agency.",
    "You may dispute inaccurate information in your report with the consumer reporting agency.",
    "You also have the right to dispute inaccurate or incomplete information in the report.",
    "Because information from a third party was used, you have the right to ask us in writing, within 60 days, "
    "for the nature of that information.",
    "You have the right to ask in writing, within 60 days, for the nature of the information from a third party.",
    "You can request in writing, within 60 days, the nature of the third party information.",
    "You have the right to ask us in writing for the nature of that information.",
    "Within 60 days you can ask in writing for the nature of the information from the third party.",
    "Federal law, the Equal Credit Opportunity Act, prohibits creditors from discriminating against credit applicants.",
    "The Equal Credit Opportunity Act prohibits creditors from discriminating against credit applicants.",
    "Federal law prohibits creditors from discriminating against applicants.",
    "Federal law forbids creditors from discriminating against credit applicants.",
    "The law prohibits lenders from discriminating against credit applicants.",
    "A consumer reporting agency must provide your file free of charge if you ask within 60 days after receiving "
    "this notice.",
    "The consumer reporting agency must provide your file disclosure free of charge if you ask within 60 days.",
    "The agency did not make the decision and cannot explain why it was made.",
    "The consumer reporting agency did not make this decision.",
    "When you dispute an item, the consumer reporting agency must reinvestigate it free of charge, generally "
    "within 30 days.",
    "The agency must reasonably reinvestigate the completeness or accuracy of an item you dispute.",
    "The statement of reasons must be specific.",
    "You are entitled to a statement of reasons.",
    "Every applicant who suffers adverse action is entitled to a statement of reasons.",
]
UNSUPPORTED = [
    ("You have the right to obtain a free copy of your consumer report if you ask within 90 days.", "period"),
    ("You have the right to obtain a free copy of your consumer report if you ask within 30 days.", "period"),
    ("You can get a free copy of your consumer report within six months.", "period"),
    ("You have the right to a free copy of your report every month.", "invented"),
    ("You can get a free copy of your report from us within 60 days.", "wrong party"),
    ("The agency will fix your report within 10 days.", "invented"),
    ("You have the right to sue us for damages.", "invented"),
    ("You have the right to appeal this decision to a loan officer.", "invented"),
    ("You have the right to a lower interest rate.", "invented"),
    ("The law requires us to approve your next application.", "invented"),
    ("Federal law guarantees you credit.", "invented"),
    ("You have the right to have this denial removed from your report.", "invented"),
    ("The Fair Credit Reporting Act lets you erase late payments.", "invented"),
    ("You have the right to a free credit score from us every year.", "invented"),
    ("You have the right to a second review by a manager within 30 days.", "invented"),
    ("You have the right to ask for the nature of that information within 90 days.", "period"),
    ("You have the right to ask us by phone for the nature of that information.", "invented"),
    ("Federal law prohibits creditors from checking your credit report.", "invented"),
    ("The Equal Credit Opportunity Act entitles you to a loan.", "invented"),
    ("You have the right to dispute the decision with the agency within 60 days and have it reversed.", "invented"),
    ("The consumer reporting agency must pay you if your report is wrong.", "invented"),
    ("By law, we must explain your credit score within 5 days.", "period"),
    ("You have the right to see the model we used.", "invented"),
    ("You have the right to reapply in 30 days.", "invented"),
    ("The law gives you 120 days to dispute your report.", "period"),
    ("You have the right to a free copy of your report for 2 years.", "period"),
    ("You have the right to ask the agency to change our decision.", "invented"),
    ("Your landlord must tell you what they reported within 60 days.", "wrong party"),
    ("Federal law requires a cosigner for applicants like you.", "invented"),
    ("You have the right to free credit counselling from the agency.", "invented"),
]


def test_the_labelled_set_is_large_enough():
    assert len(SUPPORTED) >= 30 and len(UNSUPPORTED) >= 30


@pytest.mark.parametrize("sentence", SUPPORTED)
def test_supported_sentences_rest_on_a_retrieved_passage(third_party, sentence):
    assert legal_sentences(sentence) == [sentence]
    passage, why = support(third_party, sentence)
    assert passage is not None, why


@pytest.mark.parametrize("sentence, kind", UNSUPPORTED)
def test_unsupported_sentences_rest_on_none(third_party, sentence, kind):
    assert legal_sentences(sentence) == [sentence], kind
    passage, why = support(third_party, sentence)
    assert passage is None and why, (kind, passage)


def test_a_right_that_does_not_apply_is_unsupported(third_party, no_third_party):
    sentence = next(r.sentence for r in RIGHTS if r.key == "third_party")
    assert support(third_party, sentence)[0] is not None
    passage, why = support(no_third_party, sentence)
    assert passage is None and "does not apply" in why


def test_rights_follow_the_decisions_information_sources(third_party, no_third_party):
    assert [r.key for r in applicable_rights(third_party)] == ["free_report", "dispute", "third_party", "ecoa"]
    assert [r.key for r in applicable_rights(no_third_party)] == ["free_report", "dispute", "ecoa"]
    approval = Scorer.load("hmda").score(json.loads((EXAMPLES / "hmda_approval.json").read_text()))
    assert applicable_rights(approval) == () and rights_sentences(approval) == []


def test_the_composer_states_every_right_that_applies_and_each_rests_on_its_passage(third_party, no_third_party):
    for decision in (third_party, no_third_party):
        text = compose(decision)
        report = verify(decision, text)
        assert report.passed, report.failures
        rows = grounding(decision, text)
        assert [r["passage_id"] for r in rows] and all(r["passage_id"] for r in rows)
        stated = {r.key for r in applicable_rights(decision)}
        assert all(right.sentence in text for right in RIGHTS if right.key in stated)
        assert all(right.sentence not in text for right in RIGHTS if right.key not in stated)


def test_the_verifier_fails_unsupported_and_missing_rights(third_party, no_third_party):
    text = compose(third_party)
    wrong_period = text.replace("within 60 days.", "within 90 days.", 1)
    assert "legal_sentences_supported" in verify(third_party, wrong_period).failures
    dropped = text.replace(next(r.sentence for r in RIGHTS if r.key == "third_party"), "")
    assert "rights_stated" in verify(third_party, dropped).failures
    foreign = compose(no_third_party) + " " + next(r.sentence for r in RIGHTS if r.key == "third_party")
    assert "legal_sentences_supported" in verify(no_third_party, foreign).failures


def test_prompt_passages_are_the_applicable_rights_passages_trimmed(third_party, no_third_party):
    ids = [c.passage_id for _, c, _ in prompt_passages(third_party)]
    assert ids == ["fcra-615a-4", "fcra-615b", "reg-b-1002-9-b-1"]
    assert "fcra-615b" not in [c.passage_id for _, c, _ in prompt_passages(no_third_party)]
    for _, citation, text in prompt_passages(third_party):
        assert len(text.split()) <= 50 and text.replace("... ", "").replace(" ...", "")[:30] in citation.text
    assert excerpt("one two three four", "three", 1) == "... three ..."
