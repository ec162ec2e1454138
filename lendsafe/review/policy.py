"""Which decisions are held for review before their notice is issued, and who may approve what.

Declared once as a frozen dataclass with help text (``ReviewPolicy.help_table``), read from the
environment by ``ReviewPolicy.from_env``. Only denials are held: an approval has no notice to review.
Each rule of ``HOLD_RULES`` names one reason to hold a denial; ``hold_reasons`` lists those that apply.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from lendsafe.config import FLAG_VALUES
from lendsafe.decide.decision import Decision
from lendsafe.errors import ConfigurationError
from lendsafe.identity import ROLES

LORA_RETRY, COMPOSER_FALLBACK, NEAR_CUTOFF, ALL_DENIALS, BATCH = (
    "lora_retry", "composer_fallback", "near_cutoff", "all_denials", "batch")
HOLD_WORDS = {LORA_RETRY: "language-model text needed the stricter retry",
              COMPOSER_FALLBACK: "the composer took over from the language model",
              NEAR_CUTOFF: "risk near the cutoff", ALL_DENIALS: "every denial is reviewed",
              BATCH: "the batch was held for review"}
UNAVAILABLE_REASON = "language model unavailable"    # how the pipeline and dashboard say the model could not run


@dataclass(frozen=True)
class ReviewPolicy:
    """When a denial is held for review instead of issued, and the separation of duties."""

    enabled: bool = field(default=True, metadata={
        "help": "hold the denials the rules below select (env LENDSAFE_REVIEW=0 issues everything at once)"})
    lora_retry: bool = field(default=True, metadata={
        "help": "hold language-model texts that passed only on the stricter retry (env LENDSAFE_REVIEW_LORA_RETRY)"})
    composer_fallback: bool = field(default=True, metadata={
        "help": "hold texts the composer wrote because the language model failed or was unavailable "
                "(env LENDSAFE_REVIEW_COMPOSER_FALLBACK)"})
    cutoff_margin: float = field(default=0.02, metadata={
        "help": "hold denials whose risk is within this distance of the cutoff (0 turns it off; "
                "env LENDSAFE_REVIEW_CUTOFF_MARGIN)"})
    all_denials: bool = field(default=False, metadata={
        "help": "hold every denial (env LENDSAFE_REVIEW_ALL_DENIALS)"})
    separate_duties: bool = field(default=True, metadata={
        "help": "whoever edited an item cannot approve it (env LENDSAFE_REVIEW_SEPARATE_DUTIES)"})
    approver_role: str = field(default="reviewer", metadata={
        "help": "the least role a signed-in dashboard user needs to approve (analyst, reviewer or admin; the "
                "CLI's --actor is the operator's word; env LENDSAFE_REVIEW_APPROVER_ROLE)"})

    def __post_init__(self) -> None:
        if not isinstance(self.cutoff_margin, (int, float)) or not 0 <= self.cutoff_margin <= 1:
            raise ConfigurationError(f"cutoff_margin must be a number from 0 to 1; got {self.cutoff_margin!r}")
        if self.approver_role not in ROLES:
            raise ConfigurationError(f"approver_role must be one of {', '.join(ROLES)}; got {self.approver_role!r}")

    @classmethod
    def help_table(cls) -> dict[str, str]:
        """Every setting with its help text (a test fails if one is undocumented)."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ReviewPolicy":
        """The policy the environment sets (``LENDSAFE_REVIEW``, ``LENDSAFE_REVIEW_<SETTING>``); defaults elsewhere."""
        environ = os.environ if environ is None else environ
        values = {f.name: _parse(f.name, environ[env_name(f.name)], f.default)
                  for f in fields(cls) if environ.get(env_name(f.name), "").strip()}
        return cls(**values)


def env_name(setting: str) -> str:
    return "LENDSAFE_REVIEW" if setting == "enabled" else f"LENDSAFE_REVIEW_{setting.upper()}"


def _parse(setting: str, text: str, default: Any) -> Any:
    value = text.strip().lower()
    if isinstance(default, str):
        return value
    if isinstance(default, bool):
        if value not in FLAG_VALUES:
            raise ConfigurationError(f"{env_name(setting)} must be one of {sorted(FLAG_VALUES)}; got {text!r}")
        return FLAG_VALUES[value]
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(f"{env_name(setting)} must be a number from 0 to 1; got {text!r}") from None


def attempts(decision: Decision) -> list[dict[str, Any]]:
    """The language model's recorded attempts at the decision's text."""
    return list((decision.verification or {}).get("attempts") or ())


def needed_retry(decision: Decision) -> bool:
    return decision.writer == "lora" and len(attempts(decision)) > 1


def composer_took_over(decision: Decision) -> bool:
    """The composer wrote the text because the language model's text failed verification or the model
    could not run (not when the template writer was chosen, nor while the model was still loading)."""
    unavailable = (decision.writer_reason or "").startswith(UNAVAILABLE_REASON)
    return decision.writer == "template" and (bool(attempts(decision)) or unavailable)


def near_cutoff(decision: Decision, margin: float) -> bool:
    return margin > 0 and abs(decision.risk - decision.threshold) <= margin


HOLD_RULES: dict[str, Callable[[Decision, ReviewPolicy], bool]] = {
    LORA_RETRY: lambda d, p: p.lora_retry and needed_retry(d),
    COMPOSER_FALLBACK: lambda d, p: p.composer_fallback and composer_took_over(d),
    NEAR_CUTOFF: lambda d, p: near_cutoff(d, p.cutoff_margin),
    ALL_DENIALS: lambda d, p: p.all_denials,
}


def hold_reasons(decision: Decision, policy: ReviewPolicy | None = None) -> tuple[str, ...]:
    """Why the policy holds this decision for review (empty: issue it at once)."""
    policy = policy or ReviewPolicy()
    if not policy.enabled or not decision.denied:
        return ()
    return tuple(name for name, applies in HOLD_RULES.items() if applies(decision, policy))
