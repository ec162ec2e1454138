"""Tampering with the audit store from outside the library: every kind is detected and the first broken
link named (SQLite, and PostgreSQL on a real server started by ``pg_server.py``).

Each tampering below is done the way an insider with database (and file) access would: raw SQL,
guards switched off where needed, hashes recomputed so the rows agree with each other. What the
attacker lacks is the audit key, which signs each record and the checkpoint kept outside the database.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import datetime, timezone

import pytest

from audit_support import Clock, execute_raw, fill
from lendsafe.audit.anchor import KEY_ENV, AuditKey
from lendsafe.audit.chain import GENESIS_HASH, chain_hash
from lendsafe.audit.records import canonical_json, format_timestamp
from lendsafe.audit.retention import months_before
from lendsafe.audit.store import AuditStore
from lendsafe.cli import main as cli_main

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
KEY = "k" * 48
OTHER_KEY = "o" * 48
# statements that remove the database's own guards for good (an attacker with DDL rights)
DROP_GUARDS = {
    "sqlite": ("DROP TRIGGER audit_records_no_update", "DROP TRIGGER audit_purges_lawful_period"),
    "postgresql": ("DROP TRIGGER audit_records_append_only ON audit_records",
                   "ALTER TABLE audit_purges DROP CONSTRAINT audit_purges_lawful_period"),
}


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("LENDSAFE_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv(KEY_ENV, KEY)
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def store(db_url):
    with AuditStore(db_url, clock=Clock()) as opened:
        fill(opened, 5)
        assert opened.verify().ok
        yield opened


GUARDS_OFF = {  # for one transaction on PostgreSQL; for good on SQLite (whichever triggers remain)
    "sqlite": tuple(f"DROP TRIGGER IF EXISTS {name}" for name in (
        "audit_records_no_update", "audit_records_no_delete", "audit_purges_no_update", "audit_purges_no_delete")),
    "postgresql": ("SET LOCAL session_replication_role = replica",),
}


def raw_unguarded(store: AuditStore, url: str, *statements: tuple[str, dict]) -> None:
    """Run (statement, parameters) pairs in one transaction with the append-only guards off."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in GUARDS_OFF[store.backend]:
                conn.execute(text(statement))
            for statement, params in statements:
                conn.execute(text(statement), params)
    finally:
        engine.dispose()


def rows(url: str) -> list[dict]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM audit_records ORDER BY id"))]
    finally:
        engine.dispose()


def rewrite(record_id: int, content: dict, prev_hash: str) -> tuple[tuple[str, dict], str]:
    """The UPDATE replacing one record with ``content`` linked to ``prev_hash``, and its recomputed hash."""
    new_hash = chain_hash(prev_hash, content)
    return ("UPDATE audit_records SET content = :content, actor = :actor, prev_hash = :prev, record_hash = :hash "
            "WHERE id = :id", {"content": canonical_json(content), "actor": content["actor"], "prev": prev_hash,
                               "hash": new_hash, "id": record_id}), new_hash


def forged_purge_entry(months: int, last_id: int, url: str) -> dict:
    """A self-consistent purge-log row (hash link computed) covering records 1..last_id, without signature."""
    last = rows(url)[last_id - 1]
    purged_at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    entry = {"id": 1, "purged_at": format_timestamp(purged_at), "actor": "mallory", "months": months,
             "credit": "consumer", "cutoff": format_timestamp(months_before(purged_at, months)), "first_id": 1,
             "last_id": last_id, "purged_count": last_id, "anchor_hash": last["record_hash"],
             "last_created_at": last["created_at"], "prev_entry_hash": GENESIS_HASH}
    return {**entry, "entry_hash": chain_hash(GENESIS_HASH, entry)}


def insert_purge(url: str, entry: dict, *statements: str, bypass: str | None = None) -> None:
    columns = ", ".join(entry)
    execute_raw(url, f"INSERT INTO audit_purges ({columns}) VALUES ({', '.join(':' + k for k in entry)})",
                *statements, bypass=bypass, params=entry)


# ----------------------------------------------------------------------------- the tampering kinds

def row_edit(store, url):
    raw_unguarded(store, url, ("UPDATE audit_records SET content = REPLACE(content, '\"actor\":\"analyst\"', "
                               "'\"actor\":\"mallory\"') WHERE id = 3", {}))


def row_delete_middle(store, url):
    raw_unguarded(store, url, ("DELETE FROM audit_records WHERE id = 3", {}))


def tail_delete(store, url):
    raw_unguarded(store, url, ("DELETE FROM audit_records WHERE id >= 4", {}))


def full_rechain(store, url):
    """Alter record 3, then recompute every later hash so the rows agree with each other again."""
    table = rows(url)
    prev_hash, updates = table[1]["record_hash"], []
    for row in table[2:]:
        content = json.loads(row["content"])
        if row["id"] == 3:
            content["actor"] = "mallory"
        update, prev_hash = rewrite(row["id"], content, prev_hash)
        updates.append(update)
    raw_unguarded(store, url, *updates)


