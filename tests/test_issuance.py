"""Issuing decisions: notice for denials only, a passing PDF check, and one audit record per decision."""
from __future__ import annotations

import dataclasses
import hashlib
import datetime as dt
import json
import math
import shutil

import pytest

from lendsafe.audit.records import sha256_hex
from lendsafe.audit.replay import replay_notice
from lendsafe.audit.store import AuditStore
from lendsafe.config import Settings
from lendsafe.errors import AuditIntegrityError
from lendsafe.issue.issuer import Issuer, default_actor, open_audit_store
from lendsafe.explain.pipeline import Pipeline
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
    assert replay_notice(store, issued.record_id).identical


def test_an_approval_is_recorded_without_a_notice(pipeline, store):
    issued = Issuer(pipeline, audit=store, actor="app:test").issue(example("hmda_approval"))
    assert not issued.decision.denied and issued.notice is None and issued.pdf is None and issued.passed
    assert store.get(issued.record_id).notice_sha256 is None


def count_commits(store: AuditStore) -> list:
    from sqlalchemy import event

    commits = []
    event.listen(store._engine, "commit", lambda _conn: commits.append(1))
    return commits


def test_issue_many_records_each_decision_in_order_in_one_transaction(pipeline, store):
    apps = [example("hmda_denial"), example("hmda_approval"), example("hmda_denial")]
    commits = count_commits(store)
    issued = Issuer(pipeline, audit=store).issue_many(apps, notice_date=NOTICE_DATE)
    assert len(commits) == 1
    assert [i.record_id for i in issued] == [1, 2, 3] and store.verify().ok
    assert [i.decision.decision for i in issued] == ["deny", "approve", "deny"]
    for one in issued:
        record = store.get(one.record_id)
        assert record.to_decision() == one.decision
        assert record.notice_sha256 == (None if one.pdf is None else sha256_hex(one.pdf))
    assert replay_notice(store, issued[2].record_id).identical


def test_issue_decisions_records_nothing_when_one_decision_cannot_be_recorded(pipeline, store):
    issuer = Issuer(pipeline, audit=store)
    denial, approval = pipeline.run(example("hmda_denial")), pipeline.run(example("hmda_approval"))
    with pytest.raises(AuditIntegrityError, match="entry 2 of 2"):
        issuer.issue_decisions([denial, dataclasses.replace(approval, risk=math.nan)], notice_date=NOTICE_DATE)
    assert store.count() == 0
    assert [i.record_id for i in issuer.issue_decisions([approval, denial], notice_date=NOTICE_DATE)] == [1, 2]


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


# ------------------------------------------------------------------------------- re-verification and settings

def test_an_explanation_that_fails_the_verifier_now_is_not_issued(pipeline, store):
    from lendsafe.issue.issuer import UnverifiedExplanationError

    denial = pipeline.run(example("hmda_denial"))
    for text in ("You may apply again next month.", denial.explanation + " Our model is sure."):
        with pytest.raises(UnverifiedExplanationError, match="fails verification at issue time") as caught:
            Issuer(pipeline, audit=store).issue(denial.with_updates(explanation=text), notice_date=NOTICE_DATE)
        assert caught.value.failures
    refusals = store.list()
    assert [(r.kind, r.decision, r.notice_sha256) for r in refusals] == [("refusal", "refusal", None)] * 2
    for record, text in zip(refusals, ("You may apply again next month.", "Our model is sure.")):
        refused = record.content["refused"]
        assert refused["reason"] == "explanation verification" and refused["document"] == "adverse-action notice"
        assert text in refused["decision"]["explanation"] and refused["failures"]
        assert record.first_reason == denial.reasons[0].code and record.dataset == "hmda"
    assert Issuer(pipeline, audit=store).issue(denial, notice_date=NOTICE_DATE).passed
    assert store.count() == 3 and store.verify().ok
    with pytest.raises(AuditIntegrityError, match="is a refusal: no notice was issued"):
        replay_notice(store, refusals[0].id)


def test_notices_are_specimens_until_the_lender_settings_are_given(pipeline):
    from lendsafe.notice.settings import NoticeSettings

    demo = Issuer(pipeline).issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    assert demo.notice.specimen and demo.check.specimen and demo.check.passed
    settings = NoticeSettings.from_file(EXAMPLES / "lender.toml")
    real = Issuer(pipeline, notice_settings=settings).issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    assert not real.notice.specimen and not real.check.specimen and real.check.passed


