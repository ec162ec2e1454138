"""The Review page in-process (Streamlit AppTest, ``lendsafe.ui.review``): the queue lists the held items
and filters them; a signed-in analyst approves one (its notice issued), an edit that fails a check is
shown with its failing checks and cannot be issued, a passing edit can, but not by its editor; the
explorer holds a draft the review policy selects instead of issuing it."""
from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from lendsafe.audit.store import AuditStore
from lendsafe.config import PROJECT_ROOT
from lendsafe.identity import UsersFile
from lendsafe.review import Reviewer

from review_support import denial, failing_text, other_denial, passing_text, pipeline  # noqa: F401

pytestmark = pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)")
APP = str(PROJECT_ROOT / "app.py")
PAGE = "lendsafe/ui/review.py"
TIMEOUT = 180
PASSWORD = "a long analyst password"


@pytest.fixture
def held(tmp_path, denial, monkeypatch):
    """A fresh store holding three denials, a users file with two analysts, the deterministic writer."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    users = UsersFile(tmp_path / "users.json")
    for name in ("alice", "bob"):
        users.add(name, PASSWORD, "reviewer")
    users.add("carl", PASSWORD, "analyst")
    monkeypatch.setenv("LENDSAFE_DATABASE_URL", url)
    monkeypatch.setenv("LENDSAFE_USE_LLM", "0")
    monkeypatch.setenv("LENDSAFE_USERS_FILE", str(tmp_path / "users.json"))
    with AuditStore(url) as store:
        items = [h.item_id for h in Reviewer(store).hold([other_denial(denial, n) for n in range(3)],
                                                        actor="batch:ann", held_for=("batch",))]
    return url, items


def no_failure(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def review_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    return no_failure(at.switch_page(PAGE).run())


def sign_in(at: AppTest, name: str) -> AppTest:
    at.text_input(key="ls_signin_name").input(name)
    at.text_input(key="ls_signin_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Sign in").click()
    return no_failure(at.run())


def sign_out(at: AppTest) -> AppTest:
    at.button(key="ls_signout").click()
    return no_failure(at.run())


def open_item(at: AppTest, item_id: int) -> AppTest:
    at.selectbox(key="ls_review_open").set_value(item_id)
    return no_failure(at.run())


def messages(at: AppTest, kind: str) -> str:
    return " ".join(e.value for e in getattr(at, kind))


def decisions(url: str) -> list[str]:
    with AuditStore(url) as store:
        return [r.decision for r in store.list(limit=None)]


def test_the_queue_lists_pending_items_with_their_evidence_and_filters(held):
    url, items = held
    at = review_page()
    assert at.title[0].value == "Review"
    assert any(f"{len(items)} item(s) match" in m.value for m in at.markdown)
    assert list(at.dataframe[0].value["item"]) == items
    assert any("Principal reasons" in m.value for m in at.markdown)
    assert "Sign in" in messages(at, "caption")
    at.text_input(key="ls_review_reason").input("NO_SUCH_REASON")
    no_failure(at.run())
    assert any("0 item(s) match" in m.value for m in at.markdown)


def test_approve_one_and_an_edit_that_fails_a_check_blocks_issue_until_a_passing_edit(held, denial):
    url, items = held
    at = sign_in(review_page(), "alice")
    open_item(at, items[0])
    at.button(key=f"ls_review_approve_{items[0]}_0").click()
    no_failure(at.run())
    assert "Approved: notice AAN-" in messages(at, "success") and decisions(url).count("deny") == 1

    open_item(at, items[1])
    at.text_area(key=f"ls_review_text_{items[1]}_0").input(failing_text(other_denial(denial, 1)))
    at.button(key=f"ls_review_edit_{items[1]}_0").click()
    no_failure(at.run())
    assert "FAILS verification" in messages(at, "error") and "no_forbidden_phrase" in messages(at, "text")
    assert at.button(key=f"ls_review_approve_{items[1]}_1").disabled
    at.text_area(key=f"ls_review_text_{items[1]}_1").input(passing_text(other_denial(denial, 1)))
    at.button(key=f"ls_review_edit_{items[1]}_1").click()
    no_failure(at.run())
    assert "it passes every check" in messages(at, "success")
    assert at.button(key=f"ls_review_approve_{items[1]}_2").disabled, "the editor does not approve her own edit"
    assert decisions(url).count("deny") == 1

    at = sign_in(sign_out(at), "bob")
    open_item(at, items[1])
    at.button(key=f"ls_review_approve_{items[1]}_2").click()
    no_failure(at.run())
    assert "Approved" in messages(at, "success")
    with AuditStore(url) as store:
        issued = [r for r in store.list(limit=None) if r.decision == "deny"]
        assert issued[-1].actor == "local:bob" and issued[-1].content["review"]["edited_by"] == ["local:alice"]
        assert issued[-1].to_decision().explanation == passing_text(other_denial(denial, 1)) and store.verify().ok


def test_reject_with_a_reason_issues_nothing(held):
    url, items = held
    at = sign_in(review_page(), "alice")
    open_item(at, items[2])
    at.text_input(key=f"ls_review_reason_{items[2]}_0").input("duplicate of another application")
    at.button(key=f"ls_review_reject_{items[2]}_0").click()
    no_failure(at.run())
    assert "Rejected: nothing issued" in messages(at, "success")
    assert "deny" not in decisions(url) and "rejected" in decisions(url)
    assert items[2] not in list(at.dataframe[0].value["item"])


def test_the_draft_notice_previews_without_recording(held):
    url, items = held
    at = review_page()
    before = decisions(url)
    next(b for b in at.button if b.label == "Preview the draft notice").click()
    no_failure(at.run())
    assert any("draft notice of item" in caption for image in at.image for caption in image.captions)
    assert decisions(url) == before


def test_the_explorer_holds_a_draft_the_review_policy_selects_instead_of_issuing_it(held, monkeypatch):
    url, items = held
    monkeypatch.setenv("LENDSAFE_REVIEW_ALL_DENIALS", "1")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at = sign_in(no_failure(at.switch_page("lendsafe/ui/explorer.py").run()), "alice")
    next(b for b in at.button if b.label == "Decide").click()
    no_failure(at.run())
    next(b for b in at.button if b.label == "Issue notice").click()
    no_failure(at.run())
    assert any(f"Held for review: item #{len(items) + 1}" in i.value for i in at.info)
    assert decisions(url) == ["held"] * (len(items) + 1)
    assert not any(b.label == "Issue notice" for b in at.button), "a held draft is not issued a second time"
    no_failure(at.switch_page("lendsafe/ui/notices.py").run())
    assert any(f"Held for review, not sent: item #{len(items) + 1}" in i.value for i in at.info)


def record_page(url: str, record_id: int) -> None:
    """A page showing one record with the Review page's record view (what the Audit page wires in)."""
    from lendsafe.audit.store import AuditStore
    from lendsafe.ui import review

    with AuditStore(url) as store:
        review.record_view(store, store.get(record_id))


def test_a_review_record_is_shown_for_what_it_is(held, denial):
    url, items = held
    with AuditStore(url) as store:
        revision = Reviewer(store).edit(items[0], failing_text(other_denial(denial, 0)), actor="app:ann")
        rejected = Reviewer(store).reject(items[1], "duplicate", actor="app:bob")
    shown = {}
    for record_id in (items[0], revision.record_id, rejected.id):
        at = no_failure(AppTest.from_function(record_page, args=(url, record_id), default_timeout=TIMEOUT).run())
        shown[record_id] = (at.markdown[0].value, " ".join(e.value for e in at.error))
    assert "held for review" in shown[items[0]][0]
    assert "paragraph edited" in shown[revision.record_id][0] and "no_forbidden_phrase" in shown[revision.record_id][1]
    assert "rejected (nothing issued)" in shown[rejected.id][0]


def test_an_analyst_may_edit_but_approving_needs_the_reviewer_role(held):
    url, items = held
    at = sign_in(review_page(), "carl")
    assert at.button(key=f"ls_review_approve_{items[0]}_0").disabled
    assert "Approving needs the reviewer role (yours: analyst)" in messages(at, "caption")
    assert not at.button(key=f"ls_review_edit_{items[0]}_0").disabled
