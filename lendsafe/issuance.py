"""Issue decisions: decide, re-verify the explanation a notice prints, render the notice for a denial,
check it, and record it in the audit store; or, for an application that lacks required fields, issue
the notice of incompleteness (12 CFR 1002.9(c)(2)).

The CLI, the dashboard and batch runs all issue through ``Issuer`` so that every decision an
applicant could receive is kept (12 CFR 1002.12(b)) with exactly the notice that was produced, and
no notice prints an explanation the verifier has not passed at the moment of issue.
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass
from typing import Any

from lendsafe.config import Settings
from lendsafe.decision import Decision
from lendsafe.errors import LendSafeError


class UnverifiedExplanationError(LendSafeError, ValueError):
    """The explanation a notice would print fails the verifier at issue time: nothing is issued."""

    def __init__(self, decision: Decision, failures: dict[str, str]):
        self.failures = failures
        who = decision.application.get("application_id") or "the application"
        super().__init__(f"notice not issued for {who}: its explanation (writer {decision.writer or 'unknown'}) "
                         "fails verification at issue time: "
                         + "; ".join(f"{name}: {detail}" for name, detail in failures.items()))


class NoticeCheckError(LendSafeError, ValueError):
    """A notice fails its own completeness check: it is not issued, nothing is recorded as issued."""

    def __init__(self, document_id: str, failures: dict[str, str]):
        self.failures = dict(failures)
        self.problems = [f"notice {document_id} not issued: it fails its completeness check ({name}: {detail})"
                         for name, detail in self.failures.items()]
        super().__init__("; ".join(self.problems))


def refuse_failed(notice: Any, check: Any) -> None:
    """Raise NoticeCheckError when the rendered notice failed its completeness check."""
    if not check.passed:
        raise NoticeCheckError(notice.document_id, check.failures())


def check_dates(decision: Decision) -> None:
    """Refuse (InvalidApplicationError naming the field) a decision whose dates no notice may print."""
    from lendsafe.errors import InvalidApplicationError
    from lendsafe.notice import date_problems

    problems = date_problems(decision.application or {})
    if problems:
        raise InvalidApplicationError(problems)


def explanation_failures(decision: Decision) -> dict[str, str]:
    """Check name -> detail for every verifier check the decision's explanation fails now (none: {})."""
    from lendsafe.verify import verify

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
    record_id: int | None = None        # incompleteness notices are not in the decision audit store

    @property
    def passed(self) -> bool:
        return self.check.passed


def open_audit_store(settings: Settings | None = None):
    """The audit store at ``settings.database_url`` (SQLite under LENDSAFE_HOME by default)."""
    from lendsafe.audit import AuditStore

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
        from lendsafe.notice import NoticeSettings

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
        rendered = [(decision, *self.render(decision, notice_date=notice_date)) for decision in decisions]
        record_ids = self.record_many([(decision, notice, pdf) for decision, notice, pdf, _ in rendered])
        return [Issued(*issued, record_id) for issued, record_id in zip(rendered, record_ids)]

    def issue_decision(self, decision: Decision, *, notice_date: dt.date | str | None = None,
                       counteroffer: str | None = None) -> Issued:
        """Render, check and record the notice of a decision already made (approvals: record only)."""
        notice, pdf, check = self.render(decision, notice_date=notice_date, counteroffer=counteroffer)
        record_id = self.record(decision, notice, pdf)
        return Issued(decision, notice, pdf, check, record_id)

    def issue_incomplete(self, triaged: Any, dataset: str, *, notice_date: dt.date | str | None = None,
                         document_id: str | None = None) -> IssuedIncomplete:
        """The notice of incompleteness of a triaged application (``lendsafe.incomplete.triage``)."""
        from lendsafe.incomplete import (build_incomplete_notice, check_incomplete_pdf, incompleteness_record,
                                         render_incomplete_pdf)

        record = incompleteness_record(triaged, dataset)
        notice = build_incomplete_notice(record, self.notice_settings, notice_date=notice_date,
                                         document_id=document_id)
        pdf = render_incomplete_pdf(notice)
        check = check_incomplete_pdf(pdf, record, self.notice_settings, notice_date=notice.notice_date,
                                     document_id=notice.document_id)
        refuse_failed(notice, check)
        return IssuedIncomplete({**record, "notice_date": notice.notice_date, "document_id": notice.document_id},
                                notice, pdf, check)

    def verify_explanation(self, decision: Decision) -> None:
        """Raise UnverifiedExplanationError when the explanation a notice would print fails the verifier."""
        failures = explanation_failures(decision)
        if failures:
            raise UnverifiedExplanationError(decision, failures)

    def render(self, decision: Decision, *, notice_date: dt.date | str | None = None,
               counteroffer: str | None = None, document_id: str | None = None) -> tuple[Any, bytes | None, Any]:
        """(notice, PDF, check) of a denial, its explanation verified again first and the notice refused
        (NoticeCheckError) when it fails its completeness check; (None, None, None) for an approval."""
        from lendsafe.notice import build_notice, check_pdf, render_pdf

        check_dates(decision)
        if not decision.denied:
            return None, None, None
        self.verify_explanation(decision)
        notice = build_notice(decision, self.notice_settings, notice_date=notice_date, counteroffer=counteroffer,
                              document_id=document_id)
        pdf = render_pdf(notice)
        check = check_pdf(pdf, decision, self.notice_settings)
        refuse_failed(notice, check)
        return notice, pdf, check

    def record(self, decision: Decision, notice: Any, pdf: bytes | None) -> int | None:
        [record_id] = self.record_many([(decision, notice, pdf)])
        return record_id

    def record_many(self, entries: list[tuple[Decision, Any, bytes | None]],
                    keys: list[str] | None = None) -> list[int | None]:
        """Audit ids of (decision, notice, pdf) entries recorded in one transaction (None without a store);
        `keys` are the entries' issue keys (what a batch finds them by when it resumes)."""
        if self.audit is None:
            return [None] * len(entries)
        keys = keys or [None] * len(entries)
        stored = self.audit.record_many([(*entry, key) for entry, key in zip(entries, keys)], actor=self.actor,
                                        notice_settings=self.notice_settings)
        return [record.id for record in stored]