def test_an_incomplete_application_gets_a_checked_notice_of_incompleteness(pipeline):
    from lendsafe.notice.incomplete import triage

    application = {k: v for k, v in example("hmda_denial").items() if k != "condominium"}
    issued = Issuer(pipeline).issue_incomplete(triage(application, "hmda"), "hmda", notice_date=NOTICE_DATE)
    assert issued.passed and issued.record["missing"] == ["condominium"] and issued.pdf.startswith(b"%PDF")
    assert issued.notice.deadline == "2026-04-01" and issued.record_id is None


def test_a_notice_of_incompleteness_is_recorded_chained_and_replayable(pipeline, store):
    from lendsafe.notice.incomplete import triage

    application = {k: v for k, v in example("hmda_denial").items() if k != "condominium"}
    issued = Issuer(pipeline, audit=store, actor="cli:officer").issue_incomplete(
        triage(application, "hmda"), "hmda", notice_date=NOTICE_DATE)
    record = store.get(issued.record_id)
    assert (record.kind, record.decision, record.dataset, record.actor) == ("incomplete", "incomplete", "hmda",
                                                                            "cli:officer")
    assert record.notice_sha256 == hashlib.sha256(issued.pdf).hexdigest()
    assert record.content["record"]["missing"] == ["condominium"]
    assert record.content["notice"]["missing"] == list(issued.notice.missing)
    assert record.content["document_id"] == issued.notice.document_id and store.verify().ok
    replayed = replay_notice(store, record.id)
    assert replayed.identical and replayed.pdf == issued.pdf, replayed.summary()


def test_a_notice_that_fails_its_completeness_check_is_refused_and_recorded_as_a_refusal(pipeline, store, monkeypatch):
    import lendsafe.issue.issuer as issuer_module
    import lendsafe.notice.check as notice_module
    from lendsafe.issue.issuer import NoticeCheckError

    denial = pipeline.run(example("hmda_denial"))
    real = notice_module.check_pdf

    def failing(pdf, notice, decision, settings=None):
        check = real(pdf, notice, decision, settings)
        return dataclasses.replace(check, checks={**check.checks, "applicant": notice_module.CheckResult(
            False, "missing: applicant name")})

    monkeypatch.setattr(issuer_module, "check_pdf", failing)
    with pytest.raises(NoticeCheckError, match=r"fails its completeness check \(applicant: missing") as caught:
        Issuer(pipeline, audit=store).issue(denial, notice_date=NOTICE_DATE)
    assert caught.value.failures == {"applicant": "missing: applicant name"} and store.count() == 1
    [refusal] = store.list()
    refused = refusal.content["refused"]
    assert (refusal.kind, refusal.notice_sha256, refused["reason"]) == ("refusal", None, "completeness check")
    assert refused["failures"] == {"applicant": "missing: applicant name"}
    assert refused["document_id"] == refused["notice"]["document_id"] and refused["decision"]["decision"] == "deny"


@pytest.mark.parametrize("date", ["0001-01-01", "1899-12-31", "9999-12-31"])
def test_dates_no_notice_may_print_are_refused_for_approvals_too(pipeline, store, date):
    from lendsafe.errors import InvalidApplicationError

    for name in ("hmda_denial", "hmda_approval"):
        application = {**example(name), "application_date": date}
        with pytest.raises(InvalidApplicationError, match=f"application_date must be a date from 1900-01-01 .* got {date}"):
            Issuer(pipeline, audit=store).issue(application, notice_date=NOTICE_DATE)
    assert store.count() == 0


def test_issue_keys_are_recorded_and_found(pipeline, store):
    issuer = Issuer(pipeline, audit=store)
    decision = pipeline.run(example("hmda_approval"))
    [record_id] = issuer.record_many([(decision, None, None)], keys=["ab" * 16])
    assert store.issued()["ab" * 16].id == record_id and store.verify().ok
    [again] = issuer.append([(decision, None, None, "ab" * 16)])
    assert (again.record.id, again.new, store.count()) == (record_id, False, 1), "a key is issued once"
    with pytest.raises(AuditIntegrityError, match="issue_key must be 16-64 hex digits"):
        issuer.record_many([(decision, None, None)], keys=["not a key"])


# ------------------------------------------------------------------------------- one entry for every face

def test_the_library_api_is_pipeline_issuer_and_decision():
    import lendsafe
    from lendsafe import Decision, Issuer as exported, Pipeline as pipeline_class

    assert exported is Issuer and pipeline_class is Pipeline and Decision.__module__ == "lendsafe.decide.decision"
    assert {"Pipeline", "Issuer", "Decision"} <= set(lendsafe.__all__)
    assert "issuer.issue(application)" in Issuer.__doc__