def forged_append(store, url):
    """A new record 6 with a correct link and hash, but no signature."""
    last = rows(url)[-1]
    content = {**json.loads(last["content"]), "id": 6, "created_at": "2024-02-01T00:00:00.000000Z"}
    forged = chain_hash(last["record_hash"], content)
    execute_raw(url, "INSERT INTO audit_records (id, created_at, dataset, decision, writer, actor, first_reason, "
                     "notice_sha256, prev_hash, record_hash, content) VALUES (6, :created, 'hmda', 'deny', "
                     "'template', 'analyst', 'DEBT_TO_INCOME', :sha, :prev, :hash, :content)",
                params={"created": content["created_at"], "sha": content["notice_sha256"],
                        "prev": last["record_hash"], "hash": forged, "content": canonical_json(content)})


def forged_append_with_copied_signature(store, url):
    forged_append(store, url)
    raw_unguarded(store, url, ("UPDATE audit_records SET record_mac = (SELECT record_mac FROM audit_records "
                                "WHERE id = 5) WHERE id = 6", {}))


def forged_purge_row(store, url):
    """A lawful-looking purge (25 months) inserted by hand; the guards then let records 1-2 be deleted."""
    insert_purge(url, forged_purge_entry(25, 2, url), "DELETE FROM audit_records WHERE id <= 2")


def purge_below_minimum(store, url):
    """The issue's attack: a 1-month purge row (the lawful-period guard dropped), records 1-5 deleted."""
    execute_raw(url, *DROP_GUARDS[store.backend][1:])
    insert_purge(url, forged_purge_entry(1, 5, url), "DELETE FROM audit_records WHERE id <= 5")


def trigger_dropped_then_edit(store, url):
    execute_raw(url, DROP_GUARDS[store.backend][0])
    execute_raw(url, "UPDATE audit_records SET actor = 'mallory' WHERE id = 2")


def reordered_ids(store, url):
    raw_unguarded(store, url, *((statement, {}) for statement in (
        "UPDATE audit_records SET id = 99 WHERE id = 2", "UPDATE audit_records SET id = 2 WHERE id = 3",
        "UPDATE audit_records SET id = 3 WHERE id = 99")))


def checkpoint_edited(store, url):
    path = store.checkpoint.path
    data = json.loads(path.read_text())
    data["confirmed"]["head_id"] = 3
    path.write_text(json.dumps(data))


def checkpoint_removed(store, url):
    store.checkpoint.path.unlink()


def checkpoint_removed_and_tail_deleted(store, url):
    checkpoint_removed(store, url)
    tail_delete(store, url)


def everything_truncated(store, url):
    raw_unguarded(store, url, ("DELETE FROM audit_records", {}))


