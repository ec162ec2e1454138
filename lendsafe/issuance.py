"""Issue decisions: decide, render the notice for a denial, check it, and record it in the audit store.

The CLI, the dashboard and batch runs all issue through ``Issuer`` so that every decision an
applicant could receive is kept (12 CFR 1002.12(b)) with exactly the notice that was produced.
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass
from typing import Any

from lendsafe.config import Settings
from lendsafe.decision import Decision


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

    def render(self, decision: Decision, *, notice_date: dt.date | str | None = None,
               counteroffer: str | None = None) -> tuple[Any, bytes | None, Any]:
        from lendsafe.notice import build_notice, check_pdf, render_pdf

        if not decision.denied:
            return None, None, None
        notice = build_notice(decision, self.notice_settings, notice_date=notice_date, counteroffer=counteroffer)
        pdf = render_pdf(notice)
        return notice, pdf, check_pdf(pdf, decision, self.notice_settings)

    def record(self, decision: Decision, notice: Any, pdf: bytes | None) -> int | None:
        [record_id] = self.record_many([(decision, notice, pdf)])
        return record_id

    def record_many(self, entries: list[tuple[Decision, Any, bytes | None]]) -> list[int | None]:
        """Audit ids of (decision, notice, pdf) entries recorded in one transaction (None without a store)."""
        if self.audit is None:
            return [None] * len(entries)
        stored = self.audit.record_many(entries, actor=self.actor, notice_settings=self.notice_settings)
        return [record.id for record in stored]
