"""Audit store: recording, hash chain, append-only guards, replay, evidence packs, retention, reliability.

Store tests run against SQLite and against a real PostgreSQL server started on 127.0.0.1
(``pg_server.py``); if that server cannot start, the PostgreSQL tests fail with the reason.
"""
from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import signal
import sqlite3
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from lendsafe.audit.store import (GENESIS_HASH, run_pragmas, REBUILT, RERENDERED, VERSION_TABLE, AuditEntry, AuditStore,
                            canonical_json, chain_hash, months_before, sha256_hex)
from lendsafe.cli import main as cli_main
from lendsafe.decide.decision import Citation, Decision, Reason
from lendsafe.errors import AuditIntegrityError, ConfigurationError

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


# ----------------------------------------------------------------------------- canonical form

def test_canonical_json_is_key_order_independent_and_compact():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == canonical_json({"a": [1.5, "é"], "b": 1}) \
        == '{"a":[1.5,"é"],"b":1}'


def test_canonical_json_refuses_nan_and_converts_numpy_scalars():
    import numpy as np

    with pytest.raises(AuditIntegrityError, match="canonically"):
        canonical_json({"risk": math.nan})
    assert canonical_json({"n": np.int64(3), "x": np.float64(0.25), "d": date(2024, 2, 29)}) \
        == '{"d":"2024-02-29","n":3,"x":0.25}'


def test_months_before_clamps_to_the_last_day_of_the_month():
    assert months_before(datetime(2024, 3, 31, 9, 30), 1) == datetime(2024, 2, 29, 9, 30)
    assert months_before(datetime(2026, 1, 31), 25) == datetime(2023, 12, 31)


# ----------------------------------------------------------------------------- recording

@pytest.mark.parametrize("backend_url", BACKENDS)
def test_migrations_reach_head_once_and_default_url_is_sqlite_under_home(backend_url, tmp_path, monkeypatch,
                                                                        request):
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    from lendsafe.audit.store import MIGRATIONS_DIR

    if backend_url == "sqlite":
        monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("LENDSAFE_DATABASE_URL", raising=False)
        url = None
    else:
        url = request.getfixturevalue("postgres").new_database()
    with AuditStore(url) as first, AuditStore(url) as second:
        assert second.url == first.url
        engine = create_engine(first.url)
        with engine.connect() as conn:
            versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        engine.dispose()
    assert versions == [ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()]
    if backend_url == "sqlite":
        database = tmp_path / "home" / "audit.db"
        assert first.url == f"sqlite:///{database}" and database.is_file()
        assert sqlite3.connect(database).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_durability_is_chosen_on_the_url(tmp_path):
    from lendsafe.errors import ConfigurationError

    with AuditStore(f"sqlite:///{tmp_path / 'a.db'}?synchronous=normal") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1      # NORMAL
    with pytest.raises(ConfigurationError, match="synchronous must be one of"):
        AuditStore(f"sqlite:///{tmp_path / 'b.db'}?synchronous=OFF")
    with pytest.raises(ConfigurationError, match="must be one of"):
        AuditStore("mysql://localhost/audit")


def test_record_keeps_the_whole_decision_and_indexes_it(store):
    decision = make_decision(7)
    record = store.record(decision, notice=None, notice_pdf=b"%PDF-1.4 bytes", actor="analyst@bank")
    stored = store.get(record.id)
    assert stored == record
    assert stored.to_decision() == decision
    assert stored.content["decision"] == json.loads(canonical_json(decision.to_dict()))
    assert (stored.dataset, stored.decision, stored.writer, stored.actor, stored.first_reason) == \
        ("hmda", "deny", "template", "analyst@bank", "DEBT_TO_INCOME")
    assert stored.notice_sha256 == sha256_hex(b"%PDF-1.4 bytes") == stored.content["notice_sha256"]
    assert stored.content["decision"]["artifacts"]["reasons_catalog"] == "e" * 64
    assert stored.created_at.endswith("Z") and stored.content["created_at"] == stored.created_at


def test_record_requires_an_actor_and_a_decision(store):
    with pytest.raises(AuditIntegrityError, match="actor"):
        store.record(make_decision(), notice=None, notice_pdf=None, actor="  ")
    with pytest.raises(AuditIntegrityError, match="Decision"):
        store.record(make_decision().to_dict(), notice=None, notice_pdf=None, actor="analyst")
    assert store.count() == 0


