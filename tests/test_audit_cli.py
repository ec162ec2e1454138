"""``lendsafe audit``: list, show, verify, replay, export, retention and purge from the shell
(``lendsafe.commands.audit``)."""
from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from audit_support import Clock, checkpoints_in_tmp, execute_raw, fill, record_with_notice  # noqa: F401
from lendsafe.audit.records import sha256_hex
from lendsafe.audit.store import AuditStore
from lendsafe.cli import main as cli_main

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


def test_cli_replay_and_export(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with AuditStore(url) as store:
        record, pdf = record_with_notice(store)
    code, out, _ = run_cli(capsys, url, "replay", str(record.id), "--out", str(tmp_path / "notice.pdf"))
    assert code == 0 and "byte for byte" in out and (tmp_path / "notice.pdf").read_bytes() == pdf
    code, out, _ = run_cli(capsys, url, "export", str(record.id), "--out", str(tmp_path / "pack"))
    assert code == 0 and "replay: identical" in out
    assert (tmp_path / "pack" / f"notice-{record.id}.pdf").read_bytes() == pdf


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


def test_cli_lists_the_records_of_notices_held_for_review(tmp_path, capsys):
    from lendsafe.config import PROJECT_ROOT, Settings
    from lendsafe.explain.pipeline import Pipeline
    from lendsafe.review import Reviewer

    denial = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    url = f"sqlite:///{tmp_path / 'held.db'}"
    with AuditStore(url) as store:
        fill(store, 1, actor="app")
        Reviewer(store).hold([Pipeline(Settings(use_llm=False)).run(denial)], actor="app")
    code, out, _ = run_cli(capsys, url, "list", "--decision", "held", "--json")
    assert code == 0 and [json.loads(line)["decision"] for line in out.splitlines()] == ["held"]
