"""The review queue folded from the audit chain (``lendsafe.review.queue``): items, revisions, assignee,
outcomes (an approval found by its key), and the filters."""
from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from lendsafe.audit.records import parse_timestamp
from lendsafe.review.queue import QueueFilter, load_item, load_items, load_pending, queue

from review_support import denial, other_denial, passing_text, pipeline, reviewer, store  # noqa: F401

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")


@pytest.fixture
def items(reviewer, denial):
    """Three held items: two held as a batch, one near the cutoff, then one approved and one rejected."""
    held = reviewer.hold([other_denial(denial, 1), other_denial(denial, 2)], actor="batch:ann", held_for=("batch",))
    held += reviewer.hold([other_denial(denial, 3)], actor="app:ann", held_for=("near_cutoff",))
    return [h.item_id for h in held]


def ids(found) -> list[int]:
    return [item.id for item in found]


def test_the_queue_shows_pending_items_oldest_first_and_each_status_on_request(reviewer, store, items):
    reviewer.approve(items[0], actor="app:bob")
    reviewer.reject(items[1], "duplicate", actor="app:bob")
    assert ids(queue(store)) == [items[2]]
    assert ids(queue(store, QueueFilter(status="approved"))) == [items[0]]
    assert ids(queue(store, QueueFilter(status="rejected"))) == [items[1]]
    assert ids(queue(store, QueueFilter(status=None))) == items
    assert load_items(store)[items[0]].outcome.document_id.startswith("AAN-")


def test_filters_by_dataset_writer_reason_and_why_held(store, items, denial):
    everything = QueueFilter(status=None)
    assert ids(queue(store, QueueFilter(dataset="hmda"))) == items and queue(store, QueueFilter(dataset="credit")) == []
    assert ids(queue(store, QueueFilter(writer=denial.writer))) == items and queue(store, QueueFilter(writer="lora")) == []
    assert ids(queue(store, QueueFilter(reason=denial.reasons[-1].code))) == items
    assert queue(store, QueueFilter(reason="NO_SUCH_REASON")) == []
    assert ids(queue(store, QueueFilter(held_for="near_cutoff"))) == [items[2]]
    assert len(queue(store, everything)) == len(items)


def test_filters_by_age_and_assignee(reviewer, store, items):
    reviewer.reassign(items[1], "local:bob", actor="app:ann")
    assert ids(queue(store, QueueFilter(assignee="local:bob"))) == [items[1]]
    held_at = parse_timestamp(load_item(store, items[0]).held_at)
    later = held_at + timedelta(hours=2)
    assert ids(queue(store, QueueFilter(min_age_hours=1), now=later)) == items
    assert queue(store, QueueFilter(min_age_hours=3), now=later) == []
    assert queue(store, QueueFilter(max_age_hours=1), now=later) == []


def test_an_item_carries_its_revisions_and_its_current_decision(reviewer, store, items, denial):
    draft = other_denial(denial, 1)
    reviewer.edit(items[0], passing_text(draft), actor="app:ann")
    item = load_item(store, items[0])
    assert [r.number for r in item.revisions] == [0, 1] and item.editors == {"app:ann"}
    assert item.revisions[0].text == draft.explanation and item.current.text == passing_text(draft)
    current = item.current_decision()
    assert current.explanation == passing_text(draft) and current.reasons == draft.reasons
    assert "edited in review by app:ann (revision 1)" in current.writer_reason
    assert current.verification["passed"] and [h.id for h in item.history] == [items[0], item.current.record_id]


def test_the_pending_queue_reads_no_record_of_a_closed_item(reviewer, store, items, monkeypatch):
    reviewer.approve(items[0], actor="app:bob")
    reviewer.reject(items[1], "duplicate", actor="app:bob")
    read = []
    real = type(store).get_many
    monkeypatch.setattr(type(store), "get_many", lambda self, ids: read.extend(ids) or real(self, ids))
    monkeypatch.setattr(type(store), "issued", lambda self, keys=None: pytest.fail("outcome records were read"))
    assert ids(queue(store)) == [items[2]] and read == [items[2]]
    assert load_pending(store).keys() == {items[2]}
