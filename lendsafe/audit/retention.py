"""The retention rule of 12 CFR 1002.12(b) and the purges it allows.

Records are kept 25 months for consumer credit and 12 for business credit (``RETENTION_MONTHS``); a
shorter period is refused (``check_retention``). A purge removes the oldest contiguous records created
before its cutoff, writes a purge-log entry (what was removed, under which rule, hash-linked and signed:
``chain.purge_log_entry``) and is itself a chain record (``records.purge_body``). ``verify`` re-checks
the rule for every purge-log entry (``retention_problem``), so an unlawful or forged purge is named.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lendsafe.audit.records import format_timestamp, parse_timestamp
from lendsafe.errors import AuditIntegrityError, ConfigurationError

# 12 CFR 1002.12(b)(1) and (b)(5): the shortest lawful retention for each kind of credit
RETENTION_MONTHS = {"consumer": 25, "business": 12}
MAX_RETENTION_MONTHS = 1200
# purge-log columns added by migration 0002; absent (None) on entries written before it
PURGE_COLUMNS_SINCE_0002 = ("credit", "last_created_at", "record_id")


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed and the anchor the chain now starts from."""

    purged_count: int
    first_id: int | None
    last_id: int | None
    anchor_hash: str | None
    cutoff: str
    record_id: int | None = None

    def summary(self) -> str:
        if not self.purged_count:
            return f"nothing to purge: no record created before {self.cutoff}"
        return (f"purged {self.purged_count} records ({self.first_id}..{self.last_id}) created before "
                f"{self.cutoff}; the chain now starts after anchor {self.anchor_hash}; "
                f"the purge is record {self.record_id}")


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (clamped to the month's last day)."""
    year, month_index = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month_index + 1)[1])
    return moment.replace(year=year, month=month_index + 1, day=day)


def check_retention(months: Any, credit: str = "consumer") -> None:
    """Refuse a retention period shorter than 12 CFR 1002.12(b) allows for this kind of credit."""
    if credit not in RETENTION_MONTHS:
        raise ConfigurationError(f"credit must be one of {tuple(RETENTION_MONTHS)}; got {credit!r}")
    minimum = RETENTION_MONTHS[credit]
    if isinstance(months, bool) or not isinstance(months, int) or not minimum <= months <= MAX_RETENTION_MONTHS:
        raise AuditIntegrityError(f"retention months must be a whole number of at least {minimum} months for "
                                  f"{credit} credit (12 CFR 1002.12(b)) and at most {MAX_RETENTION_MONTHS}; "
                                  f"got {months!r}")


def purge_request(months: int, credit: str, actor: str, moment: datetime) -> dict[str, Any]:
    """What a purge at ``moment`` states: the rule it follows, who asked, and its cutoff."""
    return {"months": months, "credit": credit, "actor": actor, "purged_at": format_timestamp(moment),
            "cutoff": format_timestamp(months_before(moment, months))}


def purge_fields(entry: Any) -> dict[str, Any]:
    """A purge-log entry as hashed and as copied into its chain record (columns added later only when set)."""
    values = dict(entry)
    return {k: v for k, v in values.items()
            if k != "entry_mac" and not (k in PURGE_COLUMNS_SINCE_0002 and v is None)}


def retention_problem(row: Any) -> str | None:
    """Whether a purge-log entry was lawful: the period, its cutoff, its count, the newest record it removed."""
    what = f"purge-log entry {row.id} (records {row.first_id}..{row.last_id})"
    credit = row.credit or "business"          # entries written before 0002 were held to the 12-month floor
    minimum = RETENTION_MONTHS.get(credit)
    if minimum is None:
        return f"{what} names credit {credit!r}; expected one of {tuple(RETENTION_MONTHS)}"
    if not isinstance(row.months, int) or row.months < minimum:
        return (f"{what} used a {row.months}-month retention period; 12 CFR 1002.12(b) requires at least "
                f"{minimum} months for {credit} credit (an unlawful or forged purge)")
    purged_at = parse_timestamp(row.purged_at)
    if purged_at is None or format_timestamp(months_before(purged_at, row.months)) != row.cutoff:
        return f"{what} has cutoff {row.cutoff}; expected {row.months} months before its time {row.purged_at}"
    if row.purged_count != row.last_id - row.first_id + 1:
        return f"{what} claims {row.purged_count} records removed; its range holds {row.last_id - row.first_id + 1}"
    if row.last_created_at is not None and row.last_created_at >= row.cutoff:
        return f"{what} removed a record created at {row.last_created_at}, not before its cutoff {row.cutoff}"
    return None