def test_list_filters_on_indexed_columns(store, clock):
    fill(store, 3, actor="app")
    clock.set(datetime(2024, 6, 1, tzinfo=timezone.utc))
    fill(store, 2, actor="batch", dataset="credit", writer="lora", codes=("LOAN_TO_VALUE",))
    fill(store, 1, actor="batch", decision="approve")
    assert [r.id for r in store.list(actor="batch")] == [4, 5, 6]
    assert [r.id for r in store.list(dataset="credit", writer="lora")] == [4, 5]
    assert [r.id for r in store.list(reason="LOAN_TO_VALUE")] == [4, 5]
    assert [r.id for r in store.list(decision="approve")] == [6] and store.get(6).first_reason is None
    assert [r.id for r in store.list(since=datetime(2024, 5, 1, tzinfo=timezone.utc))] == [4, 5, 6]
    assert [r.id for r in store.list(until="2024-05-01T00:00:00.000000Z")] == [1, 2, 3]
    assert [r.id for r in store.list(after_id=2, limit=2)] == [3, 4]


def test_each_record_links_to_the_previous_hash(store):
    records = fill(store, 4)
    assert records[0].prev_hash == GENESIS_HASH
    for previous, current in zip(records, records[1:]):
        assert current.prev_hash == previous.record_hash
        assert current.record_hash == chain_hash(previous.record_hash, current.content)
    report = store.verify()
    assert report.ok and report.checked == 4 and report.head_hash == records[-1].record_hash


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


def _raise(error: Exception) -> None:
    raise error


def test_record_many_chains_each_record_like_record_does(store):
    single = fill(store, 2)
    group = store.record_many([*entries(2, 2), (make_decision(4, decision="approve"), None, None)], actor="batch")
    [last] = fill(store, 1)
    chain = [*single, *group, last]
    assert [r.id for r in chain] == [1, 2, 3, 4, 5, 6] and [r.actor for r in group] == ["batch"] * 3
    for previous, current in zip(chain, chain[1:]):
        assert current.prev_hash == previous.record_hash
        assert current.record_hash == chain_hash(previous.record_hash, current.content)
    assert [store.get(r.id) for r in group] == group
    assert group[1].to_decision() == make_decision(3) and group[2].decision == "approve"
    assert len({r.created_at for r in group}) == 3
    report = store.verify()
    assert report.ok and report.checked == 6 and report.head_hash == last.record_hash


@pytest.mark.parametrize("bad_entry, problem", [
    ((dataclasses.replace(make_decision(9), risk=math.nan), None, None), "entry 2 of 3: cannot record"),
    ((make_decision(9).to_dict(), None, None), "entry 2 of 3: expected a lendsafe.decide.decision.Decision"),
    (make_decision(9), "entry 2 of 3: expected an AuditEntry"),
])
def test_record_many_writes_nothing_when_one_entry_cannot_be_recorded(store, bad_entry, problem):
    before = fill(store, 1)
    good = entries(1, 2)
    with pytest.raises(AuditIntegrityError, match=problem):
        store.record_many([good[0], bad_entry, good[1]], actor="batch")
    with pytest.raises(AuditIntegrityError, match="actor"):
        store.record_many(good, actor="")
    assert store.count() == 1 and store.head() == (1, before[0].record_hash)
    assert store.record_many([], actor="batch") == [] and store.count() == 1
    assert [r.id for r in store.record_many(good, actor="batch")] == [2, 3] and store.verify().ok


def test_record_many_rolls_back_the_whole_group_when_its_transaction_fails(store):
    from sqlalchemy import event

    fill(store, 1)
    _fail = after_inserting(3, lambda: _raise(RuntimeError("disk went away after the third record")))
    event.listen(store._engine, "after_cursor_execute", _fail)
    with pytest.raises(RuntimeError, match="disk went away"):
        store.record_many(entries(1, 4), actor="batch")
    event.remove(store._engine, "after_cursor_execute", _fail)
    assert store.count() == 1 and store.verify().ok
    assert [r.id for r in store.record_many(entries(1, 2), actor="batch")] == [2, 3]


def test_get_of_unknown_id_says_so(store):
    with pytest.raises(AuditIntegrityError, match="no audit record with id 99"):
        store.get(99)


# ----------------------------------------------------------------------------- append-only, tamper evidence

def test_api_refuses_updates_and_deletes(store):
    fill(store, 1)
    with pytest.raises(AuditIntegrityError, match="append-only"):
        store.update(1, actor="someone else")
    with pytest.raises(AuditIntegrityError, match="append-only"):
        store.delete(1)


@pytest.mark.parametrize("statement", [
    "UPDATE audit_records SET actor = 'mallory' WHERE id = 2",
    "DELETE FROM audit_records WHERE id = 2",
    "DELETE FROM audit_records",
])
def test_database_refuses_changes_from_other_clients(store, db_url, statement):
    from sqlalchemy.exc import DatabaseError

    fill(store, 3)
    with pytest.raises(DatabaseError, match="append-only"):
        execute_raw(db_url, statement)
    assert store.count() == 3 and store.verify().ok


