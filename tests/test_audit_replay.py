"""Replay: the notice rebuilt from its record alone, compared with what was recorded (``lendsafe.audit.replay``)."""
from __future__ import annotations

import dataclasses
import json
from datetime import date

import pytest

import lendsafe.audit.replay as replay_module
from audit_support import (checkpoints_in_tmp, clock, db_url, execute_raw, fill, make_decision,  # noqa: F401
                           record_with_notice, store)
from lendsafe.audit.records import AuditEntry, sha256_hex
from lendsafe.audit.replay import (REBUILT, REBUILT_INCOMPLETE, RERENDERED, replay_mode, replay_notice,
                                   replay_record, replayable)
from lendsafe.audit.store import AuditStore
from lendsafe.errors import AuditIntegrityError
from lendsafe.notice import NoticeSettings, build_notice, render_pdf

def test_replay_regenerates_the_notice_byte_for_byte(store):
    record, pdf = record_with_notice(store)
    result = replay_notice(store, record.id)
    assert result.identical and result.mode == REBUILT and result.pdf == pdf
    assert result.recorded_sha256 == result.replayed_sha256 == sha256_hex(pdf)
    assert record.content["document_id"] == "AAN-TEST-1"


def test_replay_of_records_written_in_one_group_is_byte_for_byte(store):
    settings, group = NoticeSettings(), []
    for n in (1, 2):
        decision = make_decision(n)
        notice = build_notice(decision, settings, notice_date=date(2024, 3, 5), document_id=f"AAN-G-{n}")
        group.append(AuditEntry(decision, notice, render_pdf(notice)))
    group.insert(1, AuditEntry(make_decision(3, decision="approve")))
    records = store.record_many(group, actor="batch", notice_settings=settings)
    for record, entry in zip(records, group):
        if entry.notice is None:
            assert record.notice_sha256 is None
            continue
        result = replay_notice(store, record.id)
        assert result.identical and result.mode == REBUILT and result.pdf == entry.notice_pdf


def test_replay_without_recorded_settings_rerenders_the_recorded_notice(store):
    record, pdf = record_with_notice(store, with_settings=False)
    result = replay_notice(store, record.id)
    assert result.identical and result.mode == RERENDERED and result.pdf == pdf


def test_replay_says_which_fields_and_hashes_differ(store, monkeypatch):
    record, pdf = record_with_notice(store)
    monkeypatch.setattr(replay_module, "build_notice", lambda *a, **k: dataclasses.replace(
        build_notice(*a, **k), creditor_name="Another Lender"))
    monkeypatch.setattr(replay_module, "render_pdf", lambda notice: render_pdf(notice) + b"\n% changed")
    result = replay_notice(store, record.id)
    assert not result.identical
    assert any("'creditor_name'" in line and "Another Lender" in line for line in result.differences)
    assert any(line.startswith("notice PDF sha256: recorded " + sha256_hex(pdf)) for line in result.differences)


def test_replay_refuses_records_without_notice_or_with_altered_content(store, db_url):
    [approved] = fill(store, 1, decision="approve")
    with pytest.raises(AuditIntegrityError, match="no notice to replay"):
        replay_notice(store, approved.id)
    record, _ = record_with_notice(store)
    execute_raw(db_url, f"UPDATE audit_records SET content = REPLACE(content, 'Applicant 1', 'Applicant 9') "
                        f"WHERE id = {record.id}", bypass=store.backend)
    with pytest.raises(AuditIntegrityError, match="altered"):
        replay_notice(store, record.id)


def test_replay_of_a_notice_of_incompleteness_names_what_differs(tmp_path, monkeypatch):
    from lendsafe.config import PROJECT_ROOT
    from lendsafe.notice.incomplete import triage
    from lendsafe.issue.issuer import Issuer

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    triaged = triage({k: v for k, v in application.items() if k != "condominium"}, "hmda")
    with AuditStore(f"sqlite:///{tmp_path / 'a.db'}") as store:
        issued = Issuer(None, audit=store).issue_incomplete(triaged, "hmda", notice_date=date(2026, 3, 2))
        real = replay_module.render_incomplete_pdf
        monkeypatch.setattr(replay_module, "render_incomplete_pdf",
                            lambda notice: real(notice) + b"\n% changed renderer")
        replayed = replay_notice(store, issued.record_id)
    assert not replayed.identical and replayed.mode.startswith("rebuilt from the recorded incompleteness record")
    assert any(line.startswith("notice PDF sha256: recorded") for line in replayed.differences)


def test_replay_passes_the_recorded_application_date_and_counteroffer_to_build_notice(store, monkeypatch):
    record, pdf = record_with_notice(store)
    calls = []
    monkeypatch.setattr(replay_module, "build_notice", lambda *a, **k: calls.append(k) or build_notice(*a, **k))
    assert replay_notice(store, record.id).identical
    assert calls == [{"notice_date": date(2024, 3, 5), "document_id": "AAN-TEST-1",
                      "application_date": record.content["notice"]["application_date"], "counteroffer": None,
                      "educational": ()}]


def test_each_record_kind_says_whether_and_how_it_replays(store):
    with_settings, _ = record_with_notice(store, 1)
    without_settings, _ = record_with_notice(store, 2, with_settings=False)
    [approved] = fill(store, 1, decision="approve")
    assert [replay_mode(r) for r in (with_settings, without_settings)] == [REBUILT, RERENDERED]
    assert [replayable(r) for r in (with_settings, without_settings, approved)] == [True, True, False]
    purge_record = dataclasses.replace(approved, content={**approved.content, "kind": "purge", "notice": {}})
    with pytest.raises(AuditIntegrityError, match="is the chain record of a purge"):
        replay_mode(purge_record)
    assert not replayable(purge_record) and replay_record(with_settings).mode == REBUILT
    assert REBUILT_INCOMPLETE.startswith("rebuilt from the recorded incompleteness record")


@pytest.mark.parametrize("approved, identical", [("printed", True), ("other", False)])
def test_an_approved_notice_must_print_the_paragraph_its_review_approved(store, approved, identical):
    decision = make_decision(1)
    settings = NoticeSettings()
    notice = build_notice(decision, settings, notice_date=date(2024, 3, 5), document_id="AAN-TEST-R")
    pdf = render_pdf(notice)
    text = notice.explanation if approved == "printed" else "another paragraph"
    review = {"item": 1, "revision": 1, "text_sha256": sha256_hex(text.encode("utf-8"))}
    [record] = store.record_many([AuditEntry(decision, notice, pdf, None, None, review)], actor="app:bob",
                                 notice_settings=settings)
    result = replay_notice(store, record.id)
    assert result.identical is identical
    assert identical or any("the review approved" in line for line in result.differences)


def test_a_review_action_has_no_notice_to_replay(store):
    from lendsafe.audit.records import ReviewEntry

    [held] = store.record_many([ReviewEntry("hold", {"dataset": "hmda"}, make_decision(1), "a" * 32)], actor="app")
    with pytest.raises(AuditIntegrityError, match="is a review action"):
        replay_notice(store, held.id)
