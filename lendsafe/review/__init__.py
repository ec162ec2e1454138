"""Review before issue: notices held for an analyst's sign-off, and every review action on the record.

A decision the review policy selects (``policy``: the language model's text needed its stricter retry,
the composer took over, the risk is near the cutoff, or a whole batch was asked to be held) is recorded
as *held* instead of issued. Analysts then act on the held item (``actions.Reviewer``): approve (the
notice is issued as drafted), edit the plain-words paragraph (re-verified by the same verifier; a text
that fails a check cannot be issued), reject with a reason (nothing issued), or reassign. Reasons are
never editable. Each action is a record of the audit chain (``lendsafe.audit.records.ReviewEntry``); the
queue (``queue``) is folded from those records, and issue keys (``keys``) make one action win when two
analysts act at once: one hold per decision, one edit per revision, one outcome per item.
"""
from lendsafe.review.actions import Held, Reviewer, batch_holder, hold_entry, hold_for_review, issue_or_hold
from lendsafe.review.errors import (ReviewBlockedError, ReviewClosedError, ReviewConflictError, ReviewError,
                                    ReviewItemNotFoundError, SeparationOfDutiesError)
from lendsafe.review.policy import ReviewPolicy, hold_reasons
from lendsafe.review.queue import QueueFilter, ReviewItem, Revision

__all__ = ["Held", "Reviewer", "batch_holder", "hold_entry", "hold_for_review", "issue_or_hold", "ReviewBlockedError", "ReviewClosedError",
           "ReviewConflictError", "ReviewError", "ReviewItemNotFoundError", "SeparationOfDutiesError", "ReviewPolicy",
           "hold_reasons", "QueueFilter", "ReviewItem", "Revision"]
