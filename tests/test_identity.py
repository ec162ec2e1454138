"""Local users and identities: salted Argon2id hashes, roles, the users CLI reading passwords from
stdin only, the first admin made once with a random password, OIDC identities and audit actors."""
from __future__ import annotations

import io
import json
import stat

import pytest

from lendsafe.cli import main
from lendsafe.commands.users import first_admin, read_password
from lendsafe.identity import (ROLES, Identity, UserError, UsersFile, ensure_first_admin, oidc_identity,
                               users_path)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def users(tmp_path) -> UsersFile:
    return UsersFile(tmp_path / "users.json")


def test_added_user_authenticates_with_its_password_only(users):
    users.add("Alice", PASSWORD, "analyst")
    signed_in = users.authenticate("alice", PASSWORD)
    assert signed_in == Identity("local", "alice", "analyst") and signed_in.actor == "local:alice"
    assert users.authenticate("alice", PASSWORD + "x") is None
    assert users.authenticate("nobody", PASSWORD) is None
    assert users.authenticate("../etc", PASSWORD) is None


def test_the_file_holds_salted_argon2_hashes_readable_by_the_owner_only(users):
    users.add("alice", PASSWORD, "analyst")
    users.add("bob", PASSWORD, "reviewer")
    text = users.path.read_text()
    assert PASSWORD not in text
    hashes = [entry["hash"] for entry in json.loads(text)["users"].values()]
    assert all(h.startswith("$argon2id$") for h in hashes) and hashes[0] != hashes[1], "same password, own salt"
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("name, password, role, field", [
    ("", PASSWORD, "analyst", "user name"), ("a b", PASSWORD, "analyst", "user name"),
    ("alice", "short", "analyst", "password"), ("alice", PASSWORD, "root", "role")])
def test_bad_values_are_refused_naming_the_field(users, name, password, role, field):
    with pytest.raises(UserError, match=field):
        users.add(name, password, role)
    assert users.list() == []


def test_a_name_is_added_once_unless_replaced_and_can_be_removed(users):
    users.add("alice", PASSWORD, "analyst")
    with pytest.raises(UserError, match="already exists"):
        users.add("alice", PASSWORD, "admin")
    users.add("alice", PASSWORD + "2", "admin", replace=True)
    assert users.authenticate("alice", PASSWORD + "2").role == "admin"
    users.remove("alice")
    assert users.list() == [] and users.authenticate("alice", PASSWORD + "2") is None
    with pytest.raises(UserError, match="no user"):
        users.remove("alice")


def test_roles_are_ranked_and_only_signed_in_roles_issue():
    assert ROLES == ("analyst", "reviewer", "admin")
    assert Identity("local", "a", "admin").at_least("reviewer") and not Identity("local", "a", "analyst").at_least("reviewer")
    assert all(Identity("local", "a", role).can_issue for role in ROLES)
    assert not Identity("oidc", "x@example.com", None).can_issue


def test_first_admin_is_made_once_with_a_random_password(users, capsys):
    made = ensure_first_admin(users)
    assert made is not None and made[0] == "admin" and len(made[1]) >= 16
    assert users.authenticate(*made).role == "admin"
    assert ensure_first_admin(users) is None
    other = UsersFile(users.path.parent / "other.json")
    assert first_admin(other.path)["created"] == "admin"
    printed = capsys.readouterr().out
    assert "shown only this once" in printed and first_admin(other.path)["created"] is None


def test_oidc_identity_takes_its_role_from_the_users_file(users):
    users.add("ann@example.com", PASSWORD, "reviewer")
    assert oidc_identity("Ann@Example.com", users) == Identity("oidc", "ann@example.com", "reviewer")
    assert oidc_identity("bo@example.com", users).role is None
    assert oidc_identity(None, users) is None


def test_users_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LENDSAFE_USERS_FILE", str(tmp_path / "u.json"))
    assert users_path() == tmp_path / "u.json"
    monkeypatch.delenv("LENDSAFE_USERS_FILE")
    monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
    assert users_path() == tmp_path / "home" / "users.json"


def test_unreadable_file_is_a_message_not_a_traceback(users):
    users.path.write_text("{not json")
    with pytest.raises(Exception, match="cannot be read") as error:
        users.list()
    assert str(users.path.parent) not in str(error.value)


def test_cli_adds_from_stdin_lists_and_removes(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "--file", str(path), "add", "alice", "--role", "reviewer"]) == 0
    assert UsersFile(path).authenticate("alice", PASSWORD).role == "reviewer"
    assert main(["users", "--file", str(path), "list"]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and "reviewer" in listed and "$argon2" not in listed
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "--file", str(path), "add", "bob"]) == 2
    assert "password must be" in capsys.readouterr().err
    assert main(["users", "--file", str(path), "remove", "alice"]) == 0 and UsersFile(path).list() == []


def test_cli_takes_no_password_argument(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["users", "--file", str(tmp_path / "u.json"), "add", "alice", "--password", PASSWORD])
    assert not (tmp_path / "u.json").exists()


def test_prompt_asks_twice_and_refuses_a_mismatch(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(UserError, match="differ"):
        read_password(Terminal())
    assert read_password(io.StringIO(PASSWORD + "\n")) == PASSWORD
