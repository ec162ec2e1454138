"""The ``Writer`` protocol: what the ``Pipeline`` asks of anything that writes explanations.

Two writers implement it: the LoRA language model (``lendsafe.explain.generation.LoraGenerator``) and
the deterministic composer (``lendsafe.explain.composer.ComposerWriter``). A writer gets the decisions
and their prompts together, so each decides for itself what it needs from them (the language model
takes the composer's text of each decision as a guess of its own output; see ``lendsafe.explain.drafts``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from lendsafe.decide.decision import Decision

Messages = list[dict]


@dataclass(frozen=True)
class GenerationResult:
    """One explanation: cleaned text, the sha256 of the exact prompt text, tokens generated, timing."""

    text: str
    prompt_sha256: str
    tokens: int
    latency_ms: float
    cached: bool
    draft_tokens_accepted: int | None = None   # tokens taken from a verified draft; None: no draft used


@runtime_checkable
class Writer(Protocol):
    """Writes one explanation per decision; ``name`` is the ``Decision.writer`` its texts carry."""

    name: str

    def write(self, decisions: Sequence[Decision], prompts: Sequence[Messages]) -> list[GenerationResult]:
        """One result per decision, in order (``prompts[i]`` is the chat prompt of ``decisions[i]``)."""
        ...

    def describe(self) -> dict:
        """What writes the texts (model and adapter hashes, decoding), recorded with every decision."""
        ...