@pytest.mark.parametrize("tamper, broken_id, problem", [
    ("UPDATE audit_records SET content = REPLACE(content, '\"actor\":\"analyst\"', '\"actor\":\"mallory\"') "
     "WHERE id = 3", 3, "content was altered"),
    ("UPDATE audit_records SET first_reason = 'LOAN_TO_VALUE' WHERE id = 3", 3, "first_reason disagree"),
    ("DELETE FROM audit_records WHERE id = 3", 4, "a record is missing"),
    ("DELETE FROM audit_records WHERE id = 1", 2, "a record is missing"),
])
def test_verify_names_the_first_broken_link(store, db_url, tamper, broken_id, problem):
    fill(store, 5)
    execute_raw(db_url, tamper, bypass=store.backend)
    report = store.verify()
    assert not report.ok and report.broken_id == broken_id and problem in report.problem
    assert report.checked == len([r for r in store.list(limit=None) if r.id < broken_id])


def test_rehashing_an_altered_record_is_named_by_its_signature(store, db_url):
    records = fill(store, 4)
    content = {**records[1].content, "actor": "mallory"}
    forged = chain_hash(records[1].prev_hash, content)
    execute_raw(db_url, "UPDATE audit_records SET content = :content, actor = 'mallory', record_hash = :forged "
                        "WHERE id = 2", bypass=store.backend,
                params={"content": canonical_json(content), "forged": forged})
    report = store.verify()
    assert (report.ok, report.broken_id) == (False, 2) and "signature does not match" in report.problem


# ----------------------------------------------------------------------------- retention and purge

def _age_records(store: AuditStore, clock: Clock) -> list:
    clock.set(datetime(2020, 1, 1, tzinfo=timezone.utc))
    old = fill(store, 5)
    clock.set(datetime(2022, 6, 1, tzinfo=timezone.utc))
    return old + fill(store, 3)


def test_retention_lists_records_past_the_period(store, clock):
    records = _age_records(store, clock)
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert [r.id for r in store.past_retention(25, now=now)] == [r.id for r in records[:5]]
    assert store.past_retention(25, now=datetime(2021, 1, 1, tzinfo=timezone.utc)) == []


def test_purge_needs_confirmation_and_a_lawful_period(store, clock):
    _age_records(store, clock)
    with pytest.raises(AuditIntegrityError, match="confirm=True"):
        store.purge(25, actor="officer")
    with pytest.raises(AuditIntegrityError, match="at least 25 months for consumer credit"):
        store.purge(24, actor="officer", confirm=True)
    with pytest.raises(AuditIntegrityError, match="at least 12 months for business credit"):
        store.purge(11, actor="officer", confirm=True, credit="business")
    with pytest.raises(AuditIntegrityError, match="got -5"):
        store.past_retention(-5)
    with pytest.raises(ConfigurationError, match="credit must be one of"):
        store.purge(25, actor="officer", confirm=True, credit="mortgage")
    assert store.count() == 8


