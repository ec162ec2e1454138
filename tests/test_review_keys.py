"""The issue keys review records claim (``lendsafe.review.keys``)."""
from __future__ import annotations

from lendsafe.audit.records import ISSUE_KEY_PATTERN
from lendsafe.review.keys import assignment_key, hold_key, outcome_key, revision_key

from review_support import denial, other_denial, pipeline  # noqa: F401


def test_keys_are_audit_issue_keys_and_tell_items_revisions_and_outcomes_apart(denial):
    item = hold_key(denial)
    keys = [item, outcome_key(item), revision_key(item, 1), revision_key(item, 2), assignment_key(item, 1),
            hold_key(other_denial(denial, 1))]
    assert all(ISSUE_KEY_PATTERN.match(key) for key in keys) and len(set(keys)) == len(keys)


def test_the_same_decision_has_the_same_key(denial):
    assert hold_key(denial) == hold_key(denial.with_updates()) != hold_key(denial.with_updates(explanation="x"))
