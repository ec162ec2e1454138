"""``Pipeline.run(application) -> Decision``: the one entry point the UI, CLI and batch call.

score + reasons -> retrieval -> explanation (the language-model ``Writer``) -> verification -> one
stricter retry -> the deterministic composer (also a ``Writer``) when the text still fails. The decision
records which writer produced the text and why, and the hashes of every artifact involved.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from lendsafe.config import Settings
from lendsafe.decide.decision import Decision
from lendsafe.decide.reasons import catalog_sha256
from lendsafe.decide.scoring import Scorer
from lendsafe.errors import LendSafeError
from lendsafe.explain.composer import ComposerWriter
from lendsafe.explain.generation import LoraGenerator
from lendsafe.explain.grounding import grounding, retrieval_key, retrieve
from lendsafe.explain.prompts import build_messages, messages_sha256
from lendsafe.explain.verify import verify
from lendsafe.explain.writer import Writer
from lendsafe.knowledge.retrieval import KnowledgeBase

WRITERS = ("auto", "lora", "template")
WARM_UP_QUERY = "statement of specific reasons for adverse action"


@dataclass
class Draft:
    """One decision's explanation as it moves through the attempts."""

    decision: Decision
    text: str | None = None
    writer: str | None = None
    reason: str = ""
    prompt_sha256: str | None = None
    attempts: list[dict[str, Any]] | None = None