def purge_record_removed(store, url):
    """After a lawful purge, its own chain record (the tail) is deleted."""
    store.purge(25, actor="officer", confirm=True, now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    raw_unguarded(store, url, ("DELETE FROM audit_records WHERE id = 6", {}))


def purge_log_entry_removed(store, url):
    store.purge(25, actor="officer", confirm=True, now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    raw_unguarded(store, url, ("DELETE FROM audit_purges", {}))


TAMPERING = {  # kind -> (tamper, first broken record named, words of the problem)
    "row edit": (row_edit, 3, "content was altered"),
    "row deleted in the middle": (row_delete_middle, 4, "a record is missing"),
    "tail deleted": (tail_delete, 4, "records 4..5, which the signed checkpoint vouches for, are missing"),
    "full re-chain with recomputed hashes": (full_rechain, 3, "signature does not match the audit key"),
    "forged appended record": (forged_append, 6, "not signed with the audit key"),
    "forged record with a copied signature": (forged_append_with_copied_signature, 6, "signature does not match"),
    "forged purge row": (forged_purge_row, 1, "purge-log entry 1 is not signed"),
    "purge below the minimum": (purge_below_minimum, 1, "1-month retention period"),
    "trigger dropped, then an edit": (trigger_dropped_then_edit, 2, "actor disagree with the hashed content"),
    "reordered ids": (reordered_ids, 2, "previous-hash link"),
    "checkpoint file edited": (checkpoint_edited, None, "the file was edited"),
    "checkpoint removed while records exist": (checkpoint_removed, 1, "no checkpoint at"),
    "checkpoint removed and tail deleted": (checkpoint_removed_and_tail_deleted, 1, "no checkpoint at"),
    "every record deleted": (everything_truncated, 1, "records 1..5, which the signed checkpoint"),
    "purge's own record removed": (purge_record_removed, 6, "chain record of purge-log entry 1, is missing"),
    "purge-log entry removed": (purge_log_entry_removed, 6, "a record is missing"),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_each_tampering_kind_is_detected_and_its_first_broken_link_named(store, db_url, kind):
    tamper, broken_id, words = TAMPERING[kind]
    tamper(store, db_url)
    report = store.verify()
    assert not report.ok, kind
    assert report.broken_id == broken_id and words in report.problem, (kind, report.summary())


def test_verify_command_names_the_tampering_and_exits_1(store, db_url, capsys):
    tail_delete(store, db_url)
    assert cli_main(["audit", "--db", db_url, "verify"]) == 1
    out = capsys.readouterr().out
    assert "chain broken at record 4" in out and "the tail was deleted" in out


def test_wrong_key_is_named_before_any_record(store, db_url):
    with AuditStore(db_url, key=OTHER_KEY) as other:
        report = other.verify()
    assert not report.ok and report.broken_id is None
    assert f"signed with audit key '{AuditKey(KEY).key_id}'" in report.problem
    assert AuditKey(OTHER_KEY).key_id in report.problem


def test_wrong_key_without_checkpoint_fails_at_the_first_record(store, db_url):
    checkpoint_removed(store, db_url)
    with AuditStore(db_url, key=OTHER_KEY) as other:
        report = other.verify()
    assert (report.ok, report.broken_id) == (False, 1) and "signature does not match" in report.problem


def test_restoring_an_older_copy_of_the_database_is_seen(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditStore(url, clock=Clock()) as store:
        fill(store, 3)
    shutil.copy(tmp_path / "audit.db", tmp_path / "backup.db")
    with AuditStore(url, clock=Clock()) as store:
        fill(store, 2)
    os.replace(tmp_path / "backup.db", tmp_path / "audit.db")
    with AuditStore(url) as store:
        report = store.verify()
    assert (report.ok, report.broken_id) == (False, 4) and "an older copy restored" in report.problem


# ----------------------------------------------------------------------------- what stays legitimate

def test_a_tampered_store_is_not_blessed_by_later_writes(store, db_url):
    forged_append(store, db_url)
    fill(store, 1)                                        # a legitimate write after the forgery
    report = store.verify()
    assert (report.ok, report.broken_id) == (False, 6) and "not signed" in report.problem


def test_a_crash_between_commit_and_checkpoint_settle_still_verifies(db_url):
    with AuditStore(db_url, clock=Clock()) as store:
        fill(store, 2)
        store.checkpoint.settle = lambda after: None     # the process dies right after COMMIT
        fill(store, 1)
        data = json.loads(store.checkpoint.path.read_text())
        assert data["pending"]["head_id"] == 3 and data["confirmed"]["head_id"] == 2
        assert store.verify().ok
    with AuditStore(db_url, clock=Clock()) as store:
        fill(store, 1)
        assert store.verify().ok and json.loads(store.checkpoint.path.read_text())["pending"] is None


def test_a_failed_commit_leaves_the_store_at_the_confirmed_state(db_url):
    from sqlalchemy import event

    with AuditStore(db_url, clock=Clock()) as store:
        fill(store, 2)

        def fail(*_args):
            raise RuntimeError("disk full at commit")
        event.listen(store._engine, "commit", fail)
        with pytest.raises(RuntimeError):
            fill(store, 1)
        event.remove(store._engine, "commit", fail)
        assert store.count() == 2 and store.verify().ok
        fill(store, 1)
        assert store.verify().ok


def test_checkpoint_accept_reanchors_after_a_review_and_keeps_the_old_file(store, db_url, capsys):
    checkpoint_removed(store, db_url)
    assert cli_main(["audit", "--db", db_url, "checkpoint"]) == 2
    assert "--accept" in capsys.readouterr().err
    assert cli_main(["audit", "--db", db_url, "checkpoint", "--accept"]) == 0
    assert "checkpoint written" in capsys.readouterr().out and store.verify().ok
    tail_delete(store, db_url)
    assert cli_main(["audit", "--db", db_url, "checkpoint", "--accept"]) == 0
    assert list(store.checkpoint.path.parent.glob("*.replaced-*")) and store.verify().ok


def test_accept_refuses_a_chain_that_is_itself_broken(store, db_url):
    from lendsafe.errors import AuditIntegrityError

    row_delete_middle(store, db_url)
    with pytest.raises(AuditIntegrityError, match="chain itself is broken"):
        store.anchor_checkpoint(accept=True)


def test_the_key_file_is_created_once_with_owner_only_permissions(tmp_path, monkeypatch):
    from lendsafe.errors import ConfigurationError

    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditStore(url, clock=Clock()) as store:
        fill(store, 1)
    key_file = tmp_path / "home" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64
    with AuditStore(url) as store:
        assert store.verify().ok and store.key.key_id == AuditKey(key_file.read_text().strip()).key_id
    key_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        AuditStore(url)
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        AuditKey("short")
