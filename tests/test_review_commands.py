"""``lendsafe review`` from the shell (``lendsafe.commands.review``): list, show, edit, approve, reject and
reassign with --actor; refusals exit non-zero with the reason and never a traceback; held items are in
``lendsafe audit list`` and the chain verifies after every action."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from lendsafe.audit.store import AuditStore
from lendsafe.cli import main as cli_main
from lendsafe.review import Reviewer

from review_support import denial, failing_text, other_denial, passing_text, pipeline  # noqa: F401

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs poppler-utils (make test installs it)")


@pytest.fixture
def url(tmp_path, denial):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditStore(url) as store:
        Reviewer(store).hold([other_denial(denial, n) for n in range(2)], actor="batch:ann", held_for=("batch",))
    return url


def run(capsys, url: str, *words: str, group: str = "review") -> tuple[int, str, str]:
    code = cli_main([group, "--db", url, *words])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def verifies(capsys, url: str) -> bool:
    return run(capsys, url, "verify", group="audit")[0] == 0


def test_list_and_show_the_pending_items(url, capsys, denial):
    code, out, _ = run(capsys, url, "list", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["item"] for r in rows] == [1, 2] and {r["status"] for r in rows} == {"pending"}
    assert rows[0]["reasons"] == [r.code for r in denial.reasons] and rows[0]["held_for"] == ["batch"]
    code, out, _ = run(capsys, url, "list", "--reason", "NO_SUCH_REASON", "--json")
    assert code == 0 and out == ""
    code, out, _ = run(capsys, url, "show", "1")
    assert code == 0 and "not editable" in out and denial.reasons[0].code in out and "passes every check" in out
    code, out, _ = run(capsys, url, "list", group="audit")
    assert code == 0 and out.count(" held ") == 2


def test_edit_approve_and_reject_with_actors(url, capsys, denial, tmp_path):
    draft = other_denial(denial, 0)
    code, out, err = run(capsys, url, "edit", "1", "--actor", "cli:ann", "--text", failing_text(draft))
    assert code == 1 and "revision 1 recorded" in out and "no_forbidden_phrase" in err and verifies(capsys, url)
    code, _, err = run(capsys, url, "approve", "1", "--actor", "cli:bob")
    assert code == 2 and "fails verification and cannot be issued" in err
    text = tmp_path / "edit.txt"
    text.write_text(passing_text(draft))
    code, out, _ = run(capsys, url, "edit", "1", "--actor", "cli:ann", "--file", str(text), "--revision", "1")
    assert code == 0 and "passes every check" in out
    code, _, err = run(capsys, url, "approve", "1", "--actor", "cli:ann")
    assert code == 2 and "separation of duties" in err
    pdf = tmp_path / "notice.pdf"
    code, out, _ = run(capsys, url, "approve", "1", "--actor", "cli:bob", "--revision", "2", "--out", str(pdf))
    assert code == 0 and "notice AAN-" in out and pdf.read_bytes().startswith(b"%PDF") and verifies(capsys, url)
    issued_record = re.search(r"audit record (\d+)", out).group(1)
    code, _, err = run(capsys, url, "approve", "1", "--actor", "cli:carl")
    assert code == 2 and "already approved" in err
    code, out, _ = run(capsys, url, "reject", "2", "--actor", "cli:bob", "--reason", "withdrawn")
    assert code == 0 and "nothing issued" in out and verifies(capsys, url)
    code, out, _ = run(capsys, url, "list", "--status", "any", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["status"], r["outcome_by"]) for r in rows] == [("approved", "cli:bob"), ("rejected", "cli:bob")]
    code, out, _ = run(capsys, url, "replay", issued_record, group="audit")
    assert code == 0 and "byte for byte" in out


def test_show_writes_the_draft_notice_without_recording_it(url, capsys, tmp_path):
    with AuditStore(url) as store:
        before = store.count()
    pdf = tmp_path / "draft.pdf"
    code, out, err = run(capsys, url, "show", "2", "--json", "--pdf", str(pdf))
    assert code == 0 and json.loads(out)["item"] == 2 and "not issued" in err and pdf.read_bytes().startswith(b"%PDF")
    with AuditStore(url) as store:
        assert store.count() == before


def test_reassign_and_filter_by_assignee(url, capsys):
    code, out, _ = run(capsys, url, "reassign", "2", "--actor", "cli:ann", "--to", "local:bob")
    assert code == 0 and "assigned to local:bob" in out
    code, out, _ = run(capsys, url, "list", "--assignee", "local:bob", "--json")
    assert [json.loads(line)["item"] for line in out.splitlines()] == [2]


@pytest.mark.parametrize("words, expected", [
    (("approve", "99", "--actor", "cli:bob"), "item: no review item 99"),
    (("edit", "1", "--actor", "cli:ann", "--text", " "), "text: expected a non-empty text"),
    (("reject", "1", "--actor", "cli:ann", "--reason", ""), "reason: expected a non-empty text"),
    (("edit", "1", "--file", "/no/such/file"), "--file /no/such/file: cannot read it"),
])
def test_refusals_exit_2_naming_the_field(url, capsys, words, expected):
    code, _, err = run(capsys, url, *words)
    assert code == 2 and expected in err


def test_option_values_are_checked_where_they_are_parsed(url, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli_main(["review", "--db", url, "approve", "one"])
    assert stopped.value.code == 2 and "expected a whole number" in capsys.readouterr().err
