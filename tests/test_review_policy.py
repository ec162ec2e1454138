"""Which denials are held for review (``lendsafe.review.policy``): each rule, the switches, the environment."""
from __future__ import annotations

import pytest

from lendsafe.errors import ConfigurationError
from lendsafe.review.policy import HOLD_RULES, HOLD_WORDS, ReviewPolicy, env_name, hold_reasons

from review_support import denial, example, pipeline  # noqa: F401

ATTEMPT = {"writer": "lora", "strict": False, "text": "...", "passed": False, "failures": ["numbers_match"]}


def with_attempts(decision, writer: str, count: int, reason: str = "passed verification on the stricter retry"):
    verification = {**(decision.verification or {}), "attempts": [ATTEMPT] * count}
    return decision.with_updates(writer=writer, writer_reason=reason, verification=verification)


def test_every_setting_is_documented_and_every_rule_has_words():
    assert all(ReviewPolicy.help_table().values())
    assert set(HOLD_RULES) <= set(HOLD_WORDS)


def test_the_chosen_template_writer_far_from_the_cutoff_is_issued_at_once(denial):
    assert denial.writer == "template" and abs(denial.risk - denial.threshold) > ReviewPolicy().cutoff_margin
    assert hold_reasons(denial) == ()


@pytest.mark.parametrize("writer, attempts, reason, expected", [
    ("lora", 2, "passed verification on the stricter retry", ("lora_retry",)),
    ("lora", 1, "passed verification on the first attempt", ()),
    ("template", 2, "language model text failed verification twice (numbers_match)", ("composer_fallback",)),
    ("template", 0, "language model unavailable: no weights", ("composer_fallback",)),
    ("template", 0, "deterministic writer selected", ()),
])
def test_writer_rules(denial, writer, attempts, reason, expected):
    assert hold_reasons(with_attempts(denial, writer, attempts, reason)) == expected


def test_a_denial_near_the_cutoff_is_held_unless_the_margin_is_zero(denial):
    near = denial.with_updates(threshold=denial.risk - 0.01)
    assert hold_reasons(near, ReviewPolicy(cutoff_margin=0.02)) == ("near_cutoff",)
    assert hold_reasons(near, ReviewPolicy(cutoff_margin=0.005)) == ()
    assert hold_reasons(near, ReviewPolicy(cutoff_margin=0)) == ()


def test_switches_turn_rules_off_and_approvals_are_never_held(denial, pipeline):
    retried = with_attempts(denial, "lora", 2)
    assert hold_reasons(retried, ReviewPolicy(lora_retry=False)) == ()
    assert hold_reasons(retried, ReviewPolicy(enabled=False)) == ()
    assert hold_reasons(denial, ReviewPolicy(all_denials=True)) == ("all_denials",)
    assert hold_reasons(pipeline.run(example("hmda_approval")), ReviewPolicy(all_denials=True)) == ()


def test_the_environment_sets_the_policy_and_bad_values_name_the_variable():
    policy = ReviewPolicy.from_env({"LENDSAFE_REVIEW": "off", "LENDSAFE_REVIEW_CUTOFF_MARGIN": "0.1",
                                    "LENDSAFE_REVIEW_SEPARATE_DUTIES": "no"})
    assert (policy.enabled, policy.cutoff_margin, policy.separate_duties) == (False, 0.1, False)
    assert ReviewPolicy.from_env({}) == ReviewPolicy()
    with pytest.raises(ConfigurationError, match="LENDSAFE_REVIEW_ALL_DENIALS must be one of"):
        ReviewPolicy.from_env({env_name("all_denials"): "maybe"})
    with pytest.raises(ConfigurationError, match="cutoff_margin must be a number from 0 to 1"):
        ReviewPolicy.from_env({"LENDSAFE_REVIEW_CUTOFF_MARGIN": "2"})
    assert ReviewPolicy.from_env({"LENDSAFE_REVIEW_APPROVER_ROLE": "Admin"}).approver_role == "admin"
    with pytest.raises(ConfigurationError, match="approver_role must be one of analyst, reviewer, admin"):
        ReviewPolicy.from_env({"LENDSAFE_REVIEW_APPROVER_ROLE": "intern"})
    with pytest.raises(ConfigurationError, match="LENDSAFE_REVIEW_CUTOFF_MARGIN must be a number"):
        ReviewPolicy.from_env({"LENDSAFE_REVIEW_CUTOFF_MARGIN": "wide"})
