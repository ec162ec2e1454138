"""Audit records: the canonical bytes of a record, each kind's body, the entries callers hand in, the indexed
columns derived from the hashed content (``lendsafe.audit.records``)."""
from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, timezone

import pytest

from audit_support import checkpoints_in_tmp, clock, db_url, entries, fill, make_decision, store  # noqa: F401
from lendsafe.audit.records import (ACTOR_MAX_CHARS, AuditEntry, IncompleteEntry, RefusalEntry, encode_date,
                                    canonical_json, decode_date, entry_bodies, format_timestamp, index_columns,
                                    parse_timestamp, purge_body, record_body, sha256_hex)
from lendsafe.errors import AuditIntegrityError

def test_canonical_json_is_key_order_independent_and_compact():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == canonical_json({"a": [1.5, "é"], "b": 1}) \
        == '{"a":[1.5,"é"],"b":1}'


def test_canonical_json_refuses_nan_and_converts_numpy_scalars():
    import numpy as np

    with pytest.raises(AuditIntegrityError, match="canonically"):
        canonical_json({"risk": math.nan})
    assert canonical_json({"n": np.int64(3), "x": np.float64(0.25), "d": date(2024, 2, 29)}) \
        == '{"d":"2024-02-29","n":3,"x":0.25}'


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


INCOMPLETE = {"dataset": "hmda", "missing": ["condominium"], "application": {"dir": 0.3}}


@pytest.mark.parametrize("body, columns", [
    (lambda: record_body(make_decision(1), None, None, "app"),
     {"dataset": "hmda", "decision": "deny", "writer": "template", "first_reason": "DEBT_TO_INCOME"}),
    (lambda: record_body(make_decision(2, decision="approve", dataset="credit", writer="lora"), None, None, "app"),
     {"dataset": "credit", "decision": "approve", "writer": "lora", "first_reason": None}),
    (lambda: entry_bodies([RefusalEntry("adverse-action notice", "completeness check", {"title": "missing"},
                                        make_decision(3))], "batch", None)[0],
     {"dataset": "hmda", "decision": "refusal", "writer": "template", "first_reason": "DEBT_TO_INCOME"}),
    (lambda: entry_bodies([RefusalEntry("notice of incompleteness", "completeness check", {"title": "missing"},
                                        record=INCOMPLETE)], "batch", None)[0],
     {"dataset": "hmda", "decision": "refusal", "writer": None, "first_reason": None}),
    (lambda: purge_body("officer", {"entry_hash": "a" * 64}),
     {"dataset": "audit", "decision": "purge", "writer": None, "first_reason": None}),
    (lambda: {**record_body(make_decision(4), None, None, "app"), "kind": ["not", "a", "kind"]},
     {"dataset": "hmda", "decision": "deny", "writer": "template", "first_reason": "DEBT_TO_INCOME"}),
])
def test_index_columns_are_derived_from_each_kinds_content(body, columns):
    content = {**body(), "id": 7, "created_at": "2024-01-15T12:00:01.000000Z"}
    derived = index_columns(content)
    assert {name: derived[name] for name in columns} == columns
    assert (derived["id"], derived["created_at"], derived["actor"]) == (7, content["created_at"], content["actor"])


class _Notice:
    """The fields of a notice a record keeps (to_dict, notice_date, document_id)."""

    notice_date, document_id = date(2026, 3, 2), "INC-1"

    def to_dict(self) -> dict:
        return {"notice_date": self.notice_date.isoformat(), "document_id": self.document_id}


def test_an_incompleteness_body_keeps_the_record_notice_and_pdf_hash():
    [body] = entry_bodies([IncompleteEntry(INCOMPLETE, _Notice(), b"%PDF-inc", "ab" * 8, "cd" * 16)], "batch", None)
    assert (body["kind"], body["record"], body["notice_sha256"], body["notice_pdf_bytes"]) == \
        ("incomplete", INCOMPLETE, sha256_hex(b"%PDF-inc"), 8)
    assert (body["document_id"], body["issue_key"], body["batch"]) == ("INC-1", "ab" * 8, "cd" * 16)
    assert decode_date(body["notice_date"]) == date(2026, 3, 2)


