"""The dashboard's models, loaded once per server process in a background thread, and a draft decision
made in named stages (scoring, retrieval, writing, verification, PDF) so a page can show each one.

No Streamlit here: the engine is plain Python, shared by every session through a module-level
registry, and tested on its own. While the language model loads, drafts are written by the
deterministic template writer (verified like every text) and say so; nothing waits 20 s for it.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from lendsafe.config import Settings
from lendsafe.errors import LendSafeError

LOG = logging.getLogger("lendsafe.ui")
WARM_UP_QUERY = "specific principal reasons for adverse action"
STAGES = ("scoring", "retrieval", "writing", "verification", "PDF")
WRITER_CHOICES = ("auto", "template")         # the session's writer: the language model (verified) or the template
LOADING_REASON = "the language model was still loading; the deterministic writer wrote this draft"
FIRST_PAGE_GRACE_S = 3.0     # the warm-up leaves the CPU to the first page for at most this long
DRAFT_MARK = "DRAFT"
DRAFT_HEADER = ("DRAFT - not issued. An analyst's what-if decision: nothing was recorded and this is not a "
                "notice to an applicant.")

Stage = Callable[[str, str], None]        # (stage name, what happened) reported as a decision advances


@dataclass
class Part:
    """One part the engine loads: when it started and finished, and why it failed."""

    started: float | None = None
    finished: float | None = None
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.finished is not None and self.error is None

    def seconds(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or now or time.monotonic()) - self.started


class Engine:
    """The knowledge base, the language model and one pipeline per (dataset, reference, writer)."""

    def __init__(self, settings: Settings):
        from lendsafe.knowledge.retrieval import KnowledgeBase

        self.settings = settings
        self.knowledge = KnowledgeBase(settings)
        self.generator: Any = None
        self.parts = {"risk model": Part(), "regulation index": Part(), "language model": Part()}
        self._knowledge_ready = threading.Event()
        self._imported = threading.Event()
        self._go = threading.Event()              # set when the first page is drawn or a part is needed
        self._pipelines: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()          # one draft at a time: the writer and its cache are shared
        self._jobs: dict[str, Job] = {}
        self._latest: str | None = None
        # not daemons: a thread still inside torch when the interpreter exits would abort the process
        self.thread = threading.Thread(target=self._warm, name="lendsafe-warm-up", daemon=False)

    # ------------------------------------------------------------------ loading
    def start(self) -> "Engine":
        if not self.thread.is_alive() and self.thread.ident is None:
            self.thread.start()
        return self

    def go(self) -> None:
        """The first page is on screen, or a part is needed now: loading may take the CPU."""
        self._go.set()

    def _warm(self) -> None:
        """After the first page is drawn (or a short grace): the risk model beside the index (both are
        needed first), then the language model."""
        self._go.wait(FIRST_PAGE_GRACE_S)
        self._import_heavy()
        scorers = threading.Thread(target=self._load, args=("risk model", self._load_scorers), daemon=False)
        scorers.start()
        self._load("regulation index", self._load_knowledge)
        self._knowledge_ready.set()
        scorers.join()
        if not self.settings.use_llm:
            part = self.parts["language model"]
            part.started = part.finished = time.monotonic()
            part.error = "switched off (LENDSAFE_USE_LLM=0)"
            return
        self._load("language model", self._load_generator)

    def _import_heavy(self) -> None:
        """Import torch here first: two threads importing it at once can see it half-initialised."""
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            LOG.warning("torch could not be imported: %s", exc)
        finally:
            self._imported.set()

    def wait_for_imports(self, timeout_s: float = 120.0) -> None:
        """Before a page imports torch-based libraries itself (evaluation, batches): wait for the warm-up's import."""
        self.go()
        if self.thread.ident is not None:
            self._imported.wait(timeout_s)

    def _load(self, name: str, step: Callable[[], Any]) -> None:
        part = self.parts[name]
        part.started = time.monotonic()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - kept and shown; the template writer stands in
            part.error = f"{type(exc).__name__}: {exc}"
            LOG.warning("warm-up of the %s failed: %s", name, exc)
        part.finished = time.monotonic()

    def _load_scorers(self) -> None:
        from lendsafe.decide.scoring import Scorer

        Scorer.load(self.settings.dataset, self.settings)

    def _load_knowledge(self) -> None:
        self.knowledge.search(WARM_UP_QUERY, k=1)

    def _load_generator(self) -> None:
        from lendsafe.explain.generation import LoraGenerator

        self.generator = LoraGenerator(self.settings)

    @property
    def llm_loading(self) -> bool:
        """True while the language model is still being loaded (drafts use the template writer meanwhile)."""
        part = self.parts["language model"]
        return self.settings.use_llm and part.finished is None

    def wait_for_knowledge(self, timeout_s: float = 120.0) -> bool:
        self.go()
        return self._knowledge_ready.wait(timeout_s)

    def status(self) -> dict[str, str]:
        """Part -> 'ready (4.2 s)', 'loading (3 s so far)', 'waiting' or 'unavailable: ...'."""
        now = time.monotonic()
        words = {}
        for name, part in self.parts.items():
            if part.error:
                words[name] = f"unavailable: {part.error}"
            elif part.ready:
                words[name] = f"ready (loaded in {part.seconds():.1f} s)"
            elif part.started is not None:
                words[name] = f"loading ({part.seconds(now):.0f} s so far)"
            else:
                words[name] = "waiting"
        return words

    # ------------------------------------------------------------------ pipelines
    def pipeline(self, dataset: str, reference: str, writer: str = "auto") -> Any:
        """The pipeline for a dataset, reference and the writer available now (shared by every session)."""
        from lendsafe.explain.pipeline import Pipeline

        self.go()
        effective = "template" if writer == "template" or self.generator is None else "auto"
        key = (dataset, reference, effective)
        with self._lock:
            if key not in self._pipelines:
                settings = dataclasses.replace(self.settings, dataset=dataset, reference=reference)
                self._pipelines[key] = Pipeline(settings, dataset=dataset, reference=reference, writer=effective,
                                                generator=self.generator if effective == "auto" else None,
                                                knowledge=self.knowledge)
            return self._pipelines[key]

    # ------------------------------------------------------------------ a draft decision in stages
    def job_key(self, application: dict[str, Any], dataset: str, reference: str, writer: str,
                notice_settings: Any) -> str:
        """What a draft depends on: the application, dataset, reference, the writer available, the settings."""
        from lendsafe.canonical import canonical_json

        return canonical_json([application, dataset, reference, writer, self.generator is not None,
                               repr(notice_settings)])

    def prefetch(self, application: dict[str, Any], dataset: str, reference: str, writer: str,
                 notice_settings: Any) -> None:
        """Start drafting an application the analyst is looking at, in the background, so that pressing
        Decide finds it done. Only the latest request waits its turn; older ones not yet started are dropped."""
        self.go()
        key = self.job_key(application, dataset, reference, writer, notice_settings)
        with self._lock:
            if key in self._jobs:
                return
            job = self._jobs[key] = Job()
            self._latest = key
            while len(self._jobs) > JOBS_KEPT:
                self._jobs.pop(next(iter(self._jobs)))
        threading.Thread(target=self._run_job, args=(key, job, application, dataset, reference, writer, notice_settings),
                         name="lendsafe-prefetch", daemon=False).start()

    def _run_job(self, key: str, job: "Job", *args: Any) -> None:
        with self._run_lock:
            if key != self._latest and not job.wanted:
                job.finish(None)                       # the analyst moved on before it started
                return
            try:
                job.finish(self._draft_now(*args, stage=lambda name, text: job.stages.append((name, text))))
            except Exception as exc:  # noqa: BLE001 - the page decides again and shows the error itself
                job.finish(None, f"{type(exc).__name__}: {exc}")

    def draft(self, application: dict[str, Any], dataset: str, reference: str, writer: str,
              notice_settings: Any, stage: Stage = lambda name, text: None) -> "Draft":
        """Decide ``application`` without issuing or recording anything; ``stage`` hears each step (a draft
        started in the background is waited for and its stages told)."""
        key = self.job_key(application, dataset, reference, writer, notice_settings)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                job.wanted = True
        if job is not None:
            job.done.wait(PREFETCH_WAIT_S)
            if job.draft is not None:
                for name, text in job.stages:
                    stage(name, text)
                return job.draft
        with self._run_lock:
            return self._draft_now(application, dataset, reference, writer, notice_settings, stage=stage)

    def _draft_now(self, application: dict[str, Any], dataset: str, reference: str, writer: str,
                   notice_settings: Any, stage: Stage = lambda name, text: None) -> "Draft":
        from lendsafe.explain.verify import verify

        self.wait_for_imports()
        loading = writer != "template" and self.llm_loading
        pipeline = self.pipeline(dataset, reference, writer)
        scored = pipeline.scorer.score(application, reference)
        stage("scoring", f"risk {scored.risk:.1%} against a threshold of {scored.threshold:.1%}: "
                         f"{'denied' if scored.denied else 'approved'}")
        if not self._knowledge_ready.is_set() and self.thread.is_alive():
            stage("retrieval", "waiting for the regulation index to load")
            self.wait_for_knowledge()
        passages = pipeline.citations_for(scored)
        stage("retrieval", f"{len(passages)} regulation passages retrieved")
        if loading:
            stage("writing", f"the language model is still loading ({self.parts['language model'].seconds():.0f} s "
                             "so far): the template writer drafts this explanation")
        decision = pipeline.run(application, reference)
        if decision.writer == "template" and writer != "template" and self.settings.use_llm:
            failed = self.parts["language model"].error
            reason = LOADING_REASON if loading else f"language model unavailable ({failed})" if failed else None
            decision = decision.with_updates(writer_reason=reason) if reason else decision
        stage("writing", f"explanation written by the {writer_words(decision.writer)}")
        report = verify(decision, decision.explanation or "")
        stage("verification", f"{sum(c.passed for c in report.checks)} of {len(report.checks)} checks passed")
        preview = draft_pdf(decision, notice_settings) if decision.denied else None
        stage("PDF", "draft notice rendered (stamped DRAFT, not issued)" if preview else "approved: no notice")
        return Draft(decision, preview, loading)


