"""The audit store's database: both backends' engines and URLs, durability, migrations, the append-only
triggers and the unique issue keys (``lendsafe.audit.database``)."""
from __future__ import annotations

import sqlite3
import time

import pytest

from audit_support import (BACKENDS, FORK, checkpoints_in_tmp, clock, db_url, execute_raw, fill, keyed,  # noqa: F401
                           store)
from lendsafe.audit.database import MIGRATIONS_DIR, VERSION_TABLE, run_pragmas, tables
from lendsafe.audit.store import AuditStore
from lendsafe.errors import ConfigurationError

@pytest.mark.parametrize("backend_url", BACKENDS)
def test_migrations_reach_head_once_and_default_url_is_sqlite_under_home(backend_url, tmp_path, monkeypatch,
                                                                        request):
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    if backend_url == "sqlite":
        monkeypatch.setenv("LENDSAFE_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("LENDSAFE_DATABASE_URL", raising=False)
        url = None
    else:
        url = request.getfixturevalue("postgres").new_database()
    with AuditStore(url) as first, AuditStore(url) as second:
        assert second.url == first.url
        engine = create_engine(first.url)
        with engine.connect() as conn:
            versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        engine.dispose()
    assert versions == [ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()]
    if backend_url == "sqlite":
        database = tmp_path / "home" / "audit.db"
        assert first.url == f"sqlite:///{database}" and database.is_file()
        assert sqlite3.connect(database).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_durability_is_chosen_on_the_url(tmp_path):
    with AuditStore(f"sqlite:///{tmp_path / 'a.db'}?synchronous=normal") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1      # NORMAL
    with pytest.raises(ConfigurationError, match="synchronous must be one of"):
        AuditStore(f"sqlite:///{tmp_path / 'b.db'}?synchronous=OFF")
    with pytest.raises(ConfigurationError, match="must be one of"):
        AuditStore("mysql://localhost/audit")


def test_store_errors_never_show_the_url_password():
    with pytest.raises(ConfigurationError) as caught:
        AuditStore("mysql://auditor:hunter2@db.bank/audit")
    assert "hunter2" not in str(caught.value) and "auditor:***@db.bank" in str(caught.value)
    with pytest.raises(ConfigurationError, match="URL is not valid") as caught:
        AuditStore("sqlite://auditor:hunter2@/tmp/x.db")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("statement", [
    "UPDATE audit_records SET actor = 'mallory' WHERE id = 2",
    "DELETE FROM audit_records WHERE id = 2",
    "DELETE FROM audit_records",
])
def test_database_refuses_changes_from_other_clients(store, db_url, statement):
    from sqlalchemy.exc import DatabaseError

    fill(store, 3)
    with pytest.raises(DatabaseError, match="append-only"):
        execute_raw(db_url, statement)
    assert store.count() == 3 and store.verify().ok


def _open_store(url: str, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    with AuditStore(url) as store:
        store.count()


def test_stores_opened_at_once_by_several_processes_on_a_new_database_all_open(tmp_path):
    """Connections switching a new file to WAL at once can deadlock; SQLite then answers 'locked' without waiting."""
    for attempt in range(5):
        url = f"sqlite:///{tmp_path / f'fresh{attempt}.db'}"
        start_at = time.time() + 0.3
        openers = [FORK.Process(target=_open_store, args=(url, start_at)) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=120)
        assert [opener.exitcode for opener in openers] == [0, 0, 0, 0]


class _LockedCursor:
    """A cursor whose first ``locked`` executions fail as SQLite does when switching to WAL deadlocks."""

    def __init__(self, locked: int):
        self.locked, self.executed = locked, []

    def execute(self, statement: str) -> None:
        if self.locked:
            self.locked -= 1
            raise sqlite3.OperationalError("database is locked")
        self.executed.append(statement)


def test_pragmas_are_retried_while_the_database_is_locked_then_the_error_is_raised():
    cursor = _LockedCursor(locked=3)
    run_pragmas(cursor, ("busy_timeout=1", "journal_mode=WAL"), sleep=lambda _: None)
    assert cursor.executed == ["PRAGMA busy_timeout=1", "PRAGMA journal_mode=WAL"]
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        run_pragmas(_LockedCursor(locked=10**9), ("journal_mode=WAL",), wait_seconds=0.05,
                    sleep=lambda _: time.sleep(0.01))


def test_the_database_refuses_a_second_record_under_one_issue_key(store):
    from sqlalchemy.exc import IntegrityError

    store.append([keyed(1, "d4" * 16)], actor="batch")
    records, _ = tables()
    with store._engine.connect() as conn, pytest.raises(IntegrityError):
        with conn.begin():
            original = conn.execute(records.select().where(records.c.id == 1)).mappings().one()
            conn.execute(records.insert().values(**{**original, "id": 2, "record_hash": "f" * 64}))
    assert store.count() == 1


def _downgrade_to_0002(url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002_signed_chain")
    engine.dispose()


def test_upgrading_to_unique_issue_keys_copies_each_records_key_and_the_chain_verifies(db_url, clock):
    with AuditStore(db_url, clock=clock, key=b"k" * 32) as store:
        store.append([keyed(1, "e5" * 16), keyed(2, None), keyed(3, "f6" * 16)], actor="batch")
    _downgrade_to_0002(db_url)
    with AuditStore(db_url, clock=clock, key=b"k" * 32) as store:
        assert [store.get(i).issue_key for i in (1, 2, 3)] == ["e5" * 16, None, "f6" * 16]
        assert store.verify().ok, store.verify().summary()
        assert not store.append([keyed(4, "e5" * 16)], actor="batch")[0].new
        with pytest.raises(Exception, match="append-only"):
            with store._engine.begin() as conn:
                conn.exec_driver_sql("UPDATE audit_records SET actor = 'x' WHERE id = 1")
