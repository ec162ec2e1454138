"""Issue decisions: decide, re-verify the explanation a notice prints, render the notice for a denial,
check it, and record it in the audit store; or, for an application that lacks required fields, issue
the notice of incompleteness (12 CFR 1002.9(c)(2)).

``Issuer.issue`` is the one way a notice and its audit record are made: the CLI, the dashboard and
batch runs all issue through an ``Issuer``, so that every decision an applicant could receive is kept
(12 CFR 1002.12(b)) with exactly the notice that was produced, and no notice prints an explanation
the verifier has not passed at the moment of issue. A notice that fails its completeness check, or
whose explanation fails verification at issue, is not issued: it is recorded as a refusal (what was
refused and why) and ``IssueRefused`` is raised. ``render_notice`` renders and checks a notice and
records nothing (evaluation, previews).
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from lendsafe.audit.records import AuditEntry, IncompleteEntry, RefusalEntry
from lendsafe.audit.store import AuditStore
from lendsafe.config import Settings
from lendsafe.decide.decision import Decision
from lendsafe.decide.scoring import Scorer
from lendsafe.errors import InvalidApplicationError, LendSafeError
from lendsafe.explain.pipeline import Pipeline
from lendsafe.explain.verify import verify
from lendsafe.notice import Notice, NoticeSettings, build_notice, check_pdf, render_pdf
from lendsafe.notice.context import NoticeCheck
from lendsafe.notice.dates import date_problems
from lendsafe.notice.incomplete import (IncompleteNotice, Triage, build_incomplete_notice, check_incomplete_pdf,
                                        incompleteness_record, missing_fields, render_incomplete_pdf, triage)
from lendsafe.recourse import RecourseSettings, educational_section, find_recourse

ADVERSE_ACTION, INCOMPLETENESS = "adverse-action notice", "notice of incompleteness"
Date = dt.date | str | None


class IssueRefused(LendSafeError, ValueError):
    """A notice refused at issue: nothing is sent; ``refusal()`` is what the audit store records."""

    reason = ""

    def __init__(self, message: str, failures: dict[str, str], *, document: str = ADVERSE_ACTION,
                 decision: Decision | None = None, record: dict[str, Any] | None = None, notice: Any = None):
        self.failures, self.document = dict(failures), document
        self.decision, self.record, self.notice = decision, record, notice
        super().__init__(message)

    def refusal(self, issue_key: str | None = None) -> RefusalEntry:
        """The audit entry recording this refusal."""
        return RefusalEntry(self.document, self.reason, self.failures, self.decision, self.record, self.notice,
                            issue_key)


class UnverifiedExplanationError(IssueRefused):
    """The explanation a notice would print fails the verifier at issue time: nothing is issued."""

    reason = "explanation verification"

    def __init__(self, decision: Decision, failures: dict[str, str]):
        who = decision.application.get("application_id") or "the application"
        super().__init__(f"notice not issued for {who}: its explanation (writer {decision.writer or 'unknown'}) "
                         "fails verification at issue time: "
                         + "; ".join(f"{name}: {detail}" for name, detail in failures.items()),
                         failures, decision=decision)


class NoticeCheckError(IssueRefused):
    """A notice fails its own completeness check: it is not issued, nothing is recorded as issued."""

    reason = "completeness check"

    def __init__(self, document_id: str, failures: dict[str, str], **subject: Any):
        self.problems = [f"notice {document_id} not issued: it fails its completeness check ({name}: {detail})"
                         for name, detail in dict(failures).items()]
        super().__init__("; ".join(self.problems), failures, **subject)


def refuse_failed(notice: Any, check: Any, **subject: Any) -> None:
    """Raise NoticeCheckError (naming `subject`: document, decision or record) when the rendered notice
    failed its completeness check."""
    if not check.passed:
        raise NoticeCheckError(notice.document_id, check.failures(), notice=notice, **subject)


def check_dates(decision: Decision) -> None:
    """Refuse (InvalidApplicationError naming the field) a decision whose dates no notice may print."""
    problems = date_problems(decision.application or {})
    if problems:
        raise InvalidApplicationError(problems)


def explanation_failures(decision: Decision) -> dict[str, str]:
    """Check name -> detail for every verifier check the decision's explanation fails now (none: {})."""
    if not decision.denied or not decision.explanation:
        return {}
    report = verify(decision, decision.explanation)
    return {c.check: c.detail for c in report.checks if not c.passed}


