"""Issue decisions: decide, re-verify the explanation a notice prints, render the notice for a denial,
check it, and record it in the audit store; or, for an application that lacks required fields, issue
the notice of incompleteness (12 CFR 1002.9(c)(2)).

The CLI, the dashboard and batch runs all issue through ``Issuer`` so that every decision an
applicant could receive is kept (12 CFR 1002.12(b)) with exactly the notice that was produced, and
no notice prints an explanation the verifier has not passed at the moment of issue. A notice that
fails its completeness check, or whose explanation fails verification at issue, is not issued: it is
recorded as a refusal (what was refused and why) and ``IssueRefused`` is raised.
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from lendsafe.config import Settings
from lendsafe.decide.decision import Decision
from lendsafe.errors import LendSafeError


ADVERSE_ACTION, INCOMPLETENESS = "adverse-action notice", "notice of incompleteness"


class IssueRefused(LendSafeError, ValueError):
    """A notice refused at issue: nothing is sent; ``refusal()`` is what the audit store records."""

    reason = ""

    def __init__(self, message: str, failures: dict[str, str], *, document: str = ADVERSE_ACTION,
                 decision: Decision | None = None, record: dict[str, Any] | None = None, notice: Any = None):
        self.failures, self.document = dict(failures), document
        self.decision, self.record, self.notice = decision, record, notice
        super().__init__(message)

    def refusal(self, issue_key: str | None = None) -> Any:
        """The audit entry recording this refusal (``lendsafe.audit.store.RefusalEntry``)."""
        from lendsafe.audit.store import RefusalEntry

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
    from lendsafe.errors import InvalidApplicationError
    from lendsafe.notice.document import date_problems

    problems = date_problems(decision.application or {})
    if problems:
        raise InvalidApplicationError(problems)


def explanation_failures(decision: Decision) -> dict[str, str]:
    """Check name -> detail for every verifier check the decision's explanation fails now (none: {})."""
    from lendsafe.explain.verify import verify

    if not decision.denied or not decision.explanation:
        return {}
    report = verify(decision, decision.explanation)
    return {c.check: c.detail for c in report.checks if not c.passed}


@dataclass(frozen=True)
class Issued:
    """One issued decision: its notice (denials only), the PDF bytes, the PDF check and the audit id."""

    decision: Decision
    notice: Any | None = None
    pdf: bytes | None = None
    check: Any | None = None
    record_id: int | None = None

    @property
    def passed(self) -> bool:
        """True when there is no notice, or the notice passed its completeness check."""
        return self.check is None or self.check.passed


@dataclass(frozen=True)
class IssuedIncomplete:
    """One notice of incompleteness: what it states (record), the notice, its PDF and the PDF check."""

    record: dict[str, Any]
    notice: Any
    pdf: bytes
    check: Any
    record_id: int | None = None        # its audit record (None without a store)

    def entry(self, issue_key: str | None = None, batch: str | None = None) -> Any:
        """The audit entry recording this notice (``lendsafe.audit.store.IncompleteEntry``)."""
        from lendsafe.audit.store import IncompleteEntry

        stated = {k: v for k, v in self.record.items() if k not in ("notice_date", "document_id")}
        return IncompleteEntry(stated, self.notice, self.pdf, issue_key, batch)

    @property
    def passed(self) -> bool:
        return self.check.passed