class Pipeline:
    """Scores, explains and verifies applications; heavy parts load on first use and are shared."""

    def __init__(self, settings: Settings | None = None, *, dataset: str | None = None,
                 reference: str | None = None, writer: str = "auto", generator: Writer | None = None,
                 knowledge: Any = None, passages: bool = True):
        """``generator``: a ready language-model ``Writer`` (else ``LoraGenerator`` loads on first use)."""
        if writer not in WRITERS:
            raise LendSafeError(f"writer must be one of {WRITERS}; got {writer!r}")
        self.settings = settings or Settings()
        self.dataset = dataset or self.settings.dataset
        self.reference = reference or self.settings.reference
        self.writer = "template" if not self.settings.use_llm and writer == "auto" else writer
        self._generator, self._knowledge = generator, knowledge
        self._generator_error: str | None = None
        self.composer = ComposerWriter()
        self._lock = threading.Lock()
        self._citations: dict[tuple, tuple] = {}
        self._warm = False
        self.passages = passages        # False only for the evaluation's ablation: the writer without retrieval

    # ------------------------------------------------------------------ parts
    @property
    def scorer(self) -> Scorer:
        return Scorer.load(self.dataset, self.settings)

    @property
    def knowledge(self) -> Any:
        with self._lock:
            if self._knowledge is None:
                self._knowledge = KnowledgeBase(self.settings)
            return self._knowledge

    def generator(self) -> Writer | None:
        """The language-model writer, or None (with the reason kept) when it cannot be loaded."""
        if self.writer == "template":
            return None
        with self._lock:
            if self._generator is None and self._generator_error is None:
                try:
                    self._generator = LoraGenerator(self.settings)
                except (LendSafeError, OSError, ImportError) as exc:
                    if self.writer == "lora":
                        raise
                    self._generator_error = f"language model unavailable: {exc}"
            return self._generator

    def artifacts(self) -> dict[str, str]:
        hashes = {"catalog_sha256": catalog_sha256(), "model_sha256": self.scorer.model.sha256,
                  "corpus_sha256": getattr(self.knowledge, "corpus_sha256", "")}
        generator = self._generator
        if generator is not None:
            hashes.update({f"{k}": str(v) for k, v in generator.describe().items()})
        return hashes

    # ------------------------------------------------------------------ running
    def run(self, application: dict[str, Any], reference: str | None = None) -> Decision:
        return self.run_many([application], reference)[0]

    def load(self) -> float:
        """Load every part a decision needs (risk model, index, writer); milliseconds spent, 0 when warm."""
        started = time.perf_counter()
        _ = self.scorer
        if not self._warm and hasattr(self.knowledge, "search"):
            self.knowledge.search(WARM_UP_QUERY, k=1)     # opens the index and loads the embedding model
        self._warm = True
        self.generator()
        return (time.perf_counter() - started) * 1000

    def run_many(self, applications: list[dict[str, Any]], reference: str | None = None) -> list[Decision]:
        """Decide a batch: one TreeSHAP call, batched generation, per-decision verification.

        ``latency_ms`` is each decision's own time (amortized over the batch); one-time loading paid by
        this call is reported apart as ``load_ms``.
        """
        load_ms = self.load()
        started = time.perf_counter()
        decisions = self.scorer.score_many(applications, reference or self.reference)
        drafts = [Draft(d.with_updates(citations=self.citations_for(d))) for d in decisions]
        self._write(drafts)
        elapsed_ms = (time.perf_counter() - started) * 1000 / max(1, len(drafts))
        artifacts = self.artifacts()
        return [self._finish(draft, elapsed_ms, artifacts).with_updates(load_ms=round(load_ms, 1))
                for draft in drafts]

    def citations_for(self, decision: Decision) -> tuple:
        key = retrieval_key(decision)
        if key not in self._citations:
            self._citations[key] = retrieve(self.knowledge, decision)
        return self._citations[key]

    def _write(self, drafts: list[Draft]) -> None:
        generator = self.generator()
        if generator is not None:
            self._attempt(generator, drafts, strict=False)
            self._attempt(generator, [d for d in drafts if d.text is None], strict=True)
        self._fall_back([draft for draft in drafts if draft.text is None])

    def _attempt(self, writer: Writer, drafts: list[Draft], strict: bool) -> None:
        if not drafts:
            return
        prompts = [build_messages(d.decision, strict=strict, passages=self.passages) for d in drafts]
        results = writer.write([d.decision for d in drafts], prompts)
        for draft, prompt, result in zip(drafts, prompts, results):
            report = verify(draft.decision, result.text)
            draft.attempts = (draft.attempts or []) + [{
                "writer": writer.name, "strict": strict, "text": result.text, "passed": report.passed,
                "failures": report.failures, "latency_ms": round(result.latency_ms, 1), "cached": result.cached,
                "draft_tokens_accepted": getattr(result, "draft_tokens_accepted", None)}]
            if report.passed:
                draft.text, draft.writer, draft.prompt_sha256 = result.text, writer.name, messages_sha256(prompt)
                draft.reason = "passed verification" + (" on the stricter retry" if strict else " on the first attempt")

    def _fall_back(self, drafts: list[Draft]) -> None:
        """The composer writes what the language model did not (or could not) write."""
        prompts = [build_messages(d.decision, passages=self.passages) for d in drafts]
        results = self.composer.write([d.decision for d in drafts], prompts)
        for draft, prompt, result in zip(drafts, prompts, results):
            draft.text, draft.writer, draft.prompt_sha256 = result.text, self.composer.name, messages_sha256(prompt)
            draft.reason = self._fallback_reason(draft)

    def _fallback_reason(self, draft: Draft) -> str:
        if draft.attempts:
            failures = sorted({f for a in draft.attempts for f in a["failures"]})
            return f"language model text failed verification twice ({', '.join(failures)})"
        return self._generator_error or "deterministic writer selected"

    def _finish(self, draft: Draft, latency_ms: float, artifacts: dict[str, str]) -> Decision:
        report = verify(draft.decision, draft.text or "")
        if not report.passed:
            raise LendSafeError(f"explanation failed verification ({', '.join(report.failures)}); nothing was issued")
        verification = {**report.to_dict(), "attempts": draft.attempts or []}
        return draft.decision.with_updates(
            explanation=draft.text, writer=draft.writer, writer_reason=draft.reason, verification=verification,
            grounding=tuple(grounding(draft.decision, draft.text or "")),
            prompt_sha256=draft.prompt_sha256, latency_ms=round(latency_ms, 1), artifacts=dict(artifacts))