def verify_explanation(decision: Decision) -> None:
    """Raise UnverifiedExplanationError when the explanation a notice would print fails the verifier."""
    failures = explanation_failures(decision)
    if failures:
        raise UnverifiedExplanationError(decision, failures)


class Rendered(NamedTuple):
    """A denial's notice, its PDF and the PDF's completeness check (all None for an approval)."""

    notice: Notice | None
    pdf: bytes | None
    check: NoticeCheck | None


def render_notice(decision: Decision, settings: NoticeSettings | None = None, *, notice_date: Date = None,
                  counteroffer: str | None = None, document_id: str | None = None,
                  educational: tuple[str, ...] = ()) -> Rendered:
    """The checked notice of a denial, recorded nowhere: dates checked, the explanation verified again,
    the notice refused (NoticeCheckError) when it fails its completeness check; all None for an approval.
    `educational` is the lender's educational section (``educational_sentences``), printed as given."""
    settings = settings or NoticeSettings()
    check_dates(decision)
    if not decision.denied:
        return Rendered(None, None, None)
    verify_explanation(decision)
    notice = build_notice(decision, settings, notice_date=notice_date, counteroffer=counteroffer,
                          document_id=document_id, educational=educational)
    pdf = render_pdf(notice)
    check = check_pdf(pdf, notice, decision, settings)
    refuse_failed(notice, check, decision=decision)
    return Rendered(notice, pdf, check)


def educational_sentences(decision: Decision, scorer: Any, settings: NoticeSettings) -> tuple[str, ...]:
    """The educational section of a denial's notice when the lender turns it on: the options that the same
    model, re-scoring them, approves, in the recourse wording that promises nothing; () otherwise."""
    if not (settings.educational_section and decision.denied):
        return ()
    recourse = find_recourse(scorer, decision.application, decision.reference)
    chosen = RecourseSettings(educational_section=True, educational_options=settings.educational_options)
    return educational_section(scorer.spec, recourse, chosen)


@dataclass(frozen=True)
class Issued:
    """One issued decision: its notice (denials only), the PDF bytes, the PDF check and the audit id."""

    decision: Decision
    notice: Notice | None = None
    pdf: bytes | None = None
    check: NoticeCheck | None = None
    record_id: int | None = None

    @property
    def passed(self) -> bool:
        """True when there is no notice, or the notice passed its completeness check."""
        return self.check is None or self.check.passed


@dataclass(frozen=True)
class IssuedIncomplete:
    """One notice of incompleteness: what it states (record), the notice, its PDF and the PDF check."""

    record: dict[str, Any]
    notice: IncompleteNotice
    pdf: bytes
    check: NoticeCheck
    record_id: int | None = None        # its audit record (None without a store)

    def entry(self, issue_key: str | None = None, batch: str | None = None) -> IncompleteEntry:
        """The audit entry recording this notice."""
        stated = {k: v for k, v in self.record.items() if k not in ("notice_date", "document_id")}
        return IncompleteEntry(stated, self.notice, self.pdf, issue_key, batch)

    @property
    def passed(self) -> bool:
        return self.check.passed


def render_incompleteness(triaged: Triage, dataset: str, settings: NoticeSettings | None = None, *,
                          notice_date: Date = None, document_id: str | None = None) -> IssuedIncomplete:
    """The checked notice of incompleteness of a triaged application, recorded nowhere; NoticeCheckError
    when it fails its check."""
    settings = settings or NoticeSettings()
    record = incompleteness_record(triaged, dataset)
    notice = build_incomplete_notice(record, settings, notice_date=notice_date, document_id=document_id)
    pdf = render_incomplete_pdf(notice)
    check = check_incomplete_pdf(pdf, record, settings, notice_date=notice.notice_date,
                                 document_id=notice.document_id)
    refuse_failed(notice, check, document=INCOMPLETENESS, record=record)
    return IssuedIncomplete({**record, "notice_date": notice.notice_date, "document_id": notice.document_id},
                            notice, pdf, check)