def open_audit_store(settings: Settings | None = None):
    """The audit store at ``settings.database_url`` (SQLite under LENDSAFE_HOME by default)."""
    from lendsafe.audit.store import AuditStore

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
    """Decides applications with a pipeline and issues their notices, recording each one."""

    def __init__(self, pipeline: Any, *, notice_settings: Any = None, audit: Any = None,
                 actor: str | None = None):
        from lendsafe.notice.document import NoticeSettings

        self.pipeline = pipeline
        self.notice_settings = notice_settings or NoticeSettings()
        self.audit = audit
        self.actor = actor or default_actor("library")

    def issue(self, application: dict[str, Any], *, reference: str | None = None,
              notice_date: dt.date | str | None = None, counteroffer: str | None = None) -> Issued:
        decision = self.pipeline.run(application, reference)
        return self.issue_decision(decision, notice_date=notice_date, counteroffer=counteroffer)

    def issue_many(self, applications: list[dict[str, Any]], *, reference: str | None = None,
                   notice_date: dt.date | str | None = None) -> list[Issued]:
        decisions = self.pipeline.run_many(applications, reference)
        return self.issue_decisions(decisions, notice_date=notice_date)

    def issue_decisions(self, decisions: list[Decision], *,
                        notice_date: dt.date | str | None = None) -> list[Issued]:
        """Render and check every notice, then record all the decisions in one audit transaction."""
        with self.recording_refusals():
            rendered = [(decision, *self.render(decision, notice_date=notice_date)) for decision in decisions]
        record_ids = self.record_many([(decision, notice, pdf) for decision, notice, pdf, _ in rendered])
        return [Issued(*issued, record_id) for issued, record_id in zip(rendered, record_ids)]

    def issue_decision(self, decision: Decision, *, notice_date: dt.date | str | None = None,
                       counteroffer: str | None = None) -> Issued:
        """Render, check and record the notice of a decision already made (approvals: record only); a refused
        notice is recorded as a refusal and IssueRefused raised."""
        with self.recording_refusals():
            notice, pdf, check = self.render(decision, notice_date=notice_date, counteroffer=counteroffer)
        record_id = self.record(decision, notice, pdf)
        return Issued(decision, notice, pdf, check, record_id)

    def issue_incomplete(self, triaged: Any, dataset: str, *, notice_date: dt.date | str | None = None,
                         document_id: str | None = None) -> IssuedIncomplete:
        """Render, check and record the notice of incompleteness of a triaged application
        (``lendsafe.notice.incomplete.triage``); a refused notice is recorded as a refusal and IssueRefused raised."""
        with self.recording_refusals():
            issued = self.render_incomplete(triaged, dataset, notice_date=notice_date, document_id=document_id)
        [appended] = self.append([issued.entry()])
        return replace(issued, record_id=appended and appended.record.id)

    def render_incomplete(self, triaged: Any, dataset: str, *, notice_date: dt.date | str | None = None,
                          document_id: str | None = None) -> IssuedIncomplete:
        """The notice of incompleteness of a triaged application, checked, not yet recorded; NoticeCheckError
        when it fails its check."""
        from lendsafe.notice.incomplete import (build_incomplete_notice, check_incomplete_pdf, incompleteness_record,
                                         render_incomplete_pdf)

        record = incompleteness_record(triaged, dataset)
        notice = build_incomplete_notice(record, self.notice_settings, notice_date=notice_date,
                                         document_id=document_id)
        pdf = render_incomplete_pdf(notice)
        check = check_incomplete_pdf(pdf, record, self.notice_settings, notice_date=notice.notice_date,
                                     document_id=notice.document_id)
        refuse_failed(notice, check, document=INCOMPLETENESS, record=record)
        return IssuedIncomplete({**record, "notice_date": notice.notice_date, "document_id": notice.document_id},
                                notice, pdf, check)

    @contextmanager
    def recording_refusals(self, issue_key: str | None = None) -> Iterator[None]:
        """Record an IssueRefused raised inside the block as a refusal (when there is a store), then re-raise."""
        try:
            yield
        except IssueRefused as refused:
            self.append([refused.refusal(issue_key)])
            raise

    def verify_explanation(self, decision: Decision) -> None:
        """Raise UnverifiedExplanationError when the explanation a notice would print fails the verifier."""
        failures = explanation_failures(decision)
        if failures:
            raise UnverifiedExplanationError(decision, failures)

    def render(self, decision: Decision, *, notice_date: dt.date | str | None = None,
               counteroffer: str | None = None, document_id: str | None = None) -> tuple[Any, bytes | None, Any]:
        """(notice, PDF, check) of a denial, its explanation verified again first and the notice refused
        (NoticeCheckError) when it fails its completeness check; (None, None, None) for an approval."""
        from lendsafe.notice.document import build_notice, check_pdf, render_pdf

        check_dates(decision)
        if not decision.denied:
            return None, None, None
        self.verify_explanation(decision)
        notice = build_notice(decision, self.notice_settings, notice_date=notice_date, counteroffer=counteroffer,
                              document_id=document_id)
        pdf = render_pdf(notice)
        check = check_pdf(pdf, decision, self.notice_settings)
        refuse_failed(notice, check, decision=decision)
        return notice, pdf, check

    def record(self, decision: Decision, notice: Any, pdf: bytes | None) -> int | None:
        [record_id] = self.record_many([(decision, notice, pdf)])
        return record_id

    def record_many(self, entries: list[tuple[Decision, Any, bytes | None]],
                    keys: list[str] | None = None) -> list[int | None]:
        """Audit ids of (decision, notice, pdf) entries recorded in one transaction (None without a store);
        `keys` are the entries' issue keys (what a batch finds them by when it resumes)."""
        keys = keys or [None] * len(entries)
        appended = self.append([(*entry, key) for entry, key in zip(entries, keys)])
        return [None if item is None else item.record.id for item in appended]

    def append(self, entries: list[Any]) -> list[Any]:
        """``AuditStore.append`` of audit entries (decisions, notices of incompleteness, refusals) in one
        transaction, with this issuer's actor and settings; a None per entry without a store."""
        if self.audit is None:
            return [None] * len(entries)
        return self.audit.append(entries, actor=self.actor, notice_settings=self.notice_settings)
