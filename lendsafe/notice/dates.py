"""The dates a notice may print (none before 1900, none more than a year ahead) and how it prints them."""
from __future__ import annotations

import datetime as dt
from typing import Any

from lendsafe.errors import ConfigurationError, InvalidApplicationError, LendSafeError

EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_AHEAD = dt.timedelta(days=366)
# The error a date outside that range raises, by the field it is in (the rest: ConfigurationError).
DATE_ERRORS = {"application_date": lambda message: InvalidApplicationError([message])}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


def parse_date(name: str, value: Any) -> dt.date:
    """`value` (a date or YYYY-MM-DD text) as a date; ConfigurationError naming `name` otherwise."""
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"{name} must be a date YYYY-MM-DD; got {value!r}") from None


def checked_date(name: str, value: Any, *, today: dt.date | None = None) -> dt.date:
    """`value` as a date between EARLIEST_DATE and a year from today; a field-named error otherwise."""
    day = parse_date(name, value)
    latest = (today or dt.date.today()) + LATEST_AHEAD
    if not EARLIEST_DATE <= day <= latest:
        message = f"{name} must be a date from {EARLIEST_DATE} to {latest}; got {day.isoformat()}"
        raise DATE_ERRORS.get(name, ConfigurationError)(message)
    return day


def date_problems(application: dict[str, Any]) -> list[str]:
    """The application's dates outside the range a notice may print (empty when all are fine)."""
    try:
        if application.get("application_date"):
            checked_date("application_date", application["application_date"])
    except LendSafeError as exc:
        return [str(exc).removeprefix("invalid application: ")]
    return []


def format_date(iso: str) -> str:
    """'2026-11-03' -> 'November 3, 2026' (locale independent)."""
    day = dt.date.fromisoformat(iso)
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"
