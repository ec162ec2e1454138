"""Review actions (``lendsafe.review.actions``): hold, approve, edit, reject, reassign; each on the audit
chain; the separation of duties; closed items; stale revisions; two real processes acting at once."""
from __future__ import annotations

import pickle

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lendsafe.audit.records import sha256_hex
from lendsafe.audit.replay import replay_notice
from lendsafe.audit.store import AuditStore
from lendsafe.config import PROJECT_ROOT
from lendsafe.issue.issuer import Issued, Issuer, IssueRefused
from lendsafe.review import (Held, ReviewBlockedError, ReviewClosedError, ReviewConflictError, ReviewError,
                             ReviewItemNotFoundError, Reviewer, ReviewPolicy, SeparationOfDutiesError,
                             hold_for_review, issue_or_hold)
from lendsafe.review.keys import outcome_key

from audit_support import db_url  # noqa: F401
from review_support import denial, example, failing_text, other_denial, passing_text, pipeline, reviewer, store  # noqa: F401

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")


def held_item(reviewer, decision, actor="app:ann") -> int:
    [held] = reviewer.hold([decision], actor=actor, held_for=("batch",))
    return held.item_id


def decision_records(store):
    return [r for r in store.list(limit=None) if r.kind == "decision"]


def test_a_held_denial_is_pending_in_the_queue_and_on_the_chain(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    [item] = reviewer.queue()
    assert item.id == item_id and item.status == "pending" and item.current.number == 0 and item.current.passed
    assert item.decision == denial and item.held_for == ("batch",)
    [record] = store.list(limit=None)
    assert record.decision == "held" and record.first_reason == denial.reasons[0].code and not decision_records(store)
    assert store.verify().ok


def test_holding_the_same_decision_twice_finds_the_first_item(reviewer, store, denial):
    first = held_item(reviewer, denial)
    [again] = reviewer.hold([denial], actor="app:bob")
    assert again.item_id == first and not again.new and store.count() == 1


def test_approve_issues_the_drafted_notice_and_replays_it_byte_for_byte(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    issued = reviewer.approve(item_id, actor="app:bob")
    record = store.get(issued.record_id)
    assert record.kind == "decision" and record.actor == "app:bob" and record.issue_key == outcome_key(record.content["review"]["item_key"])
    assert record.content["review"]["approved_by"] == "app:bob" and record.content["review"]["revision"] == 0
    assert record.to_decision().explanation == denial.explanation
    replay = replay_notice(store, issued.record_id)
    assert replay.identical and replay.pdf == issued.pdf
    assert reviewer.item(item_id).status == "approved" and reviewer.queue() == [] and store.verify().ok


def test_a_failing_edit_blocks_issue_and_names_its_checks_until_a_passing_edit(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    bad = reviewer.edit(item_id, failing_text(denial), actor="app:ann")
    assert not bad.passed and "no_forbidden_phrase" in bad.failures and "-We cannot approve" in bad.diff
    with pytest.raises(ReviewBlockedError) as blocked:
        reviewer.approve(item_id, actor="app:bob")
    assert "no_forbidden_phrase" in blocked.value.failures and "no_forbidden_phrase" in str(blocked.value)
    assert not decision_records(store)
    good = reviewer.edit(item_id, passing_text(denial), actor="app:ann")
    assert good.passed and good.number == 2
    issued = reviewer.approve(item_id, actor="app:bob")
    record = store.get(issued.record_id)
    assert record.to_decision().explanation == passing_text(denial)
    assert record.content["review"]["text_sha256"] == sha256_hex(passing_text(denial).encode())
    assert record.content["review"]["edited_by"] == ["app:ann"]
    assert "+Four factors counted most" in record.content["review"]["diff_from_draft"]
    assert issued.notice.explanation == passing_text(denial) and replay_notice(store, issued.record_id).identical
    assert [r.decision for r in store.list(limit=None)] == ["held", "edited", "edited", "deny"] and store.verify().ok


def test_the_reasons_come_from_the_model_whatever_the_edit(reviewer, denial):
    item_id = held_item(reviewer, denial)
    reviewer.edit(item_id, passing_text(denial), actor="app:ann")
    assert reviewer.item(item_id).current_decision().reasons == denial.reasons


def test_the_editor_cannot_approve_unless_the_policy_allows_it(store, denial):
    strict = Reviewer(store)
    item_id = held_item(strict, denial)
    strict.edit(item_id, passing_text(denial), actor="app:ann")
    with pytest.raises(SeparationOfDutiesError, match="app:ann edited item"):
        strict.approve(item_id, actor="app:ann")
    relaxed = Reviewer(store, policy=ReviewPolicy(separate_duties=False))
    assert relaxed.approve(item_id, actor="app:ann").record_id is not None


def test_reject_issues_nothing_and_closes_the_item(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    record = reviewer.reject(item_id, "the applicant withdrew", actor="app:bob")
    assert record.decision == "rejected" and record.content["review"]["reason"] == "the applicant withdrew"
    item = reviewer.item(item_id)
    assert item.status == "rejected" and item.outcome.reason == "the applicant withdrew"
    for action in (lambda: reviewer.approve(item_id, actor="app:carl"),
                   lambda: reviewer.edit(item_id, passing_text(denial), actor="app:carl"),
                   lambda: reviewer.reject(item_id, "again", actor="app:carl"),
                   lambda: reviewer.reassign(item_id, "app:dora", actor="app:carl")):
        with pytest.raises(ReviewClosedError, match="already rejected"):
            action()
    assert not decision_records(store) and store.verify().ok


def test_an_approved_item_cannot_be_approved_again(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    reviewer.approve(item_id, actor="app:bob")
    with pytest.raises(ReviewClosedError, match="already approved: notice AAN-"):
        reviewer.approve(item_id, actor="app:carl")
    assert len(decision_records(store)) == 1


def test_acting_on_a_revision_another_analyst_replaced_is_a_conflict(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    reviewer.edit(item_id, passing_text(denial), actor="app:ann", revision=0)
    with pytest.raises(ReviewConflictError, match="revision: item .* is at revision 1"):
        reviewer.edit(item_id, failing_text(denial), actor="app:carl", revision=0)
    with pytest.raises(ReviewConflictError):
        reviewer.approve(item_id, actor="app:bob", revision=0)
    assert not decision_records(store)


def test_reassign_records_the_assignee_and_keeps_the_item_pending(reviewer, store, denial):
    item_id = held_item(reviewer, denial)
    record = reviewer.reassign(item_id, "local:bob", actor="app:ann")
    item = reviewer.item(item_id)
    assert record.decision == "reassigned" and item.assignee == "local:bob" and item.status == "pending"
    reviewer.reassign(item_id, "local:carl", actor="app:bob")
    assert reviewer.item(item_id).assignee == "local:carl" and reviewer.item(item_id).assignments == 2


def test_an_item_is_read_through_its_keys_whatever_else_the_store_holds(reviewer, store, denial):
    first = held_item(reviewer, other_denial(denial, 1))
    second = held_item(reviewer, other_denial(denial, 2))
    for number in range(3):
        reviewer.edit(second, passing_text(denial) + " " * number, actor="app:ann")
        reviewer.edit(first, failing_text(denial) + " " * number, actor="app:ann")
    reviewer.reassign(first, "local:bob", actor="app:ann")
    item = reviewer.item(first)
    assert [r.number for r in item.revisions] == [0, 1, 2, 3] and item.assignee == "local:bob"
    assert {r.record_id for r in item.revisions[1:]} == {r.id for r in store.list(decision="edited", limit=None)
                                                          if r.content["review"]["item"] == first}
    assert reviewer.item(first).revisions == reviewer.queue()[0].revisions


@pytest.mark.parametrize("field, action", [
    ("text", lambda r, i: r.edit(i, "   ", actor="app:ann")),
    ("text", lambda r, i: r.edit(i, "We cannot\x07 approve.", actor="app:ann")),
    ("reason", lambda r, i: r.reject(i, "", actor="app:ann")),
    ("assignee", lambda r, i: r.reassign(i, "", actor="app:ann")),
    ("actor", lambda r, i: r.approve(i, actor="")),
])
def test_bad_values_are_refused_naming_the_field(reviewer, store, denial, field, action):
    item_id = held_item(reviewer, denial)
    with pytest.raises(ReviewError, match=f"^{field}: expected|^{field}: every"):
        action(reviewer, item_id)
    assert store.count() == 1


def test_an_unchanged_edit_is_refused(reviewer, denial):
    item_id = held_item(reviewer, denial)
    with pytest.raises(ReviewError, match="text: the edit .* is the same"):
        reviewer.edit(item_id, denial.explanation, actor="app:ann")


def test_an_id_that_is_no_held_item_is_refused(reviewer, store, denial):
    Issuer(None, audit=store, actor="app:ann").issue(denial)
    with pytest.raises(ReviewItemNotFoundError, match="record 1 is not a held review item"):
        reviewer.item(1)
    with pytest.raises(ReviewItemNotFoundError, match="no review item 99"):
        reviewer.approve(99, actor="app:bob")


def test_only_denials_are_held(reviewer, pipeline):
    with pytest.raises(ReviewError, match="only denials are held"):
        reviewer.hold([pipeline.run(example("hmda_approval"))], actor="app:ann")


def test_a_notice_that_could_not_be_issued_is_refused_at_hold_not_queued(reviewer, store, denial):
    broken = denial.with_updates(explanation=failing_text(denial))
    with pytest.raises(IssueRefused):
        reviewer.hold([broken], actor="app:ann")
    assert [r.decision for r in store.list(limit=None)] == ["refusal"] and reviewer.queue() == []


def test_issue_or_hold_holds_what_the_policy_selects_and_issues_the_rest(store, denial):
    issuer = Issuer(None, audit=store, actor="app:ann")
    near = denial.with_updates(threshold=denial.risk - 0.01)
    held = issue_or_hold(issuer, near, ReviewPolicy(cutoff_margin=0.02))
    assert isinstance(held, Held) and held.held_for == ("near_cutoff",)
    issued = issue_or_hold(issuer, denial, ReviewPolicy(cutoff_margin=0.02))
    assert isinstance(issued, Issued) and issued.notice is not None
    assert isinstance(issue_or_hold(issuer, near, ReviewPolicy(enabled=False)), Issued)


def test_hold_for_review_holds_a_batch_s_denials_and_records_its_approvals(store, denial, pipeline):
    approval = pipeline.run(example("hmda_approval"))
    batch = [other_denial(denial, 1), approval, other_denial(denial, 2)]
    results = hold_for_review(Issuer(None, audit=store, actor="batch:ann"), batch)
    assert [type(r).__name__ for r in results] == ["Held", "Issued", "Held"]
    assert {r.held_for for r in results if isinstance(r, Held)} == {("batch",)}
    assert sorted(r.decision for r in store.list(limit=None)) == ["approve", "held", "held"] and store.verify().ok


# ----------------------------------------------------------------------------- two real processes

RACER = r"""
import json, sys, time
from pathlib import Path
from lendsafe.audit.store import AuditStore
from lendsafe.errors import LendSafeError
from lendsafe.review import Reviewer
url, item, action, actor, go, text = sys.argv[1:7]
reviewer = Reviewer(AuditStore(url))
item_id = int(item)
reviewer.item(item_id)                         # loaded and ready before the start signal
while not Path(go).exists():
    time.sleep(0.005)
try:
    if action == "approve":
        result = reviewer.approve(item_id, actor=actor, revision=0).record_id
    elif action == "reject":
        result = reviewer.reject(item_id, "duplicate application", actor=actor).id
    else:
        result = reviewer.edit(item_id, Path(text).read_text(), actor=actor, revision=0).record_id
    print(json.dumps({"ok": True, "record": result}))
except LendSafeError as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
"""


def race(tmp_path, url: str, item_id: int, *plays: tuple[str, str, str]) -> list[dict]:
    """Start one process per (action, actor, text), release them together, return what each printed."""
    script, go = tmp_path / "racer.py", tmp_path / "go"
    script.write_text(RACER)
    processes = []
    for number, (action, actor, text) in enumerate(plays):
        text_file = tmp_path / f"text-{number}.txt"
        text_file.write_text(text)
        processes.append(subprocess.Popen([sys.executable, str(script), url, str(item_id), action, actor, str(go),
                                           str(text_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          cwd=PROJECT_ROOT, env={**__import__("os").environ,
                                                                 "PYTHONPATH": str(PROJECT_ROOT)}))
    time.sleep(8)                                  # both have loaded the item (imports take a few seconds)
    go.touch()
    outputs = [p.communicate(timeout=180) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_two_processes_acting_on_one_item_one_wins_and_nothing_is_issued_twice(tmp_path, denial, second):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    with AuditStore(url) as store:
        item_id = held_item(Reviewer(store), denial)
    results = race(tmp_path, url, item_id, ("approve", "app:bob", ""), (second, "app:carl", ""))
    winners = [r for r in results if r["ok"]]
    losers = [r for r in results if not r["ok"]]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0]["error"] == "ReviewClosedError" and "already" in losers[0]["message"]
    with AuditStore(url) as store:
        outcomes = [r for r in store.list(limit=None) if r.decision in ("deny", "rejected")]
        assert len(outcomes) == 1 and outcomes[0].id == winners[0]["record"] and store.verify().ok


def test_two_processes_editing_one_revision_one_wins(tmp_path, denial):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    with AuditStore(url) as store:
        item_id = held_item(Reviewer(store), denial)
    results = race(tmp_path, url, item_id, ("edit", "app:ann", passing_text(denial)),
                   ("edit", "app:carl", failing_text(denial)))
    assert sorted(r["ok"] for r in results) == [False, True], results
    [loser] = [r for r in results if not r["ok"]]
    assert loser["error"] == "ReviewConflictError" and "reload it" in loser["message"]
    with AuditStore(url) as store:
        assert [r.decision for r in store.list(limit=None)] == ["held", "edited"] and store.verify().ok


def test_an_action_on_a_stale_read_is_stopped_under_the_store_lock(reviewer, store, denial, monkeypatch):
    """The outcome key and the next revision's key are checked again where the record is appended."""
    item_id = held_item(reviewer, denial)
    stale = reviewer.item(item_id)
    reviewer.approve(item_id, actor="app:bob")
    reads = iter([stale])
    monkeypatch.setattr(Reviewer, "item", lambda self, i: next(reads, None) or __import__(
        "lendsafe.review.queue", fromlist=["load_item"]).load_item(self.store, i))
    with pytest.raises(ReviewClosedError, match="already approved"):
        reviewer.approve(item_id, actor="app:carl")
    reads = iter([stale])
    with pytest.raises(ReviewClosedError):
        reviewer.edit(item_id, passing_text(denial), actor="app:carl")
    assert len(decision_records(store)) == 1 and [r.decision for r in store.list(limit=None)] == ["held", "deny"]


def test_the_whole_review_on_sqlite_and_on_a_real_postgresql(db_url, denial, tmp_path):
    with AuditStore(db_url) as on_backend:
        reviewer = Reviewer(on_backend)
        first, second, third = (held_item(reviewer, other_denial(denial, n)) for n in range(3))
        reviewer.edit(first, failing_text(denial), actor="app:ann")
        with pytest.raises(ReviewBlockedError):
            reviewer.approve(first, actor="app:bob")
        reviewer.edit(first, passing_text(denial), actor="app:ann")
        reviewer.reassign(first, "app:bob", actor="app:ann")
        issued = reviewer.approve(first, actor="app:bob")
        reviewer.reject(second, "duplicate", actor="app:bob")
        with pytest.raises(ReviewClosedError):
            reviewer.approve(second, actor="app:carl")
        assert [i.id for i in reviewer.queue()] == [third]
        assert replay_notice(on_backend, issued.record_id).identical and on_backend.verify().ok


def test_a_batch_holder_gives_the_entry_a_batch_records_instead_of_a_notice(store, denial, pipeline):
    from lendsafe.review import batch_holder

    row_key, batch_id = "c" * 32, "d" * 32
    holder = batch_holder(hold_all=True)
    assert pickle.loads(pickle.dumps(holder)) == holder, "plain data: it travels to cluster workers"
    assert holder(pipeline.run(example("hmda_approval")), "e" * 32, batch_id) is None
    assert batch_holder()(denial, row_key, batch_id) is None, "the policy alone does not hold this denial"
    entry = holder(denial, row_key, batch_id)
    [appended] = Issuer(None, audit=store, actor="batch:ann").append([entry])
    assert appended.new and store.issued([row_key])[row_key].decision == "held", "a resumed batch finds it"
    assert Issuer(None, audit=store, actor="batch:ann").append([holder(denial, row_key, batch_id)])[0].new is False
    reviewer = Reviewer(store)
    item = reviewer.item(appended.record.id)
    assert item.key == row_key and item.held_for == ("batch",) and item.history[0].content["review"]["batch"] == batch_id
    assert reviewer.approve(item.id, actor="app:bob").record_id and reviewer.item(item.id).status == "approved"


def test_the_verifier_at_issue_has_the_last_word_over_a_recorded_pass(store, denial):
    """A draft recorded as passing (say, under an older verifier) whose text fails now is refused at approval:
    the refusal is recorded naming the key it would have taken, and the item stays pending."""
    from lendsafe.audit.records import ReviewEntry
    from lendsafe.review.actions import hold_entry

    broken = other_denial(denial, 9).with_updates(explanation=failing_text(denial))
    entry = hold_entry(broken, ("batch",))
    entry = entry._replace(details={**entry.details, "verification": {"passed": True, "failures": [], "checks": {}}})
    [held] = Issuer(None, audit=store, actor="app:ann").append([entry])
    reviewer = Reviewer(store)
    with pytest.raises(IssueRefused, match="fails verification at issue time"):
        reviewer.approve(held.record.id, actor="app:bob")
    refusal = store.list(decision="refusal")[0]
    assert refusal.content["refused_key"] == outcome_key(held.record.issue_key)
    assert reviewer.item(held.record.id).status == "pending" and not decision_records(store) and store.verify().ok
