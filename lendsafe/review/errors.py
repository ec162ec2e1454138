"""Why a review action was refused; each message names the item, the field and what was expected."""
from __future__ import annotations

from lendsafe.errors import LendSafeError


class ReviewError(LendSafeError, ValueError):
    """A review action refused (the CLI exits 2 with the message; nothing was recorded)."""


class ReviewItemNotFoundError(ReviewError, LookupError):
    """No held item has that id."""


class ReviewClosedError(ReviewError):
    """The item was already approved (its notice issued) or rejected: it cannot be acted on again."""


class ReviewConflictError(ReviewError):
    """Another analyst acted on the item first (a newer revision, or its outcome): reload and decide again."""


class ReviewBlockedError(ReviewError):
    """The item's current paragraph fails verification: it cannot be issued; ``failures`` names each check."""

    def __init__(self, message: str, failures: dict[str, str]):
        self.failures = dict(failures)
        super().__init__(message)


class SeparationOfDutiesError(ReviewError, PermissionError):
    """The approver edited the item: another reviewer must approve it (``ReviewPolicy.separate_duties``)."""
