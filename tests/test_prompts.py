"""Prompt building: pure, golden-file stable, and free of the threshold, the raw risk and protected data."""
from __future__ import annotations

import json
import os

import pytest

from lendsafe.config import PROJECT_ROOT
from lendsafe.explain.prompts import build_messages, messages_sha256, product_word, user_prompt
from lendsafe.decide.scoring import Scorer
from passages import citations

GOLDEN = PROJECT_ROOT / "tests" / "golden"
EXAMPLES = PROJECT_ROOT / "data" / "examples"
CITATIONS = citations()


def decision_for(name: str, **changes):
    application = json.loads((EXAMPLES / f"{name}.json").read_text())
    dataset = "credit" if name.startswith("credit") else "hmda"
    return Scorer.load(dataset).score({**application, **changes}).with_updates(citations=CITATIONS)


@pytest.mark.parametrize("name", ["hmda_denial", "hmda_approval", "credit_denial"])
@pytest.mark.parametrize("strict", [False, True])
def test_prompt_matches_its_golden_file(name, strict):
    """Set LENDSAFE_UPDATE_GOLDEN=1 to rewrite the files after an intended prompt change."""
    messages = build_messages(decision_for(name), strict=strict)
    path = GOLDEN / f"prompt_{name}{'_strict' if strict else ''}.json"
    if os.environ.get("LENDSAFE_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(messages, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert messages == json.loads(path.read_text(encoding="utf-8"))


def test_prompt_is_a_pure_function_of_the_decision():
    first, second = build_messages(decision_for("hmda_denial")), build_messages(decision_for("hmda_denial"))
    assert first == second and messages_sha256(first) == messages_sha256(second)
    assert messages_sha256(first) != messages_sha256(build_messages(decision_for("hmda_denial"), strict=True))


def test_prompt_never_holds_threshold_risk_or_protected_attributes():
    decision = decision_for("hmda_denial", applicant={"name": "Ana Married-Black", "address": "1 Main St"})
    text = user_prompt(decision, strict=True) + build_messages(decision)[0]["content"]
    assert f"{decision.risk:.2f}" not in text and f"{decision.risk:.3f}" not in text
    assert str(decision.threshold) not in text
    for word in ("afam", "single", "unemp", "hschool", "Ana", "Main St", "risk", "probability"):
        assert word not in text, word


def test_every_reason_appears_in_order_with_its_rounded_value():
    decision = decision_for("hmda_denial")
    text = user_prompt(decision)
    positions = [text.index(f"{rank}. {r.statement} (") for rank, r in enumerate(decision.reasons, start=1)]
    assert positions == sorted(positions) and 1 <= len(decision.reasons) <= 4
    assert all(f": {r.display_value}" in text for r in decision.reasons)


@pytest.mark.parametrize("rating", [3, 5, 6])
def test_a_coded_value_carries_its_own_levels_meaning(rating):
    from lendsafe.decide.specs import load_spec

    feature = load_spec("hmda").feature("consumer_credit_history")
    decision = decision_for("hmda_denial", consumer_credit_history=rating)
    reason = next((r for r in decision.reasons if r.feature == feature.name), None)
    text = user_prompt(decision)
    if reason is not None:
        assert f"{feature.label}: {rating}, meaning {feature.level_text(rating)})" in text
    others = [level for level, meaning in feature.levels if level != rating and meaning in text]
    assert not others


def test_a_missing_value_is_given_as_not_provided_without_a_figure():
    decision = decision_for("credit_denial", income=None)
    income = next(r for r in decision.reasons if r.feature == "income")
    assert "(Monthly income: not provided)" in user_prompt(decision)
    assert income.statement.startswith("Credit application incomplete")


def test_approvals_list_no_reasons_and_no_sources():
    decision = decision_for("hmda_approval")
    assert not decision.denied
    text = user_prompt(decision)
    assert "Decision: approved" in text and "Principal reasons" not in text and "Sources" not in text


def test_the_prompt_carries_the_rights_passages_and_no_citation_list():
    decision = decision_for("hmda_denial")
    text = user_prompt(decision)
    assert "Sources" not in text and "Passages (write the applicant's rights only from these):" in text
    assert "[R1] 15 U.S.C. 1681m(a)(4): The consumer must be told of the right to obtain a free copy" in text
    assert "12 CFR 1002.9(b)(2)" not in text              # a requirement passage, not a right: not in the prompt
    assert "Passages" not in user_prompt(decision, passages=False)


@pytest.mark.parametrize("product", ["30-year fixed mortgage", "Education loan", "Guaranteed-rate loan",
                                     "loan. Call 1-900-555-0199 to fix this today", ""])
def test_the_product_is_the_datasets_own_word_never_free_text(product):
    decision = decision_for("hmda_denial", product=product)
    assert product_word(decision) == "mortgage"
    assert (product not in user_prompt(decision)) or not product
