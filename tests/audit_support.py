"""Shared by the audit tests: decisions to record, a controllable clock, store fixtures on SQLite and on a real
PostgreSQL server (``pg_server.py``; if it cannot start, the PostgreSQL tests fail with the reason), raw SQL
from outside the library, and helpers that run writers in other processes.

A test module takes the fixtures by importing them: ``from audit_support import clock, db_url, store``.
"""
from __future__ import annotations

import multiprocessing
from datetime import date, datetime, timedelta, timezone

import pytest

from lendsafe.audit.records import AuditEntry
from lendsafe.audit.store import AuditStore
from lendsafe.decide.decision import Citation, Decision, Reason
from lendsafe.notice import NoticeSettings, build_notice, render_pdf

FORK = multiprocessing.get_context("fork")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

CATALOG = {  # code -> (statement, feature, value, display value, contribution)
    "DEBT_TO_INCOME": ("Excessive obligations in relation to income", "dir", 0.52, "52%", 0.91),
    "CONSUMER_CREDIT_HISTORY": ("Delinquent past or present credit obligations with others", "ccs", 5, "5", 0.44),
    "LOAN_TO_VALUE": ("Value of collateral not sufficient for the amount of credit requested", "lvr", 0.97,
                      "97%", 0.21),
}

# Statements that switch a backend's append-only guards off for one transaction (tampering tests).
BYPASS_GUARDS = {
    "sqlite": ("DROP TRIGGER audit_records_no_update", "DROP TRIGGER audit_records_no_delete",
               "DROP TRIGGER audit_purges_no_update", "DROP TRIGGER audit_purges_no_delete"),
    "postgresql": ("SET LOCAL session_replication_role = replica",),
}


def make_decision(n: int = 0, *, decision: str = "deny", dataset: str = "hmda", writer: str = "template",
                  codes: tuple[str, ...] = ("DEBT_TO_INCOME", "CONSUMER_CREDIT_HISTORY")) -> Decision:
    """A complete decision as the pipeline produces it (lists, not tuples, inside plain dicts)."""
    reasons = tuple(Reason(code, statement, feature, value, display, contribution + n / 1000, "12 CFR 1002.9(b)(2)")
                    for code in (codes if decision == "deny" else ())
                    for statement, feature, value, display, contribution in [CATALOG[code]])
    return Decision(
        application={"dir": 0.52, "lvr": 0.97, "ccs": 5, "mcs": 2, "pbcr": False, "applicant_name": f"Applicant {n}",
                     "applicant_address": "1 Main Street\nSpringfield, ST 00000", "application_date": "2024-03-01"},
        dataset=dataset, decision=decision, risk=0.61 + n / 10_000, threshold=0.35, reference="population",
        reasons=reasons, contributions={"dir": 0.91, "ccs": 0.44, "lvr": 0.21, "mcs": -0.05},
        model={"dataset": dataset, "sha256": "a" * 64, "threshold_version": "1"},
        citations=(Citation("12 CFR 1002.9(b)(2)", "Specific reasons", "Statement of specific reasons...", 0.83),),
        explanation=f"Your application {n} was denied mainly because your debts are high relative to income.",
        writer=writer, writer_reason="verified", verification={"passed": True, "checks": [{"name": "grounding",
                                                                                          "ok": True}]},
        prompt_sha256="b" * 64, latency_ms=12.5,
        artifacts={"adapter": "c" * 64, "corpus": "d" * 64, "reasons_catalog": "e" * 64},
    )


class Clock:
    """A controllable UTC clock that ticks one second per reading."""

    def __init__(self, start: datetime = datetime(2024, 1, 15, 12, 0, tzinfo=timezone.utc)):
        self.now = start

    def set(self, moment: datetime) -> None:
        self.now = moment

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def checkpoints_in_tmp(tmp_path, monkeypatch):
    """Checkpoint files of the test stores (PostgreSQL ones too) go to the test's folder."""
    monkeypatch.setenv("LENDSAFE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url, clock):
    with AuditStore(db_url, clock=clock) as opened:
        yield opened


def fill(store: AuditStore, count: int, actor: str = "analyst", **kwargs) -> list:
    return [store.record(make_decision(i, **kwargs), notice=None, notice_pdf=b"%PDF-stand-in " + bytes([i]),
                         actor=actor) for i in range(count)]


def execute_raw(url: str, *statements: str, bypass: str | None = None, params: dict | None = None) -> None:
    """Run SQL from outside the library, in one transaction (optionally with the guards off)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in BYPASS_GUARDS[bypass] if bypass else ():
                conn.execute(text(statement))
            for statement in statements:
                conn.execute(text(statement), params or {})
    finally:
        engine.dispose()


def entries(start: int, count: int) -> list[AuditEntry]:
    return [AuditEntry(make_decision(i), None, b"%PDF-group " + bytes([i])) for i in range(start, start + count)]


def after_inserting(rows: int, action) -> object:
    """An ``after_cursor_execute`` listener that calls ``action`` once ``rows`` audit records were inserted."""
    inserted = []

    def listener(_conn, _cursor, statement, parameters, _context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_RECORDS"):
            inserted.extend(parameters if executemany else [parameters])
            if len(inserted) >= rows:
                action()

    return listener


def raise_error(error: Exception) -> None:
    raise error


def record_with_notice(store: AuditStore, n: int = 1, *, with_settings: bool = True):
    """Record a denial with its notice (and, unless told otherwise, the notice settings); the record and PDF."""
    decision = make_decision(n)
    settings = NoticeSettings()
    notice = build_notice(decision, settings, notice_date=date(2024, 3, 5), document_id=f"AAN-TEST-{n}")
    pdf = render_pdf(notice)
    record = store.record(decision, notice=notice, notice_pdf=pdf, actor="app",
                          notice_settings=settings if with_settings else None)
    return record, pdf


def keyed(n: int, key: str | None) -> AuditEntry:
    return AuditEntry(make_decision(n), None, None, key)


def run_processes(target, *argument_lists) -> list[int]:
    """Run ``target`` once per argument list, each in a forked process; their exit codes."""
    processes = [FORK.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    return [process.exitcode for process in processes]