def test_a_decision_already_made_is_issued_as_it_is_not_decided_again(pipeline, store):
    denial = pipeline.run(example("hmda_denial"))
    issued = Issuer(pipeline, audit=store).issue(denial, notice_date=NOTICE_DATE)
    assert issued.decision is denial and issued.check.passed
    assert store.get(issued.record_id).to_decision() == denial


def test_issue_with_incomplete_gives_a_notice_of_incompleteness_for_missing_fields(pipeline, store):
    from lendsafe.issue.issuer import IssuedIncomplete

    application = {k: v for k, v in example("hmda_denial").items() if k != "condominium"}
    issued = Issuer(pipeline, audit=store).issue(application, notice_date=NOTICE_DATE, incomplete=True)
    assert isinstance(issued, IssuedIncomplete) and issued.record["missing"] == ["condominium"]
    assert store.get(issued.record_id).kind == "incomplete"
    complete = Issuer(pipeline, audit=store).issue(example("hmda_denial"), notice_date=NOTICE_DATE, incomplete=True)
    assert complete.decision.denied and store.count() == 2


def test_without_incomplete_a_missing_field_is_refused_and_nothing_recorded(pipeline, store):
    from lendsafe.errors import InvalidApplicationError

    application = {k: v for k, v in example("hmda_denial").items() if k != "condominium"}
    with pytest.raises(InvalidApplicationError, match="condominium"):
        Issuer(pipeline, audit=store).issue(application, notice_date=NOTICE_DATE)
    assert store.count() == 0


def test_record_decision_keeps_the_decision_without_a_notice(pipeline, store):
    explained = Issuer(pipeline, audit=store, actor="cli:analyst").record_decision(example("hmda_denial"))
    record = store.get(explained.record_id)
    assert explained.decision.denied and explained.notice is None and record.notice_sha256 is None
    assert record.actor == "cli:analyst" and record.to_decision() == explained.decision


def test_render_notice_checks_the_notice_and_records_nothing(pipeline):
    from lendsafe.issue.issuer import UnverifiedExplanationError, render_notice

    denial = pipeline.run(example("hmda_denial"))
    notice, pdf, check = render_notice(denial, notice_date=NOTICE_DATE)
    assert check.passed and pdf.startswith(b"%PDF") and notice.specimen
    assert render_notice(pipeline.run(example("hmda_approval"))) == (None, None, None)
    with pytest.raises(UnverifiedExplanationError):
        render_notice(denial.with_updates(explanation="You may apply again next month."))


def _educational_settings(**changes):
    from lendsafe.notice.settings import NoticeSettings

    return dataclasses.replace(NoticeSettings.from_file(EXAMPLES / "lender.toml"), educational_section=True, **changes)


def test_the_educational_section_is_off_by_default_and_prints_nothing(pipeline):
    issued = Issuer(pipeline).issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    assert issued.notice.educational == () and "educational" not in issued.notice.to_dict()
    assert issued.check.checks["educational_section"].passed


def test_the_educational_section_prints_proven_options_and_replays_byte_for_byte(pipeline, store):
    from lendsafe.notice.text import compact
    from lendsafe.recourse import find_recourse

    issuer = Issuer(pipeline, notice_settings=_educational_settings(educational_options=1), audit=store)
    issued = issuer.issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    sentences = issued.notice.educational
    assert len(sentences) == 2 and sentences[0].startswith("For your information only: had the")
    assert issued.check.passed and issued.check.checks["educational_section"].passed
    text = compact(issued.check.text)
    assert all(compact(s) in text for s in sentences)
    # the option printed is one the same model approves when it re-scores it
    recourse = find_recourse(pipeline.scorer, issued.decision.application, issued.decision.reference)
    assert recourse.options and all(o.decision.decision == "approve" for o in recourse.options)
    assert replay_notice(store, issued.record_id).identical


def test_a_pdf_without_the_issued_educational_section_fails_its_check(pipeline):
    from lendsafe.notice import check_pdf, render_pdf

    settings = _educational_settings()
    issued = Issuer(pipeline, notice_settings=settings).issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    stripped = render_pdf(dataclasses.replace(issued.notice, educational=()))
    check = check_pdf(stripped, issued.notice, issued.decision, settings)
    assert not check.passed and not check.checks["educational_section"].passed


def test_an_issuer_without_a_pipeline_prints_the_same_educational_section(pipeline):
    settings = _educational_settings()
    decided = Issuer(pipeline, notice_settings=settings).issue(example("hmda_denial"), notice_date=NOTICE_DATE)
    again = Issuer(None, notice_settings=settings).issue(decided.decision, notice_date=NOTICE_DATE)
    assert again.notice.educational == decided.notice.educational and again.pdf == decided.pdf
