"""The Review page end to end in headless Chromium: `streamlit run app.py` on 127.0.0.1 with three
denials held for review. A reviewer signs in and approves one (its notice issued); edits another with a
promise in it, sees the failing check inline and cannot issue it; then saves a passing edit, which she
may not approve herself; a second reviewer approves it. The audit chain verifies and the edited notice
replays byte for byte. A screenshot of each step goes to tests/artifacts/."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from lendsafe.audit.replay import replay_notice
from lendsafe.audit.store import AuditStore
from lendsafe.errors import LendSafeError
from lendsafe.identity import UsersFile
from lendsafe.review import Reviewer
from lendsafe.ui import server as server_helpers
from lendsafe.ui.server import start

import browser_support
from browser_support import ARTIFACTS, CHROMIUM, browser_tab
from review_support import denial, failing_text, other_denial, passing_text, pipeline  # noqa: F401

START_TIMEOUT_S = 90
ACTION_TIMEOUT_MS = 120_000
PASSWORD = "a long reviewer password"

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (make test installs it)"),
    pytest.mark.skipif(not shutil.which("pdftoppm"), reason="needs poppler-utils (make test installs it)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, denial):
    folder = tmp_path_factory.mktemp("browser-review")
    audit_url = f"sqlite:///{folder / 'audit.db'}"
    users = UsersFile(folder / "users.json")
    for name in ("alice", "bob"):
        users.add(name, PASSWORD, "reviewer")
    drafts = [other_denial(denial, n) for n in range(3)]
    with AuditStore(audit_url) as store:
        items = [h.item_id for h in Reviewer(store).hold(drafts, actor="batch:ann", held_for=("batch",))]
    running = start(log=folder / "streamlit.log", env={"LENDSAFE_DATABASE_URL": audit_url, "LENDSAFE_USE_LLM": "0",
                                                       "LENDSAFE_USERS_FILE": str(users.path)})
    try:
        running.wait_healthy(START_TIMEOUT_S)
    except LendSafeError as exc:
        running.stop()
        pytest.fail(str(exc))
    with running:
        yield SimpleNamespace(url=running.url, audit_url=audit_url, items=items, drafts=drafts)


@pytest.fixture(scope="module")
def page(server):
    with browser_tab(server.url, ACTION_TIMEOUT_MS) as tab:
        tab.get_by_role("heading", name="LendSafe").wait_for()
        yield tab


def wait_idle(page) -> None:
    server_helpers.wait_idle(page, ACTION_TIMEOUT_MS)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, name: str) -> None:
    browser_support.sign_in(page, name, PASSWORD, ACTION_TIMEOUT_MS)
    page.locator("[data-testid=stSidebar]").get_by_text(f"Signed in: local:{name}").wait_for()


def open_item(page, item_id: int) -> None:
    """Pick the item in the "Open item" box (typing filters the options; Enter takes the first)."""
    if page.get_by_role("heading", name=f"Item #{item_id}").count():
        return
    box = page.get_by_role("combobox", name="Open item")
    box.click()
    page.keyboard.type(f"#{item_id} ·")
    page.keyboard.press("Enter")
    wait_idle(page)
    page.get_by_role("heading", name=f"Item #{item_id}").wait_for()


def paragraph(page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("^Plain-words paragraph"))
    box.fill(text)
    box.press("Control+Enter")
    wait_idle(page)


def click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    wait_idle(page)


def records(server, **filters):
    with AuditStore(server.audit_url) as store:
        return store.list(limit=None, **filters)


def test_the_queue_lists_the_held_items(page, server):
    page.get_by_role("link", name="Review").first.click()
    page.get_by_role("heading", name="Review", exact=True).wait_for()
    wait_idle(page)
    assert page.get_by_text(f"{len(server.items)} item(s) match.").first.is_visible()
    assert page.get_by_text("Principal reasons").first.is_visible()
    shot(page, "review_queue")


def test_approve_one(page, server):
    sign_in(page, "alice")
    open_item(page, server.items[0])
    click(page, "Approve and issue")
    page.get_by_text(re.compile(r"^Approved: notice AAN-")).first.wait_for()
    [issued] = records(server, decision="deny")
    assert issued.actor == "local:alice" and issued.content["review"]["item"] == server.items[0]
    shot(page, "review_approved")


def test_an_edit_with_a_failing_check_blocks_issue_then_a_passing_edit_is_approved_by_another(page, server):
    item = server.items[1]
    open_item(page, item)
    paragraph(page, failing_text(server.drafts[1]))
    click(page, "Save edit")
    page.get_by_text(re.compile(r"FAILS verification and cannot be issued")).first.wait_for()
    assert page.get_by_text(re.compile(r"^✗ no_forbidden_phrase")).first.is_visible(), "the failing check inline"
    assert page.get_by_role("button", name="Approve and issue").is_disabled()
    shot(page, "review_edit_failing")
    paragraph(page, passing_text(server.drafts[1]))
    click(page, "Save edit")
    page.get_by_text(re.compile(r"Revision 2 saved .*it passes every check")).first.wait_for()
    assert page.get_by_role("button", name="Approve and issue").is_disabled(), "the editor does not approve"
    assert page.get_by_text(re.compile("^Separation of duties")).first.is_visible()
    assert len(records(server, decision="deny")) == 1, "nothing issued while the edit failed or by its editor"
    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Sign out").click()
    wait_idle(page)
    sign_in(page, "bob")
    open_item(page, item)
    click(page, "Approve and issue")
    page.get_by_text(re.compile(r"^Approved: notice AAN-")).first.wait_for()
    issued = records(server, decision="deny")
    assert len(issued) == 2 and issued[-1].actor == "local:bob"
    assert issued[-1].to_decision().explanation == passing_text(server.drafts[1])
    with AuditStore(server.audit_url) as store:
        assert replay_notice(store, issued[-1].id).identical and store.verify().ok
    shot(page, "review_edit_approved")