def test_purge_removes_the_oldest_records_and_the_chain_still_verifies(store, clock, db_url):
    records = _age_records(store, clock)
    result = store.purge(25, actor="officer", confirm=True, now=datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert (result.purged_count, result.first_id, result.last_id, result.record_id) == (5, 1, 5, 9)
    assert result.anchor_hash == records[4].record_hash
    report = store.verify()
    assert report.ok and (report.anchor_id, report.anchor_hash, report.checked) == (5, records[4].record_hash, 4)
    assert [r.id for r in store.list()] == [6, 7, 8, 9]
    with pytest.raises(AuditIntegrityError):
        store.get(1)
    [log_entry] = store.purges()
    assert (log_entry["actor"], log_entry["months"], log_entry["purged_count"], log_entry["credit"]) == \
        ("officer", 25, 5, "consumer")
    purge_record = store.get(9)
    assert (purge_record.kind, purge_record.decision, purge_record.actor) == ("purge", "purge", "officer")
    assert purge_record.prev_hash == records[-1].record_hash and purge_record.created_at == log_entry["purged_at"]
    assert purge_record.content["purge"]["entry_hash"] == log_entry["entry_hash"] and log_entry["record_id"] == 9
    with pytest.raises(AuditIntegrityError, match="is a purge record"):
        purge_record.to_decision()
    from sqlalchemy.exc import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        execute_raw(db_url, "DELETE FROM audit_records WHERE id = 6")


def test_purging_every_decision_leaves_the_purge_records_as_the_chain(store, clock):
    _age_records(store, clock)
    first = store.purge(25, actor="officer", confirm=True, now=datetime(2024, 1, 1, tzinfo=timezone.utc))
    second = store.purge(25, actor="officer", confirm=True, now=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert (second.purged_count, second.first_id, second.last_id, second.record_id) == (3, 6, 8, 10)
    assert [r.kind for r in store.list()] == ["purge", "purge"] and store.head()[0] == 10
    clock.set(datetime(2025, 2, 1, tzinfo=timezone.utc))
    [new] = fill(store, 1)
    assert (new.id, new.prev_hash) == (11, store.get(10).record_hash)
    entries = store.purges()
    assert entries[1]["prev_entry_hash"] == entries[0]["entry_hash"] and store.verify().ok
    third = store.purge(25, actor="officer", confirm=True, now=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert (third.first_id, third.last_id) == (9, 9) and first.record_id == 9     # the first purge's own record
    report = store.verify()
    assert report.ok and report.purges == 3 and report.anchor_id == 9
    assert store.purge(25, actor="officer", confirm=True, now=datetime(2026, 4, 1, tzinfo=timezone.utc)) \
        .purged_count == 0


def test_purge_refuses_when_the_chain_is_broken(store, clock, db_url):
    _age_records(store, clock)
    execute_raw(db_url, "UPDATE audit_records SET actor = 'mallory' WHERE id = 2", bypass=store.backend)
    with pytest.raises(AuditIntegrityError, match="chain does not verify"):
        store.purge(25, actor="officer", confirm=True, now=datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert store.count() == 8


def test_altered_purge_log_is_detected(store, clock, db_url):
    _age_records(store, clock)
    store.purge(25, actor="officer", confirm=True, now=datetime(2024, 1, 1, tzinfo=timezone.utc))
    execute_raw(db_url, "UPDATE audit_purges SET actor = 'nobody'", bypass=store.backend)
    report = store.verify()
    assert not report.ok and "purge-log entry 1" in report.problem


# ----------------------------------------------------------------------------- reliability

def _write_batch(url: str, count: int, actor: str, group: int = 1) -> None:
    """``count`` records: one ``record`` call each (group 1), else ``record_many`` calls of ``group``."""
    with AuditStore(url) as store:
        for start in range(0, count, group):
            items = [AuditEntry(make_decision(i), None, b"%PDF " + actor.encode())
                     for i in range(start, min(start + group, count))]
            if group == 1:
                store.record(items[0].decision, notice=None, notice_pdf=items[0].notice_pdf, actor=actor)
            else:
                store.record_many(items, actor=actor)


def _die_before_commit(url: str, group: int) -> None:
    """Write one record, then record a group and kill this process once all ``group`` records were
    inserted, before the COMMIT."""
    from sqlalchemy import event

    store = AuditStore(url)
    store.record(make_decision(0), notice=None, notice_pdf=None, actor="crasher")
    event.listen(store._engine, "after_cursor_execute",
                 after_inserting(group, lambda: os.kill(os.getpid(), signal.SIGKILL)))
    store.record_many(entries(1, group), actor="crasher")


def _run_processes(target, *argument_lists) -> list[int]:
    processes = [FORK.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    return [process.exitcode for process in processes]


def test_concurrent_writers_lose_nothing_and_keep_the_chain(db_url):
    per_process, actors = 40, ["app", "batch-1", "batch-2", "batch-3"]
    assert _run_processes(_write_batch, *[(db_url, per_process, actor) for actor in actors]) == [0] * 4
    with AuditStore(db_url) as store:
        report = store.verify()
        assert report.ok and report.checked == per_process * len(actors)
        assert [r.id for r in store.list(limit=None)] == list(range(1, per_process * len(actors) + 1))
        assert {actor: len(store.list(actor=actor, limit=None)) for actor in actors} == \
            {actor: per_process for actor in actors}


def test_concurrent_writers_mixing_record_and_record_many_lose_nothing(db_url):
    per_process, writers = 43, {"app": 1, "app-2": 1, "batch-8": 8, "batch-5": 5}
    assert _run_processes(_write_batch, *[(db_url, per_process, actor, group)
                                          for actor, group in writers.items()]) == [0] * 4
    with AuditStore(db_url) as store:
        report = store.verify()
        assert report.ok and report.checked == per_process * len(writers)
        assert [r.id for r in store.list(limit=None)] == list(range(1, per_process * len(writers) + 1))
        for actor, group in writers.items():
            ids = [r.id for r in store.list(actor=actor, limit=None)]
            assert len(ids) == per_process
            groups = [ids[start:start + group] for start in range(0, per_process, group)]
            assert all(g == list(range(g[0], g[0] + len(g))) for g in groups), f"{actor}: a group was split"


@pytest.mark.parametrize("group", [1, 6])
def test_a_writer_killed_inside_its_transaction_leaves_the_store_consistent(db_url, group):
    assert _run_processes(_die_before_commit, (db_url, group)) == [-signal.SIGKILL]
    with AuditStore(db_url) as store:
        assert store.count() == 1 and store.verify().ok
        record = store.record(make_decision(2), notice=None, notice_pdf=None, actor="survivor")
        assert record.id == 2 and store.verify().ok


def test_a_writer_killed_mid_batch_leaves_a_valid_chain(db_url):
    writer = FORK.Process(target=_write_batch, args=(db_url, 100_000, "batch"))
    writer.start()
    with AuditStore(db_url) as store:
        deadline = time.monotonic() + 60
        while store.count() < 25 and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.02)
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(timeout=30)
        assert writer.exitcode == -signal.SIGKILL
        written = store.count()
        assert written >= 25 and store.verify().ok
        assert store.record(make_decision(), notice=None, notice_pdf=None, actor="after").id == written + 1
        assert store.verify().checked == written + 1


# ----------------------------------------------------------------------------- replay and evidence packs

@pytest.fixture
def notice_api():
    """The notice module's contract: NoticeSettings, Notice, build_notice, render_pdf."""
    try:
        import lendsafe.notice as notice_module
    except ImportError as exc:
        pytest.fail(f"replay needs lendsafe.notice (build_notice, render_pdf); import failed: {exc}")
    missing = [name for name in ("NoticeSettings", "Notice", "build_notice", "render_pdf")
               if not hasattr(notice_module, name)]
    if missing:
        pytest.fail(f"lendsafe.notice lacks {missing}, which replay calls")
    return notice_module


def record_with_notice(store: AuditStore, notice_api, n: int = 1, *, with_settings: bool = True):
    decision = make_decision(n)
    settings = notice_api.NoticeSettings()
    notice = notice_api.build_notice(decision, settings, notice_date=date(2024, 3, 5), document_id=f"AAN-TEST-{n}")
    pdf = notice_api.render_pdf(notice)
    record = store.record(decision, notice=notice, notice_pdf=pdf, actor="app",
                          notice_settings=settings if with_settings else None)
    return record, pdf


def test_replay_regenerates_the_notice_byte_for_byte(store, notice_api):
    record, pdf = record_with_notice(store, notice_api)
    result = store.replay(record.id)
    assert result.identical and result.mode == REBUILT and result.pdf == pdf
    assert result.recorded_sha256 == result.replayed_sha256 == sha256_hex(pdf)
    assert record.content["document_id"] == "AAN-TEST-1"


def test_replay_of_records_written_in_one_group_is_byte_for_byte(store, notice_api):
    settings, group = notice_api.NoticeSettings(), []
    for n in (1, 2):
        decision = make_decision(n)
        notice = notice_api.build_notice(decision, settings, notice_date=date(2024, 3, 5), document_id=f"AAN-G-{n}")
        group.append(AuditEntry(decision, notice, notice_api.render_pdf(notice)))
    group.insert(1, AuditEntry(make_decision(3, decision="approve")))
    records = store.record_many(group, actor="batch", notice_settings=settings)
    for record, entry in zip(records, group):
        if entry.notice is None:
            assert record.notice_sha256 is None
            continue
        result = store.replay(record.id)
        assert result.identical and result.mode == REBUILT and result.pdf == entry.notice_pdf


def test_replay_without_recorded_settings_rerenders_the_recorded_notice(store, notice_api):
    record, pdf = record_with_notice(store, notice_api, with_settings=False)
    result = store.replay(record.id)
    assert result.identical and result.mode == RERENDERED and result.pdf == pdf


def test_replay_says_which_fields_and_hashes_differ(store, notice_api, monkeypatch):
    record, pdf = record_with_notice(store, notice_api)
    real_build, real_render = notice_api.build_notice, notice_api.render_pdf
    monkeypatch.setattr(notice_api, "build_notice", lambda *a, **k: dataclasses.replace(
        real_build(*a, **k), creditor_name="Another Lender"))
    monkeypatch.setattr(notice_api, "render_pdf", lambda notice: real_render(notice) + b"\n% changed")
    result = store.replay(record.id)
    assert not result.identical
    assert any("'creditor_name'" in line and "Another Lender" in line for line in result.differences)
    assert any(line.startswith("notice PDF sha256: recorded " + sha256_hex(pdf)) for line in result.differences)


def test_replay_refuses_records_without_notice_or_with_altered_content(store, notice_api, db_url):
    [approved] = fill(store, 1, decision="approve")
    with pytest.raises(AuditIntegrityError, match="no notice to replay"):
        store.replay(approved.id)
    record, _ = record_with_notice(store, notice_api)
    execute_raw(db_url, f"UPDATE audit_records SET content = REPLACE(content, 'Applicant 1', 'Applicant 9') "
                        f"WHERE id = {record.id}", bypass=store.backend)
    with pytest.raises(AuditIntegrityError, match="altered"):
        store.replay(record.id)


def test_export_writes_the_pdf_and_a_sidecar_with_chain_hashes(store, notice_api, tmp_path):
    fill(store, 2)
    record, pdf = record_with_notice(store, notice_api)
    sidecar = store.export(record.id, tmp_path / "pack")
    assert (tmp_path / "pack" / f"notice-{record.id}.pdf").read_bytes() == pdf
    on_disk = json.loads((tmp_path / "pack" / f"record-{record.id}.json").read_text())
    assert on_disk == json.loads(json.dumps(sidecar))
    chain = on_disk["chain"]
    assert (chain["prev_hash"], chain["record_hash"]) == (store.get(2).record_hash, record.record_hash)
    assert chain["record_hash"] == chain_hash(chain["prev_hash"], on_disk["record"]) and chain["chain_verifies"]
    assert on_disk["replay"]["status"] == "identical"
    assert on_disk["record"]["decision"]["reasons"][0]["code"] == "DEBT_TO_INCOME"


def test_export_of_a_record_without_notice_writes_the_sidecar_only(store, tmp_path):
    [approved] = fill(store, 1, decision="approve")
    sidecar = store.export(approved.id, tmp_path / "pack")
    assert sidecar["notice_pdf"] is None and sidecar["replay"]["status"] == "no notice recorded"
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [f"record-{approved.id}.json"]


# ----------------------------------------------------------------------------- command line

@pytest.fixture
def cli_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    clock = Clock(datetime(2020, 1, 1, tzinfo=timezone.utc))
    with AuditStore(url, clock=clock) as store:
        fill(store, 3, actor="app")
        clock.set(datetime.now(timezone.utc) - timedelta(days=1))
        fill(store, 2, actor="batch", decision="approve")
        yield url


def run_cli(capsys, url: str, *words: str) -> tuple[int, str, str]:
    code = cli_main(["audit", "--db", url, *words])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_lists_shows_and_verifies(cli_store, capsys):
    code, out, _ = run_cli(capsys, cli_store, "list", "--actor", "batch", "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [4, 5]
    code, out, _ = run_cli(capsys, cli_store, "show", "2")
    assert code == 0 and json.loads(out)["content"]["decision"]["application"]["applicant_name"] == "Applicant 1"
    code, out, _ = run_cli(capsys, cli_store, "verify")
    assert code == 0 and out.startswith("chain verifies: 5 records")


def test_cli_verify_fails_on_a_broken_chain(cli_store, capsys):
    execute_raw(cli_store, "DELETE FROM audit_records WHERE id = 2", bypass="sqlite")
    code, out, _ = run_cli(capsys, cli_store, "verify")
    assert code == 1 and "chain broken at record 3" in out


def test_cli_retention_and_purge(cli_store, capsys):
    code, out, _ = run_cli(capsys, cli_store, "retention", "--months", "25")
    assert code == 0 and "3 record(s) past 25-month retention" in out
    code, _, err = run_cli(capsys, cli_store, "purge", "--months", "25")
    assert code == 2 and "--confirm" in err
    code, out, _ = run_cli(capsys, cli_store, "purge", "--months", "25", "--confirm", "--actor", "officer")
    assert code == 0 and "purged 3 records (1..3)" in out and "the purge is record 6" in out
    assert "chain verifies: 3 records after anchor 3" in out


@pytest.mark.parametrize("words, message", [
    (("list", "--since", "garbage"), "argument --since: expected an ISO 8601 date or time"),
    (("list", "--until", "2024-13-45"), "argument --until"),
    (("list", "--limit", "-1"), "argument --limit: expected a whole number from 1"),
    (("retention", "--months", "-5"), "argument --months: expected a whole number from 1 to 1200; got -5"),
    (("retention", "--months", "abc"), "argument --months: expected a whole number; got 'abc'"),
    (("retention", "--credit", "mortgage"), "argument --credit: invalid choice"),
    (("show", "0"), "argument id"),
])
def test_cli_refuses_bad_option_values_naming_the_option(cli_store, capsys, words, message):
    with pytest.raises(SystemExit) as exited:
        run_cli(capsys, cli_store, *words)
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("words, message", [
    (("retention", "--months", "24"), "at least 25 months for consumer credit"),
    (("retention", "--months", "11", "--credit", "business"), "at least 12 months for business credit"),
    (("purge", "--months", "13", "--confirm"), "at least 25 months for consumer credit"),
])
def test_cli_refuses_retention_below_the_legal_minimum(cli_store, capsys, words, message):
    code, out, err = run_cli(capsys, cli_store, *words)
    assert code == 2 and message in err and out == ""
    with AuditStore(cli_store) as store:
        assert store.count() == 5


def test_cli_since_filters_by_time_and_business_credit_allows_twelve_months(cli_store, capsys):
    code, out, _ = run_cli(capsys, cli_store, "list", "--since", "2021-01-01", "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [4, 5]
    code, out, _ = run_cli(capsys, cli_store, "retention", "--months", "12", "--credit", "business")
    assert code == 0 and "3 record(s) past 12-month retention" in out


def test_store_errors_never_show_the_url_password():
    with pytest.raises(ConfigurationError) as caught:
        AuditStore("mysql://auditor:hunter2@db.bank/audit")
    assert "hunter2" not in str(caught.value) and "auditor:***@db.bank" in str(caught.value)
    with pytest.raises(ConfigurationError, match="URL is not valid") as caught:
        AuditStore("sqlite://auditor:hunter2@/tmp/x.db")
    assert "hunter2" not in str(caught.value)


def test_cli_replay_and_export(tmp_path, capsys, notice_api):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with AuditStore(url) as store:
        record, pdf = record_with_notice(store, notice_api)
    code, out, _ = run_cli(capsys, url, "replay", str(record.id), "--out", str(tmp_path / "notice.pdf"))
    assert code == 0 and "byte for byte" in out and (tmp_path / "notice.pdf").read_bytes() == pdf
    code, out, _ = run_cli(capsys, url, "export", str(record.id), "--out", str(tmp_path / "pack"))
    assert code == 0 and "replay: identical" in out
    assert (tmp_path / "pack" / f"notice-{record.id}.pdf").read_bytes() == pdf


def _open_store(url: str, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    with AuditStore(url) as store:
        store.count()


def test_stores_opened_at_once_by_several_processes_on_a_new_database_all_open(tmp_path):
    """Connections switching a new file to WAL at once can deadlock; SQLite then answers 'locked' without waiting."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        start_at = time.time() + 0.3
        openers = [FORK.Process(target=_open_store, args=(url, start_at)) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=120)
        assert [opener.exitcode for opener in openers] == [0, 0, 0, 0]


class _LockedCursor:
    """A cursor whose first ``locked`` executions fail as SQLite does when switching to WAL deadlocks."""

    def __init__(self, locked: int):
        self.locked, self.executed = locked, []

    def execute(self, statement: str) -> None:
        import sqlite3

        if self.locked:
            self.locked -= 1
            raise sqlite3.OperationalError("database is locked")
        self.executed.append(statement)


def test_pragmas_are_retried_while_the_database_is_locked_then_the_error_is_raised():
    import sqlite3

    cursor = _LockedCursor(locked=3)
    run_pragmas(cursor, ("busy_timeout=1", "journal_mode=WAL"), sleep=lambda _: None)
    assert cursor.executed == ["PRAGMA busy_timeout=1", "PRAGMA journal_mode=WAL"]
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        run_pragmas(_LockedCursor(locked=10**9), ("journal_mode=WAL",), wait_seconds=0.05, sleep=lambda _: time.sleep(0.01))


# ----------------------------------------------------------------------------- issue keys, record kinds

def keyed(n: int, key: str) -> AuditEntry:
    return AuditEntry(make_decision(n), None, None, key)


def test_an_issue_key_is_recorded_once_and_the_existing_record_stands_in(store):
    first = store.append([keyed(1, "a1" * 16), keyed(2, "b2" * 16)], actor="batch")
    again = store.append([keyed(3, "b2" * 16), keyed(4, "c3" * 16), keyed(5, "c3" * 16)], actor="batch")
    assert [(a.record.id, a.new) for a in first] == [(1, True), (2, True)]
    assert [(a.record.id, a.new) for a in again] == [(2, False), (3, True), (3, False)]
    assert store.count() == 3 and store.verify().ok
    assert store.get(2).issue_key == "b2" * 16 and sorted(store.issued()) == ["a1" * 16, "b2" * 16, "c3" * 16]
    assert store.append([keyed(6, "b2" * 16)], actor="batch")[0].record.to_decision() == make_decision(2)


def test_the_database_refuses_a_second_record_under_one_issue_key(store):
    from sqlalchemy.exc import IntegrityError

    from lendsafe.audit.store import _tables

    store.append([keyed(1, "d4" * 16)], actor="batch")
    records, _ = _tables()
    with store._engine.connect() as conn, pytest.raises(IntegrityError):
        with conn.begin():
            original = conn.execute(records.select().where(records.c.id == 1)).mappings().one()
            conn.execute(records.insert().values(**{**original, "id": 2, "record_hash": "f" * 64}))
    assert store.count() == 1


def _downgrade_to_0002(url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from lendsafe.audit.store import MIGRATIONS_DIR

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002_signed_chain")
    engine.dispose()


def test_upgrading_to_unique_issue_keys_copies_each_records_key_and_the_chain_verifies(db_url, clock):
    with AuditStore(db_url, clock=clock, key=b"k" * 32) as store:
        store.append([keyed(1, "e5" * 16), keyed(2, None), keyed(3, "f6" * 16)], actor="batch")
    _downgrade_to_0002(db_url)
    with AuditStore(db_url, clock=clock, key=b"k" * 32) as store:
        assert [store.get(i).issue_key for i in (1, 2, 3)] == ["e5" * 16, None, "f6" * 16]
        assert store.verify().ok, store.verify().summary()
        assert not store.append([keyed(4, "e5" * 16)], actor="batch")[0].new
        with pytest.raises(Exception, match="append-only"):
            with store._engine.begin() as conn:
                conn.exec_driver_sql("UPDATE audit_records SET actor = 'x' WHERE id = 1")


def test_cli_lists_shows_and_replays_notices_of_incompleteness_and_refusals(tmp_path, capsys):
    from lendsafe.config import PROJECT_ROOT
    from lendsafe.notice.incomplete import triage
    from lendsafe.issue.issuer import NoticeCheckError, Issuer, refuse_failed

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    triaged = triage({k: v for k, v in application.items() if k != "condominium"}, "hmda")
    url = f"sqlite:///{tmp_path / 'kinds.db'}"
    with AuditStore(url) as store:
        issuer = Issuer(None, audit=store, actor="cli:officer")
        issued = issuer.issue_incomplete(triaged, "hmda", notice_date=date(2026, 3, 2))
        refused = dataclasses.replace(issued.check, checks={**issued.check.checks, "title": type(
            issued.check.checks["title"])(False, "missing: title")})
        with pytest.raises(NoticeCheckError):
            with issuer.recording_refusals():
                refuse_failed(issued.notice, refused, document="notice of incompleteness", record=issued.entry().record)
    code, out, _ = run_cli(capsys, url, "list")
    assert code == 0 and [line.split()[3] for line in out.splitlines()] == ["incomplete", "refusal"]
    code, out, _ = run_cli(capsys, url, "list", "--decision", "refusal", "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [2]
    code, out, _ = run_cli(capsys, url, "show", "1")
    shown = json.loads(out)["content"]
    assert shown["kind"] == "incomplete" and shown["record"]["missing"] == ["condominium"]
    assert shown["notice_sha256"] == sha256_hex(issued.pdf) and shown["actor"] == "cli:officer"
    code, out, _ = run_cli(capsys, url, "show", "2")
    refusal = json.loads(out)["content"]["refused"]
    assert refusal["failures"] == {"title": "missing: title"} and refusal["document"] == "notice of incompleteness"
    code, out, _ = run_cli(capsys, url, "replay", "1", "--out", str(tmp_path / "again.pdf"))
    assert code == 0 and "regenerated byte for byte" in out and (tmp_path / "again.pdf").read_bytes() == issued.pdf
    code, _, err = run_cli(capsys, url, "replay", "2")
    assert code == 2 and "is a refusal: no notice was issued" in err
    code, out, _ = run_cli(capsys, url, "export", "2", "--out", str(tmp_path / "pack"))
    assert code == 0 and "replay: no notice recorded" in out
    code, out, _ = run_cli(capsys, url, "verify")
    assert code == 0 and out.startswith("chain verifies: 2 records")


def test_replay_of_a_notice_of_incompleteness_names_what_differs(tmp_path):
    from lendsafe.config import PROJECT_ROOT
    from lendsafe.notice.incomplete import triage
    from lendsafe.issue.issuer import Issuer

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    triaged = triage({k: v for k, v in application.items() if k != "condominium"}, "hmda")
    with AuditStore(f"sqlite:///{tmp_path / 'a.db'}") as store:
        issued = Issuer(None, audit=store).issue_incomplete(triaged, "hmda", notice_date=date(2026, 3, 2))
        import lendsafe.notice.incomplete as incomplete

        real = incomplete.render_incomplete_pdf
        try:
            incomplete.render_incomplete_pdf = lambda notice: real(notice) + b"\n% changed renderer"
            replayed = store.replay(issued.record_id)
        finally:
            incomplete.render_incomplete_pdf = real
    assert not replayed.identical and replayed.mode.startswith("rebuilt from the recorded incompleteness record")
    assert any(line.startswith("notice PDF sha256: recorded") for line in replayed.differences)
