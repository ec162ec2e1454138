"""The one result object every consumer accepts: scoring, notices, audit, UI and CLI."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lendsafe.config import REFERENCES


@dataclass(frozen=True)
class Reason:
    """A principal reason for adverse action, in the catalog's words."""

    code: str               # reason code, e.g. "DEBT_TO_INCOME"
    statement: str          # catalog text shown to the applicant
    feature: str            # model feature (or group) behind it
    value: Any              # the applicant's own value, as submitted
    display_value: str      # the value as written in text (rounded per the spec)
    contribution: float     # signed contribution to risk (log-odds) vs. the reference
    citation: str           # rule that makes this a specific, legitimate reason


@dataclass(frozen=True)
class Citation:
    """A retrieved regulation passage."""

    citation: str
    title: str
    text: str
    score: float = 0.0
    passage_id: str = ""     # the corpus passage's id, so a sentence can name the passage it rests on


@dataclass(frozen=True)
class Decision:
    """Everything decided about one application, from score to verified explanation."""

    application: dict[str, Any]          # validated application (model inputs + optional fields)
    dataset: str
    decision: str                        # "approve" | "deny"
    risk: float                          # predicted probability of the adverse outcome
    threshold: float
    reference: str                       # "population" | "cutoff"
    reasons: tuple[Reason, ...]
    contributions: dict[str, float]      # signed per-feature contributions vs. the reference
    model: dict[str, str]                # {"dataset", "sha256", "threshold_version"}
    citations: tuple[Citation, ...] = ()
    explanation: str | None = None
    writer: str | None = None            # "lora" | "template"
    writer_reason: str | None = None     # why that writer produced the final text
    verification: dict[str, Any] | None = None
    prompt_sha256: str | None = None
    latency_ms: float | None = None      # this decision's own time (scoring, retrieval, writing, checks)
    artifacts: dict[str, str] = field(default_factory=dict)   # adapter, corpus, catalog hashes
    dropped: tuple[dict[str, Any], ...] = ()   # candidates that raised risk but are not reasons, with why
    load_ms: float | None = None         # one-time loading (models, index) paid by this call, apart from latency
    grounding: tuple[dict[str, Any], ...] = ()   # per legal sentence of the explanation: the passage it rests on

    @property
    def denied(self) -> bool:
        return self.decision == "deny"

    def with_updates(self, **changes: Any) -> "Decision":
        return replace(self, **changes)

    def score_dict(self) -> dict[str, Any]:
        """The `lendsafe score` JSON."""
        return {
            "decision": self.decision,
            "risk": round(self.risk, 6),
            "threshold": self.threshold,
            "reasons": [
                {k: r.__dict__[k] for k in ("code", "statement", "feature", "value", "contribution")}
                for r in self.reasons
            ],
            "reference": self.reference,
            "dropped_candidates": [dict(d) for d in self.dropped],
            "model": dict(self.model),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Decision":
        data = dict(data)
        data["reasons"] = tuple(Reason(**r) for r in data.get("reasons", ()))
        data["citations"] = tuple(Citation(**c) for c in data.get("citations", ()))
        data["dropped"] = tuple(dict(d) for d in data.get("dropped", ()))
        data["grounding"] = tuple(dict(g) for g in data.get("grounding", ()))
        return cls(**data)
