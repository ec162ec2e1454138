"""Issuing decisions: notice for denials only, a passing PDF check, and one audit record per decision."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from lendsafe.audit import AuditStore
from lendsafe.config import Settings
from lendsafe.issuance import Issuer, default_actor, open_audit_store
from lendsafe.pipeline import Pipeline
from lendsafe.config import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")
EXAMPLES = PROJECT_ROOT / "data" / "examples"
NOTICE_DATE = dt.date(2026, 3, 2)


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@pytest.fixture
def store(tmp_path):
    with AuditStore(f"sqlite:///{tmp_path / 'audit.db'}") as audit:
        yield audit


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(Settings(use_llm=False))


def test_a_denial_gets_a_checked_notice_and_one_audit_record(pipeline, store):
    issued = Issuer(pipeline, audit=store, actor="app:test").issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    assert issued.decision.denied and issued.notice is not None and issued.pdf.startswith(b"%PDF")
    assert issued.check.passed and issued.passed
    record = store.get(issued.record_id)
    assert record.actor == "app:test" and record.decision == "deny" and store.count() == 1
    assert record.to_decision().explanation == issued.decision.explanation
    assert store.replay(issued.record_id).identical


def test_an_approval_is_recorded_without_a_notice(pipeline, store):
    issued = Issuer(pipeline, audit=store, actor="app:test").issue(example("hmda_approval"))
    assert not issued.decision.denied and issued.notice is None and issued.pdf is None and issued.passed
    assert store.get(issued.record_id).notice_sha256 is None


def test_issue_many_records_each_decision_in_order(pipeline, store):
    apps = [example("hmda_denial"), example("hmda_approval"), example("hmda_denial")]
    issued = Issuer(pipeline, audit=store).issue_many(apps, notice_date=NOTICE_DATE)
    assert [i.record_id for i in issued] == [1, 2, 3] and store.verify().ok
    assert [i.decision.decision for i in issued] == ["deny", "approve", "deny"]


def test_without_a_store_nothing_is_recorded(pipeline):
    issued = Issuer(pipeline).issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    assert issued.record_id is None and issued.check.passed


def test_the_reference_choice_reaches_the_decision(pipeline):
    issued = Issuer(pipeline).issue(example("hmda_denial"), reference="cutoff", notice_date=NOTICE_DATE)
    assert issued.decision.reference == "cutoff"


def test_default_store_follows_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LENDSAFE_DATABASE_URL")
    with open_audit_store(Settings()) as audit:
        assert audit.url == f"sqlite:///{tmp_path / 'home' / 'audit.db'}"
    assert default_actor("cli").startswith("cli:")
