"""Retention under 12 CFR 1002.12(b): the lawful periods, records past them, purges and their log
(``lendsafe.audit.retention``, the purge itself through ``AuditStore.purge``)."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from audit_support import Clock, checkpoints_in_tmp, clock, db_url, execute_raw, fill, store  # noqa: F401
from lendsafe.audit.retention import (MAX_RETENTION_MONTHS, check_retention, months_before, purge_fields,
                                      purge_request, retention_problem)
from lendsafe.audit.store import AuditStore
from lendsafe.errors import AuditIntegrityError, ConfigurationError

def test_months_before_clamps_to_the_last_day_of_the_month():
    assert months_before(datetime(2024, 3, 31, 9, 30), 1) == datetime(2024, 2, 29, 9, 30)
    assert months_before(datetime(2026, 1, 31), 25) == datetime(2023, 12, 31)


def _age_records(store: AuditStore, clock: Clock) -> list:
    """Five records made in January 2020, three in June 2022."""
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


@pytest.mark.parametrize("months, credit, problem", [
    (24, "consumer", "at least 25 months for consumer credit"),
    (11, "business", "at least 12 months for business credit"),
    (True, "business", "got True"),
    (25.0, "consumer", "got 25.0"),
    (MAX_RETENTION_MONTHS + 1, "consumer", f"at most {MAX_RETENTION_MONTHS}"),
])
def test_a_retention_period_below_the_rule_or_not_whole_is_refused(months, credit, problem):
    with pytest.raises(AuditIntegrityError, match=problem):
        check_retention(months, credit)
    assert check_retention(25, "consumer") is None and check_retention(12, "business") is None


def _purge_log_row(**changes) -> SimpleNamespace:
    """A lawful purge-log entry (25 months, consumer credit), with ``changes``."""
    purge = purge_request(25, "consumer", "officer", datetime(2024, 6, 1, tzinfo=timezone.utc))
    values = {"id": 1, **purge, "first_id": 1, "last_id": 5, "purged_count": 5,
              "last_created_at": "2020-01-01T00:00:05.000000Z", **changes}
    return SimpleNamespace(**values)


@pytest.mark.parametrize("changes, problem", [
    ({}, None),
    ({"credit": None, "months": 12, "cutoff": "2023-06-01T00:00:00.000000Z"}, None),       # written before 0002
    ({"months": 13}, "used a 13-month retention period; 12 CFR 1002.12(b) requires at least 25"),
    ({"credit": "mortgage"}, "names credit 'mortgage'"),
    ({"cutoff": "2023-01-01T00:00:00.000000Z"}, "has cutoff 2023-01-01"),
    ({"purged_count": 4}, "claims 4 records removed; its range holds 5"),
    ({"last_created_at": "2023-01-01T00:00:00.000000Z"}, "not before its cutoff"),
])
def test_verify_rechecks_the_rule_for_every_purge_log_entry(changes, problem):
    found = retention_problem(_purge_log_row(**changes))
    assert found == problem if problem is None else problem in found


def test_purge_fields_omit_the_signature_and_columns_added_later_when_unset():
    entry = {"id": 1, "months": 25, "entry_mac": "m" * 64, "credit": None, "record_id": None, "last_created_at": "t"}
    assert purge_fields(entry) == {"id": 1, "months": 25, "last_created_at": "t"}
