"""The deterministic writer: faithful by construction, phrasing chosen by the decision's content.

It writes the SFT targets and takes over whenever a generated explanation fails verification.
Every choice (opening, connective, reason phrase, closing) follows from the decision itself, never
from chance, so the same decision always yields the same text and held-out references are learnable.
"""
from __future__ import annotations

from lendsafe.datasets import load_spec
from lendsafe.decision import Decision, Reason
from lendsafe.prompts import product_word, prompt_citations

# How each feature is named in a sentence: {v} is the rounded value, {level} what a rating means.
FEATURE_PHRASES = {
    "debt_to_income": "your debt-to-income ratio of {v}, which shows obligations that are high in relation to your income",
    "housing_expense_to_income": "your housing expense-to-income ratio of {v}, which leaves too little income for the housing expense of this loan",
    "loan_to_value": "the loan-to-value ratio of {v}, which means the value of the property does not sufficiently secure the loan",
    "consumer_credit_history": "your consumer credit history rating of {v}, which records {level}",
    "mortgage_credit_history": "your mortgage credit history rating of {v}, which records {level}",
    "public_bad_credit_record": "the public record of bankruptcy, judgment, lien or collection action in your credit history",
    "mortgage_insurance_denied": "the denial of private mortgage insurance for this loan",
    "self_employed": "the type of your employment, as your income comes from self-employment",
    "condominium": "the type of collateral, a condominium unit",
    "seniority": "the length of your employment with your current employer, {v} year(s)",
    "home": "your type of residence, recorded as {v}",
    "loan_term_months": "the loan term of {v} months that you requested",
    "public_record": "the public record of bankruptcy, judgment, lien or collection action in your credit history",
    "expenses": "your monthly household expenses of {v}",
    "income": "your monthly income of {v}, which is insufficient for the credit requested",
    "assets": "the level of your assets, {v}",
    "debt": "your existing debt of {v}",
    "amount": "the size of the loan you requested, {v}",
    "loan_to_price": "the loan-to-price ratio of {v}, which means the loan is large compared with the price of the item financed",
}
# Yes/no factors whose "no" answer raised risk (SHAP signs are per applicant, xgboost #3992).
NEGATIVE_PHRASES = {
    "self_employed": "the type of your employment",
    "condominium": "the type of collateral offered",
}
MISSING_PHRASES = {
    "income": "the absence of a stated monthly income",
    "assets": "the absence of stated assets",
    "debt": "the absence of stated debt information",
    "home": "the absence of a stated type of residence",
}
RESIDENCE_WORDS = {"owner": "owning your home", "rent": "renting", "parents": "living with family",
                   "priv": "a private arrangement", "other": "another arrangement", "ignore": "not stated"}
COUNT_WORDS = {2: "Two", 3: "Three", 4: "Four"}
CONNECTIVES = {2: "Next is {p}.", 3: "A further reason is {p}."}
CREDIT_REPORT_CODES = {"CONSUMER_CREDIT_HISTORY", "MORTGAGE_PAYMENT_HISTORY", "PUBLIC_RECORD"}


def reason_phrase(dataset: str, reason: Reason) -> str:
    """One reason as a noun phrase carrying the applicant's own rounded figure."""
    if reason.display_value == "not provided" and reason.feature in MISSING_PHRASES:
        return MISSING_PHRASES[reason.feature]
    if reason.value is False and reason.feature in NEGATIVE_PHRASES:
        return NEGATIVE_PHRASES[reason.feature]
    feature = load_spec(dataset).feature(reason.feature)
    value = RESIDENCE_WORDS.get(reason.value, reason.display_value) if reason.feature == "home" else reason.display_value
    return FEATURE_PHRASES[reason.feature].format(v=value, level=feature.level_text(reason.value) or "its rating")


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
    citations = prompt_citations(decision)
    basis = f" We give these reasons as required by {citations[0]}." if citations else ""
    codes = {r.code for r in decision.reasons}
    if codes & CREDIT_REPORT_CODES:
        return basis.strip() + " You have the right to dispute inaccurate information in your credit report."
    return basis.strip() + " You may contact us with any questions about these reasons."


def compose(decision: Decision) -> str:
    """The explanation paragraph for a decision (approval or denial)."""
    if not decision.denied:
        product = product_word(decision)
        return (f"We are pleased to approve your {product} application. The terms of your credit are "
                f"described in the documents that accompany this letter.")
    parts = [opening(decision), *reason_sentences(decision), closing(decision)]
    return " ".join(p.strip() for p in parts if p.strip())


class TemplateGenerator:
    """The deterministic writer behind the same interface the pipeline uses for the LoRA writer."""

    name = "template"

    def write(self, decisions: list[Decision]) -> list[str]:
        return [compose(d) for d in decisions]
