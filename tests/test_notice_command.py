"""`lendsafe check-notice`: a notice PDF against the notice as issued, found by its audit record
(--record N) or by its decision (--decision FILE), in the store given with --db."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from lendsafe.audit.store import AuditStore
from lendsafe.cli import main
from lendsafe.notice import NoticeSettings, render_pdf

from notice_helpers import NOTICE_DATE, issued, lender, make_decision, needs_poppler

pytestmark = needs_poppler


@pytest.fixture
def store_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


def record(url: str, decision, notice=None, settings=None) -> int:
    """Audit id of `decision` recorded with `notice` (and its PDF) made with `settings`."""
    with AuditStore(url) as store:
        return store.record(decision, notice=notice, notice_pdf=None if notice is None else render_pdf(notice),
                            actor="test", notice_settings=settings or NoticeSettings()).id


def test_check_notice_command_prints_json_and_sets_the_exit_code(tmp_path, capsys, store_url):
    decision = make_decision()
    notice = issued(decision)
    record(store_url, decision, notice)
    pdf, decision_file = tmp_path / "n.pdf", tmp_path / "d.json"
    pdf.write_bytes(render_pdf(notice))
    decision_file.write_text(json.dumps(decision.to_dict(), default=str))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file), "--db", store_url]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    pdf.write_bytes(render_pdf(issued(make_decision(2))))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file), "--db", store_url]) == 1
    assert json.loads(capsys.readouterr().out)["passed"] is False
    pdf.write_bytes(b"not a pdf at all")
    assert main(["check-notice", str(pdf), "--decision", str(decision_file), "--db", store_url]) == 2
    assert "pdf: expected a PDF file" in capsys.readouterr().err


def test_a_decision_never_issued_is_refused_naming_record(tmp_path, capsys, store_url):
    decision = make_decision()
    pdf, decision_file = tmp_path / "n.pdf", tmp_path / "d.json"
    pdf.write_bytes(render_pdf(issued(decision)))
    decision_file.write_text(json.dumps(decision.to_dict(), default=str))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file), "--db", store_url]) == 2
    assert "no notice issued for the decision" in capsys.readouterr().err


def test_a_decision_issued_twice_is_checked_against_the_notice_with_these_bytes(tmp_path, capsys, store_url):
    decision = make_decision()
    first, later = issued(decision), issued(decision, notice_date=NOTICE_DATE + dt.timedelta(days=1))
    for notice in (first, later):
        record(store_url, decision, notice)
    pdf, decision_file = tmp_path / "n.pdf", tmp_path / "d.json"
    decision_file.write_text(json.dumps(decision.to_dict(), default=str))
    pdf.write_bytes(render_pdf(first))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file), "--db", store_url]) == 0
    capsys.readouterr()
    pdf.write_bytes(render_pdf(issued(decision, notice_date=NOTICE_DATE + dt.timedelta(days=2))))
    assert main(["check-notice", str(pdf), "--decision", str(decision_file), "--db", store_url]) == 2
    assert "was issued 2 times" in capsys.readouterr().err


def test_record_checks_against_the_notice_and_settings_recorded(tmp_path, capsys, store_url):
    decision, settings = make_decision(4), lender()
    notice = issued(decision, settings)
    record_id = record(store_url, decision, notice, settings)
    pdf = tmp_path / "n.pdf"
    pdf.write_bytes(render_pdf(notice))
    assert main(["check-notice", str(pdf), "--record", str(record_id), "--db", store_url]) == 0
    assert json.loads(capsys.readouterr().out)["checks"]["issued_notice"]["passed"] is True
    pdf.write_bytes(render_pdf(issued(decision, settings, notice_date=NOTICE_DATE - dt.timedelta(days=1))))
    assert main(["check-notice", str(pdf), "--record", str(record_id), "--db", store_url]) == 1
    failures = {name for name, c in json.loads(capsys.readouterr().out)["checks"].items() if not c["passed"]}
    assert failures == {"dates", "document_id"}


def test_record_without_a_notice_is_refused(tmp_path, capsys, store_url):
    record_id = record(store_url, make_decision(decision="approve"))
    pdf = tmp_path / "n.pdf"
    pdf.write_bytes(render_pdf(issued(make_decision())))
    assert main(["check-notice", str(pdf), "--record", str(record_id), "--db", store_url]) == 2
    assert "no notice was issued under it" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        main(["check-notice", str(pdf), "--record", "0", "--db", store_url])
    assert refused.value.code == 2 and "expected an audit record id from 1" in capsys.readouterr().err