def open_audit_store(settings: Settings | None = None) -> AuditStore:
    """The audit store at ``settings.database_url`` (SQLite under LENDSAFE_HOME by default)."""
    settings = settings if isinstance(settings, Settings) else Settings()
    settings.ensure_home()
    return AuditStore(settings.database_url)


def default_actor(channel: str) -> str:
    """``channel:user`` (e.g. ``cli:analyst``) for records made without a named actor."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "unknown")
    return f"{channel}:{user}"


class Issuer:
    """Decides applications with a pipeline, issues their notices and records each one as ``actor``.

    ``issue`` is the one way a notice and its audit record are made. Without an audit store nothing is
    recorded (``record_id`` is None); without notice settings every notice is stamped SPECIMEN.

    >>> issuer = Issuer(Pipeline(), notice_settings=NoticeSettings.from_file("lender.toml"),
    ...                 audit=open_audit_store(), actor="cli:analyst")
    >>> issued = issuer.issue(application)               # decide, verify, render, check, record
    >>> issued.decision.decision, issued.notice.document_id, issued.record_id
    ('deny', 'AAN-20260302-...', 1)
    >>> issuer.issue(issued.decision)                   # a decision already made: issued as it is
    """

    def __init__(self, pipeline: Pipeline | None, *, notice_settings: NoticeSettings | None = None,
                 audit: AuditStore | None = None, actor: str | None = None):
        self.pipeline = pipeline
        self.notice_settings = notice_settings or NoticeSettings()
        self.audit = audit
        self.actor = actor or default_actor("library")

    @property
    def dataset(self) -> str:
        """The dataset the pipeline decides (its settings' when it names none)."""
        return getattr(self.pipeline, "dataset", None) or self.pipeline.settings.dataset

    def issue(self, application: Mapping[str, Any] | Decision, *, reference: str | None = None,
              notice_date: Date = None, counteroffer: str | None = None,
              incomplete: bool = False) -> Issued | IssuedIncomplete:
        """Decide `application` (a ``Decision`` already made is issued as it is), then render, check and
        record its notice (approvals: the record only). With `incomplete`, an application that lacks
        required fields gets the notice of incompleteness naming them instead (``IssuedIncomplete``).
        A refused notice is recorded as a refusal and IssueRefused raised."""
        if incomplete and isinstance(application, dict) and missing_fields(application, self.dataset):
            return self.issue_incomplete(triage(application, self.dataset), self.dataset, notice_date=notice_date)
        decision = application if isinstance(application, Decision) else self.pipeline.run(application, reference)
        with self.recording_refusals():
            rendered = self.render(decision, notice_date=notice_date, counteroffer=counteroffer)
        return Issued(decision, *rendered, self.record(decision, rendered.notice, rendered.pdf))

    def issue_many(self, applications: list[dict[str, Any]], *, reference: str | None = None,
                   notice_date: Date = None) -> list[Issued]:
        """``issue`` for several applications: decided together, recorded in one audit transaction."""
        return self.issue_decisions(self.pipeline.run_many(applications, reference), notice_date=notice_date)

    def issue_decisions(self, decisions: list[Decision], *, notice_date: Date = None) -> list[Issued]:
        """Render and check every notice, then record all the decisions in one audit transaction."""
        with self.recording_refusals():
            rendered = [(decision, *self.render(decision, notice_date=notice_date)) for decision in decisions]
        record_ids = self.record_many([(decision, notice, pdf) for decision, notice, pdf, _ in rendered])
        return [Issued(*issued, record_id) for issued, record_id in zip(rendered, record_ids)]

    def issue_incomplete(self, triaged: Triage, dataset: str, *, notice_date: Date = None,
                         document_id: str | None = None) -> IssuedIncomplete:
        """Render, check and record the notice of incompleteness of a triaged application; a refused notice
        is recorded as a refusal and IssueRefused raised."""
        with self.recording_refusals():
            issued = self.render_incomplete(triaged, dataset, notice_date=notice_date, document_id=document_id)
        [appended] = self.append([issued.entry()])
        return replace(issued, record_id=appended and appended.record.id)

    def record_decision(self, application: Mapping[str, Any], *, reference: str | None = None) -> Issued:
        """Decide `application` and record the decision without a notice (what `lendsafe explain` keeps)."""
        decision = self.pipeline.run(application, reference)
        return Issued(decision, record_id=self.record(decision, None, None))

    def render(self, decision: Decision, *, notice_date: Date = None, counteroffer: str | None = None,
               document_id: str | None = None) -> Rendered:
        """``render_notice`` with this issuer's settings (and, when they turn it on, the educational section
        from the pipeline's scorer): checked, not recorded."""
        educational = (educational_sentences(decision, self.scorer(decision), self.notice_settings)
                       if self.notice_settings.educational_section else ())
        return render_notice(decision, self.notice_settings, notice_date=notice_date, counteroffer=counteroffer,
                             document_id=document_id, educational=educational)

    def render_incomplete(self, triaged: Triage, dataset: str, *, notice_date: Date = None,
                          document_id: str | None = None) -> IssuedIncomplete:
        """``render_incompleteness`` with this issuer's settings: checked, not recorded."""
        return render_incompleteness(triaged, dataset, self.notice_settings, notice_date=notice_date,
                                     document_id=document_id)

    def scorer(self, decision: Decision) -> Any:
        """The pipeline's scorer, or (an issuer without a pipeline: reviews) the decision's dataset's."""
        return self.pipeline.scorer if self.pipeline is not None else Scorer.load(decision.dataset)

    @contextmanager
    def recording_refusals(self, issue_key: str | None = None) -> Iterator[None]:
        """Record an IssueRefused raised inside the block as a refusal (when there is a store), then re-raise."""
        try:
            yield
        except IssueRefused as refused:
            self.append([refused.refusal(issue_key)])
            raise

    def issue_reviewed(self, decision: Decision, *, issue_key: str, review: Mapping[str, Any],
                       unless: tuple[str, ...] = (), notice_date: Date = None) -> tuple[Issued, bool]:
        """Issue a decision a reviewer approved (``lendsafe.review``): rendered and checked like ``issue``,
        recorded with its ``review`` section under ``issue_key`` unless one of the keys ``unless`` is already
        recorded. Returns (issued, new): not new when another process recorded that key (or one of ``unless``)
        first; ``issued.record_id`` then names that record and nothing was issued here. A refused notice is
        recorded as a refusal naming ``issue_key`` (not taken) and IssueRefused raised."""
        with self.recording_refusals(issue_key):
            rendered = self.render(decision, notice_date=notice_date)
        [appended] = self.append([AuditEntry(decision, rendered.notice, rendered.pdf, issue_key, None, dict(review))],
                                 unless=unless)
        if appended is None:
            return Issued(decision, *rendered), True
        return Issued(decision, *rendered, appended.record.id), appended.new

    def record(self, decision: Decision, notice: Notice | None, pdf: bytes | None) -> int | None:
        [record_id] = self.record_many([(decision, notice, pdf)])
        return record_id

    def record_many(self, entries: list[tuple[Decision, Notice | None, bytes | None]],
                    keys: list[str] | None = None) -> list[int | None]:
        """Audit ids of (decision, notice, pdf) entries recorded in one transaction (None without a store);
        `keys` are the entries' issue keys (what a batch finds them by when it resumes)."""
        keys = keys or [None] * len(entries)
        appended = self.append([AuditEntry(*entry, key) for entry, key in zip(entries, keys)])
        return [None if item is None else item.record.id for item in appended]

    def append(self, entries: list[Any], *, unless: tuple[str, ...] = ()) -> list[Any]:
        """``AuditStore.append`` of audit entries (decisions, notices of incompleteness, refusals, review
        actions) in one transaction, with this issuer's actor and settings; a None per entry without a store.
        ``unless``: issue keys whose presence stops the append (see ``AuditStore.append``)."""
        if self.audit is None:
            return [None] * len(entries)
        return self.audit.append(entries, actor=self.actor, notice_settings=self.notice_settings, unless=unless)
