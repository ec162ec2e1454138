"""The deterministic writer: faithful by construction, phrasing chosen by the decision's content.

It writes the SFT targets and takes over whenever a generated explanation fails verification.
Every choice (opening, connective, reason phrase, closing) follows from the decision itself, never
from chance, so the same decision always yields the same text and held-out references are learnable.
Coded values are described with their own level's meaning from the dataset spec; a factor the
applicant gave no value for is stated as missing, never with a figure.
"""
from __future__ import annotations

import time
from typing import Sequence

from lendsafe.decide.catalog import is_missing

from lendsafe.decide.specs import load_spec
from lendsafe.decide.decision import Decision, Reason
from lendsafe.errors import LendSafeError
from lendsafe.explain.grounding import rights_sentences
from lendsafe.explain.prompts import messages_sha256, product_word
from lendsafe.explain.writer import GenerationResult, Messages

# How each feature is named in a sentence: {v} is the rounded value with its unit, {level} what it means.
FEATURE_PHRASES = {
    "debt_to_income": "your debt-to-income ratio of {v}, which shows obligations that are high in relation to your income",
    "housing_expense_to_income": "your housing expense-to-income ratio of {v}, which leaves too little income for the housing expense of this loan",
    "loan_to_value": "the loan-to-value ratio of {v}, which means the value of the property does not sufficiently secure the loan",
    "consumer_credit_history": "your consumer credit history rating of {v}, which records {level}",
    "mortgage_credit_history": "your mortgage credit history rating of {v}, which records {level}",
    "public_bad_credit_record": "the public record of bad credit in your credit history",
    "mortgage_insurance_denied": "the denial of private mortgage insurance for this loan",
    "self_employed": "the type of your employment, as your income comes from self-employment",
    "condominium": "the type of collateral, as the property is a condominium unit",
    "seniority": "the length of your employment with your current employer, {v}",
    "home": "your type of residence, recorded as {level}",
    "loan_term_months": "the loan term of {v} that you requested",
    "public_record": "the derogatory credit record on file for you",
    "expenses": "your monthly household expenses of {v}",
    "income": "your monthly income of {v}, which is insufficient for the credit requested",
    "assets": "the level of your assets, {v}",
    "debt": "your existing debt of {v}",
    "amount": "the size of the loan you requested, {v}",
    "loan_to_price": "the loan-to-price ratio of {v}, which means the amount requested is large compared with the price of the item financed",
}
MISSING_PHRASE = "the absence of a stated {label} from your application"
COUNT_WORDS = {2: "Two", 3: "Three", 4: "Four"}
CONNECTIVES = {2: "Next is {p}.", 3: "A further reason is {p}."}


def reason_phrase(dataset: str, reason: Reason) -> str:
    """One reason as a noun phrase carrying the applicant's own rounded figure or the value's meaning."""
    feature = load_spec(dataset).feature(reason.feature)
    if is_missing(reason.value):
        return MISSING_PHRASE.format(label=feature.label.lower())
    return FEATURE_PHRASES[reason.feature].format(v=reason.display_value, level=feature.level_text(reason.value))


def opening(decision: Decision) -> str:
    product = product_word(decision)
    count = len(decision.reasons)
    if count == 1:
        return f"We cannot approve your {product} application, and one factor decided it."
    return (f"We cannot approve your {product} application. {COUNT_WORDS[count]} factors weighed most "
            f"against approval, listed from most to least important.")


def reason_sentences(decision: Decision) -> list[str]:
    phrases = [reason_phrase(decision.dataset, r) for r in decision.reasons]
    if len(phrases) == 1:
        return [f"The principal reason is {phrases[0]}."]
    sentences = [f"The most important reason is {phrases[0]}."]
    for rank, phrase in enumerate(phrases[1:-1], start=2):
        sentences.append(CONNECTIVES[rank].format(p=phrase))
    sentences.append(f"The last reason is {phrases[-1]}.")
    return sentences


def closing(decision: Decision) -> str:
    """The rights that apply to the decision, each written from its passage (see ``lendsafe.explain.grounding``)."""
    return " ".join(rights_sentences(decision))


def compose(decision: Decision) -> str:
    """The explanation paragraph for a decision (approval or denial)."""
    if not decision.denied:
        product = product_word(decision)
        return (f"We are pleased to approve your {product} application. The terms of your credit are "
                f"described in the documents that accompany this letter.")
    if not decision.reasons:
        raise LendSafeError("the denial has no principal reason whose value is adverse; refer it to an analyst")
    parts = [opening(decision), *reason_sentences(decision), closing(decision)]
    return " ".join(p.strip() for p in parts if p.strip())


class ComposerWriter:
    """The deterministic writer behind the ``Writer`` protocol (the pipeline's fallback and 'template' writer)."""

    name = "template"

    def write(self, decisions: Sequence[Decision], prompts: Sequence[Messages]) -> list[GenerationResult]:
        return [_composed(decision, prompt) for decision, prompt in zip(decisions, prompts, strict=True)]

    def describe(self) -> dict:
        return {"writer": "deterministic composer"}


def _composed(decision: Decision, prompt: Messages) -> GenerationResult:
    started = time.perf_counter()
    text = compose(decision)
    return GenerationResult(text, messages_sha256(prompt), 0, round((time.perf_counter() - started) * 1000.0, 3),
                            False)
