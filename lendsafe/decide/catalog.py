"""The reason catalog (``data/specs/reasons.toml``): what each reason code tells an applicant.

Every code has the statement an applicant reads (Reg B Appendix C wording), the statement for a value
that was not given, statements for particular values or features, the rule it rests on, and where its
information comes from (the application, a consumer report or another third party).
"""
from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lendsafe.config import SPECS_DIR
from lendsafe.errors import ConfigurationError

SOURCES = ("application", "consumer_report", "third_party")


def is_missing(value: Any) -> bool:
    """True when the applicant gave no value (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class CatalogEntry:
    code: str
    statement: str
    factor: str
    citation: str
    source: str = "application"          # application | consumer_report | third_party
    missing: str = "Credit application incomplete"
    by_value: tuple[tuple[str, str], ...] = ()
    by_feature: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigurationError(f"reason {self.code}: source must be one of {SOURCES}; got {self.source!r}")

    def statement_for(self, value: Any, feature: str | None = None) -> str:
        """The statement that is accurate for this value (Appendix C comment 4); the missing-value
        statement when there is no value (never a statement about a value not given)."""
        if is_missing(value):
            return self.missing
        by_value = dict(self.by_value).get(str(value))
        return by_value or dict(self.by_feature).get(feature or "", self.statement)

    def statements(self) -> tuple[str, ...]:
        """Every statement this code can produce."""
        return (self.statement, self.missing, *dict(self.by_value).values(), *dict(self.by_feature).values())


@lru_cache(maxsize=4)
def load_catalog(path: Path = SPECS_DIR / "reasons.toml") -> dict[str, CatalogEntry]:
    """Reason code -> the statement an applicant reads and the rule behind it."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {code: CatalogEntry(code=code, **{**entry, "by_value": tuple(entry.get("by_value", {}).items()),
                                             "by_feature": tuple(entry.get("by_feature", {}).items())})
            for code, entry in raw.items()}


def catalog_sha256(path: Path = SPECS_DIR / "reasons.toml") -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
