"""The hash chain: links over the canonical JSON, signatures, and the walk naming the first broken record
(``lendsafe.audit.chain``; tampering from outside the library is tests/test_tamper.py)."""
from __future__ import annotations

import dataclasses
import hashlib
from types import SimpleNamespace

import pytest

from audit_support import (checkpoints_in_tmp, clock, db_url, entries, execute_raw, fill, make_decision,  # noqa: F401
                           store)
from lendsafe.audit.anchor import AuditKey, ChainState
from lendsafe.audit.chain import GENESIS_HASH, chain_hash, check_own_hash, link, purge_log_entry
from lendsafe.audit.records import AuditRecord, canonical_json, record_body
from lendsafe.errors import AuditIntegrityError

KEY = AuditKey(b"k" * 32)

def test_each_record_links_to_the_previous_hash(store):
    records = fill(store, 4)
    assert records[0].prev_hash == GENESIS_HASH
    for previous, current in zip(records, records[1:]):
        assert current.prev_hash == previous.record_hash
        assert current.record_hash == chain_hash(previous.record_hash, current.content)
    report = store.verify()
    assert report.ok and report.checked == 4 and report.head_hash == records[-1].record_hash


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


def test_a_link_hashes_the_canonical_content_after_the_previous_hash_and_is_signed():
    body = record_body(make_decision(1), None, None, "app")
    row, content = link(body, 41, "f" * 64, "2024-01-15T12:00:01.000000Z", KEY)
    assert (content["id"], content["created_at"], row["id"], row["prev_hash"]) == \
        (42, "2024-01-15T12:00:01.000000Z", 42, "f" * 64)
    assert row["content"] == canonical_json(content)
    assert row["record_hash"] == hashlib.sha256((row["content"] + "f" * 64).encode()).hexdigest() \
        == chain_hash("f" * 64, content)
    assert KEY.check("record", row["record_hash"], row["record_mac"])
    assert not AuditKey(b"o" * 32).check("record", row["record_hash"], row["record_mac"])


def test_a_record_whose_content_no_longer_matches_its_hash_is_refused():
    row, content = link(record_body(make_decision(1), None, None, "app"), 0, GENESIS_HASH, "t", KEY)
    record = AuditRecord(**{**row, "content": content})
    check_own_hash(record)
    with pytest.raises(AuditIntegrityError, match="record 1: stored hash does not match"):
        check_own_hash(dataclasses.replace(record, content={**content, "actor": "mallory"}))


def test_a_purge_log_entry_links_to_the_previous_entry_and_is_signed():
    removed = [SimpleNamespace(id=i, record_hash=f"{i:064x}", created_at=f"2020-01-0{i}") for i in (3, 4, 5)]
    before = ChainState(head_id=9, head_hash="9" * 64, count=7, purges=1, purge_hash="e" * 64)
    entry = purge_log_entry(KEY, removed, {"months": 25, "actor": "officer"}, before)
    assert (entry["id"], entry["first_id"], entry["last_id"], entry["purged_count"], entry["record_id"]) == \
        (2, 3, 5, 3, 10)
    assert (entry["anchor_hash"], entry["last_created_at"], entry["prev_entry_hash"]) == \
        (f"{5:064x}", "2020-01-05", "e" * 64)
    hashed = {k: v for k, v in entry.items() if k not in ("entry_hash", "entry_mac")}
    assert entry["entry_hash"] == chain_hash("e" * 64, hashed) and KEY.check("purge", entry["entry_hash"],
                                                                              entry["entry_mac"])