@pytest.mark.parametrize("entry, problem", [
    (IncompleteEntry({"dataset": "hmda", "missing": []}, _Notice(), b"%PDF"), "naming the missing fields"),
    (RefusalEntry("adverse-action notice", "completeness check", {}), "names the decision or the incompleteness"),
    (AuditEntry(make_decision(), issue_key="not-hex"), "issue_key must be 16-64 hex digits"),
    (AuditEntry(make_decision(), batch="ab" * 40), "batch must be 16-64 hex digits"),
])
def test_an_entry_that_cannot_be_recorded_is_named(entry, problem):
    with pytest.raises(AuditIntegrityError, match=f"entry 2 of 2: .*{problem}"):
        entry_bodies([AuditEntry(make_decision()), entry], "batch", None)


@pytest.mark.parametrize("actor", [None, "", "a" * (ACTOR_MAX_CHARS + 1), "line\nbreak"])
def test_an_actor_is_a_short_line_of_text(actor):
    with pytest.raises(AuditIntegrityError, match="actor"):
        entry_bodies([], actor, None)


@pytest.mark.parametrize("value", [datetime(2024, 3, 5, 9, 30), date(2024, 3, 5), "2024-03-05", "5 March 2024", None])
def test_a_notice_date_comes_back_as_it_was_passed(value):
    back = decode_date(json.loads(canonical_json(encode_date(value))))
    assert back == (date(2024, 3, 5) if value == "2024-03-05" else value)


def test_timestamps_are_fixed_width_utc_and_read_back():
    moment = datetime(2024, 2, 29, 23, 59, 58, 7, tzinfo=timezone.utc)
    assert format_timestamp(moment) == "2024-02-29T23:59:58.000007Z" == format_timestamp(moment.replace(tzinfo=None))
    assert parse_timestamp(format_timestamp(moment)) == moment and parse_timestamp("2024-02-29") is None


# ----------------------------------------------------------------------------- review records

def test_review_records_index_their_item_and_a_hold_keeps_its_decision(store):
    from lendsafe.audit.records import ReviewEntry

    decision = make_decision(1)
    details = {"dataset": "hmda", "writer": "template", "first_reason": "DEBT_TO_INCOME", "held_for": ["batch"]}
    [held] = store.record_many([ReviewEntry("hold", details, decision, "a" * 32)], actor="app")
    [edited] = store.record_many([ReviewEntry("edit", {**details, "item": held.id, "text": "x"})], actor="app")
    assert (held.decision, held.first_reason, held.writer, held.issue_key) == ("held", "DEBT_TO_INCOME", "template",
                                                                               "a" * 32)
    assert held.content["decision"] == json.loads(canonical_json(decision.to_dict())) and held.kind == "review"
    assert edited.decision == "edited" and "decision" not in edited.content and store.verify().ok


@pytest.mark.parametrize("entry, problem", [
    (("approve", {"dataset": "hmda"}, None), "review action must be one of"),
    (("edit", {}, None), "names the dataset of its item"),
    (("hold", {"dataset": "hmda"}, None), "a hold records the decision it holds"),
    (("reject", {"dataset": "hmda"}, "decision"), "a hold records the decision it holds"),
])
def test_review_entries_are_checked(store, entry, problem):
    from lendsafe.audit.records import ReviewEntry

    action, details, decision = entry
    with pytest.raises(AuditIntegrityError, match=problem):
        store.record_many([ReviewEntry(action, details, make_decision(1) if decision else None)], actor="app")
    assert store.count() == 0


def test_a_decision_issued_by_a_review_carries_its_review_section(store):
    review = {"item": 1, "revision": 2, "approved_by": "app:bob"}
    [record] = store.record_many([AuditEntry(make_decision(1), None, None, None, None, review)], actor="app:bob")
    assert record.content["review"] == review and record.decision == "deny"
    [plain] = store.record_many([AuditEntry(make_decision(2))], actor="app")
    assert "review" not in plain.content