JOBS_KEPT = 16
PREFETCH_WAIT_S = 300.0


@dataclass
class Job:
    """A draft being made in the background: its stages as they happen, then the draft (or None)."""

    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    stages: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    draft: Any = None
    error: str | None = None
    wanted: bool = False

    def finish(self, draft: Any, error: str | None = None) -> None:
        self.draft, self.error = draft, error
        self.done.set()


@dataclass(frozen=True)
class Draft:
    """A what-if decision: nothing issued, nothing recorded."""

    decision: Any
    pdf: bytes | None
    written_while_loading: bool = False


WRITER_WORDS = {"lora": "language model (LoRA adapter), verified", "template": "template writer (deterministic)",
                "auto": "language model, verified (template writer if its text fails)"}


def writer_words(writer: str | None) -> str:
    return WRITER_WORDS.get(writer or "", writer or "unknown writer")


def draft_pdf(decision: Any, notice_settings: Any) -> bytes:
    """The notice a decision would get, stamped DRAFT on every page: a preview, never sent or recorded."""
    from lendsafe.decide.scoring import Scorer
    from lendsafe.issue.issuer import educational_sentences
    from lendsafe.notice import build_notice, render_pdf

    educational = educational_sentences(decision, Scorer.load(decision.dataset), notice_settings)
    notice = build_notice(decision, notice_settings, educational=educational)
    text = {**notice.wording["text"], "specimen_mark": DRAFT_MARK, "specimen_header": DRAFT_HEADER}
    return render_pdf(dataclasses.replace(notice, specimen=True, wording={**notice.wording, "text": text}))


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine(settings: Settings) -> Engine:
    """The process's engine for these settings (the dataset aside), started on first use."""
    base = dataclasses.replace(settings, dataset=Settings.__dataclass_fields__["dataset"].default,
                               reference=Settings.__dataclass_fields__["reference"].default)
    key = repr(base)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(base).start()
        return _ENGINES[key]
