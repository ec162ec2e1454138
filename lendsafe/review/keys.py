"""The issue keys review records claim, so that two processes cannot both act where one may.

The audit store keeps each issue key once (migration 0003); an append whose key is already recorded finds
the first record instead. A held item's key is derived from the decision it holds (holding the same
decision twice finds the first item); from it derive the key of each revision (one edit makes revision
n), of each assignment, and of the item's outcome (its approval's decision record or its rejection: one of
them, once). The keys also find an item's records through the store's unique index.
"""
from __future__ import annotations

import hashlib

from lendsafe.audit.records import canonical_json
from lendsafe.decide.decision import Decision

KEY_HEX_DIGITS = 32


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(("lendsafe-review", *parts)).encode("utf-8")).hexdigest()[:KEY_HEX_DIGITS]


def hold_key(decision: Decision) -> str:
    """The item key of a held decision (its canonical content's hash)."""
    return _key("hold", canonical_json(decision.to_dict()))


def revision_key(item_key: str, revision: int) -> str:
    """The key revision ``revision`` (1 = the first edit) of an item claims."""
    return _key("revision", item_key, str(int(revision)))


def outcome_key(item_key: str) -> str:
    """The key an item's outcome (the approval's issued record, or the rejection) claims."""
    return _key("outcome", item_key)


def assignment_key(item_key: str, number: int) -> str:
    """The key the item's ``number``-th reassignment (1, 2, ...) claims."""
    return _key("assignment", item_key, str(int(number)))
