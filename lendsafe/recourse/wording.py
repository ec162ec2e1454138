"""Options in words: for the analyst (with the re-scored risk), and an applicant-facing "educational"
section that only a lender setting turns on (off by default).

The educational wording states a past fact about this assessment ("had X been Y ... it would have met our
credit standards"), never a promise: no approval is predicted, nothing says to apply again, and each
sentence is refused when the verifier's forbidden-phrase, protected-basis, internal-term, hedging or
sales patterns find anything in it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from lendsafe.decide.specs import DatasetSpec, FeatureSpec
from lendsafe.errors import ConfigurationError
from lendsafe.explain.verify.patterns import APPLICANT_PATTERNS
from lendsafe.explain.verify.text import find_all

EDUCATIONAL_OPTION = ("For your information only: had {changes}, with everything else in your application the "
                      "same, it would have met our credit standards when we assessed it.")
EDUCATIONAL_CLOSING = ("This is general information about this assessment, not a commitment to lend: any new "
                       "application is assessed in full, on its own facts and under the standards in force then.")
ANALYST_NOTE = "Analyst only: not part of the reasons or the notice."


@dataclass(frozen=True)
class RecourseSettings:
    """The lender's choices about recourse on notices; declared once, with help text."""

    educational_section: bool = field(default=False, metadata={
        "help": "add an educational section to denial notices saying which changes would have met the credit "
                "standards (careful wording, checked against the verifier's forbidden phrases); off by default"})
    educational_options: int = field(default=2, metadata={
        "help": "at most this many options in the educational section (single changes first)"})

    def __post_init__(self) -> None:
        if not isinstance(self.educational_section, bool):
            raise ConfigurationError(f"educational_section must be true or false; got {self.educational_section!r}")
        if isinstance(self.educational_options, bool) or not isinstance(self.educational_options, int) \
                or not 1 <= self.educational_options <= 6:
            raise ConfigurationError(f"educational_options must be a whole number from 1 to 6; "
                                     f"got {self.educational_options!r}")

    @classmethod
    def help_table(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def noun(feature: FeatureSpec) -> str:
    """A feature's label as a noun in a sentence: 'Loan term (months)' -> 'loan term'."""
    return re.sub(r"\s*\([^)]*\)", "", feature.label).strip().lower()


def change_words(spec: DatasetSpec, change: Any) -> str:
    """'amount requested from $1,000 to $900' (the spec's units and rounding)."""
    feature = spec.feature(change.feature)
    return f"{noun(feature)} from {feature.display(change.before)} to {feature.display(change.after)}"


def analyst_text(spec: DatasetSpec, option: Any) -> str:
    """One option for the analyst: the changes, then what the same model decided when it re-scored them."""
    changes = " and ".join(change_words(spec, change) for change in option.changes)
    verdict = "approved" if option.decision.decision == "approve" else "still denied"
    return f"{changes[0].upper()}{changes[1:]}: re-scored risk {option.decision.risk:.1%}, {verdict}."


def wording_problems(text: str) -> list[str]:
    """Phrases the verifier's tables forbid in applicant-facing text (empty when the text is clean)."""
    return find_all(APPLICANT_PATTERNS, text)


def educational_section(spec: DatasetSpec, recourse: Any, settings: RecourseSettings | None = None
                        ) -> tuple[str, ...]:
    """The applicant-facing sentences, or () when the lender has not turned the section on, the application
    was approved or has no proven option. A sentence the patterns flag is left out, never softened."""
    settings = settings or RecourseSettings()
    if not settings.educational_section or not recourse.options:
        return ()
    proven = [option for option in recourse.options if option.decision.decision == "approve"]
    sentences = [_educational_sentence(spec, option) for option in proven[:settings.educational_options]]
    sentences = [s for s in sentences if not wording_problems(s)]
    return (*sentences, EDUCATIONAL_CLOSING) if sentences else ()


def _educational_sentence(spec: DatasetSpec, option: Any) -> str:
    parts = [_had_been(spec.feature(c.feature), c) for c in option.changes]
    return EDUCATIONAL_OPTION.format(changes=" and ".join(parts))


def _had_been(feature: FeatureSpec, change: Any) -> str:
    return f"the {noun(feature)} been {feature.display(change.after)} instead of {feature.display(change.before)}"
