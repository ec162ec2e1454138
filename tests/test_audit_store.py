"""``AuditStore``: writing (one record, a group in one transaction, issue keys once), reading and filtering,
the append-only API, and writers in several processes at once, killed or not (``lendsafe.audit.store``)."""
from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone

import pytest

from audit_support import (FORK, after_inserting, checkpoints_in_tmp, clock, db_url, entries, fill,  # noqa: F401
                           keyed, make_decision, raise_error, run_processes, store)
from lendsafe.audit.records import AuditEntry
from lendsafe.audit.store import AuditStore
from lendsafe.errors import AuditIntegrityError

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


def test_get_of_unknown_id_says_so(store):
    with pytest.raises(AuditIntegrityError, match="no audit record with id 99"):
        store.get(99)


def test_api_refuses_updates_and_deletes(store):
    fill(store, 1)
    with pytest.raises(AuditIntegrityError, match="append-only"):
        store.update(1, actor="someone else")
    with pytest.raises(AuditIntegrityError, match="append-only"):
        store.delete(1)


def test_record_many_rolls_back_the_whole_group_when_its_transaction_fails(store):
    from sqlalchemy import event

    fill(store, 1)
    _fail = after_inserting(3, lambda: raise_error(RuntimeError("disk went away after the third record")))
    event.listen(store._engine, "after_cursor_execute", _fail)
    with pytest.raises(RuntimeError, match="disk went away"):
        store.record_many(entries(1, 4), actor="batch")
    event.remove(store._engine, "after_cursor_execute", _fail)
    assert store.count() == 1 and store.verify().ok
    assert [r.id for r in store.record_many(entries(1, 2), actor="batch")] == [2, 3]


def test_an_issue_key_is_recorded_once_and_the_existing_record_stands_in(store):
    first = store.append([keyed(1, "a1" * 16), keyed(2, "b2" * 16)], actor="batch")
    again = store.append([keyed(3, "b2" * 16), keyed(4, "c3" * 16), keyed(5, "c3" * 16)], actor="batch")
    assert [(a.record.id, a.new) for a in first] == [(1, True), (2, True)]
    assert [(a.record.id, a.new) for a in again] == [(2, False), (3, True), (3, False)]
    assert store.count() == 3 and store.verify().ok
    assert store.get(2).issue_key == "b2" * 16 and sorted(store.issued()) == ["a1" * 16, "b2" * 16, "c3" * 16]
    assert store.append([keyed(6, "b2" * 16)], actor="batch")[0].record.to_decision() == make_decision(2)


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


def test_concurrent_writers_lose_nothing_and_keep_the_chain(db_url):
    per_process, actors = 40, ["app", "batch-1", "batch-2", "batch-3"]
    assert run_processes(_write_batch, *[(db_url, per_process, actor) for actor in actors]) == [0] * 4
    with AuditStore(db_url) as store:
        report = store.verify()
        assert report.ok and report.checked == per_process * len(actors)
        assert [r.id for r in store.list(limit=None)] == list(range(1, per_process * len(actors) + 1))
        assert {actor: len(store.list(actor=actor, limit=None)) for actor in actors} == \
            {actor: per_process for actor in actors}


def test_concurrent_writers_mixing_record_and_record_many_lose_nothing(db_url):
    per_process, writers = 43, {"app": 1, "app-2": 1, "batch-8": 8, "batch-5": 5}
    assert run_processes(_write_batch, *[(db_url, per_process, actor, group)
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
    assert run_processes(_die_before_commit, (db_url, group)) == [-signal.SIGKILL]
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


def test_append_unless_a_key_is_recorded_appends_nothing_and_names_that_record(store):
    [first] = store.append([AuditEntry(make_decision(1), None, None, "a" * 32)], actor="app")
    blocked = store.append([AuditEntry(make_decision(2), None, None, "b" * 32), AuditEntry(make_decision(3))],
                           actor="app", unless=("a" * 32,))
    assert [(a.record.id, a.new) for a in blocked] == [(first.record.id, False)] * 2 and store.count() == 1
    [free] = store.append([AuditEntry(make_decision(2), None, None, "b" * 32)], actor="app", unless=("c" * 32,))
    assert free.new and store.count() == 2 and store.verify().ok


def test_list_matches_any_of_several_decisions(store):
    store.record_many([AuditEntry(make_decision(1)), AuditEntry(make_decision(2, decision="approve"))], actor="app")
    assert [r.decision for r in store.list(decision=("deny", "approve"))] == ["deny", "approve"]
    assert [r.decision for r in store.list(decision=["approve"])] == ["approve"]


def test_keyed_ids_recorded_keys_and_get_many_read_the_index(store):
    store.append([AuditEntry(make_decision(1), None, None, "a" * 32), AuditEntry(make_decision(2)),
                  AuditEntry(make_decision(3, decision="approve"), None, None, "b" * 32)], actor="app")
    assert store.keyed_ids(decision="deny") == [(1, "a" * 32), (2, None)]
    assert store.keyed_ids(decision="deny", dataset="credit") == []
    assert store.recorded_keys(["a" * 32, "b" * 32, "c" * 32]) == {"a" * 32, "b" * 32}
    assert [r.id for r in store.get_many([3, 1, 99])] == [1, 3]
