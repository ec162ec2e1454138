"""The audit store's database: the SQLite and PostgreSQL engines, the tables, the migrations and the write lock.

SQLite (WAL, ``synchronous=FULL``; ``?synchronous=NORMAL`` on the URL trades power-loss durability of
the last commits for speed) by default, PostgreSQL (psycopg 3) when ``LENDSAFE_DATABASE_URL`` says so.
A write holds an exclusive lock for its whole transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
``pg_advisory_xact_lock``); readers do not block writers. The schema is the Alembic migrations under
``migrations/``, whose triggers refuse UPDATE and DELETE except for records a logged purge covers.
SQLAlchemy and Alembic are imported where they are used, so importing this module stays cheap.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from lendsafe.errors import ConfigurationError
from lendsafe.redaction import printable, redact_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "audit_alembic_version"
ADVISORY_LOCK_KEY = 0x1E5D_A0D1          # PostgreSQL advisory lock guarding the chain head
BACKENDS = ("sqlite", "postgresql")
# SQLite durability, chosen with ?synchronous=... on the URL. FULL (default): every committed record
# is on disk. NORMAL: in WAL mode still crash-consistent, but a power loss may drop the last commits.
SQLITE_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")
SQLITE_LOCK_WAIT_SECONDS = 60


# ----------------------------------------------------------------------------- tables

@cache
def tables() -> Any:
    """SQLAlchemy Core table objects matching the migrations (imported lazily): records, purges."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    records = sa.Table(
        "audit_records", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.String) for name in (
            "created_at", "dataset", "decision", "writer", "actor", "first_reason",
            "notice_sha256", "prev_hash", "record_hash")),
        sa.Column("content", sa.Text),
        sa.Column("record_mac", sa.String),
        sa.Column("issue_key", sa.String),
    )
    purges = sa.Table(
        "audit_purges", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        *(sa.Column(name, sa.String) for name in (
            "purged_at", "actor", "cutoff", "anchor_hash", "prev_entry_hash", "entry_hash", "credit",
            "last_created_at", "entry_mac")),
        *(sa.Column(name, sa.Integer) for name in ("months", "first_id", "last_id", "purged_count", "record_id")),
    )
    return records, purges


@cache
def last_record_query() -> Any:
    """Id and hash of the newest record."""
    from sqlalchemy import select

    records, _ = tables()
    return select(records.c.id, records.c.record_hash).order_by(records.c.id.desc()).limit(1)


# ----------------------------------------------------------------------------- engines

def run_pragmas(cursor, pragmas, wait_seconds: float = SQLITE_LOCK_WAIT_SECONDS, sleep=None) -> None:
    """Each ``PRAGMA``, retried while SQLite answers 'database is locked'.

    Connections that open a new file together and switch it to WAL can deadlock on the lock
    escalation; SQLite then answers one of them at once, without calling its busy handler.
    """
    import sqlite3
    import time

    sleep = sleep or time.sleep
    deadline = time.monotonic() + wait_seconds
    for pragma in pragmas:
        while True:
            try:
                cursor.execute(f"PRAGMA {pragma}")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                sleep(0.05)


def _sqlite_engine(url: Any) -> Any:
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    synchronous = url.query.get("synchronous", "FULL").upper()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ConfigurationError(f"sqlite synchronous must be one of {SQLITE_SYNCHRONOUS}; got {synchronous!r}")
    url = url.difference_update_query(["synchronous"])
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        _sqlite_folder(url.database)
    extra = {"poolclass": StaticPool} if in_memory else {}
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **extra)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None          # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        run_pragmas(cursor, ("busy_timeout=60000", "journal_mode=WAL", f"synchronous={synchronous}"))
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _sqlite_folder(database: str) -> None:
    """Make the folder of a SQLite store; ConfigurationError naming the URL when it cannot be made."""
    try:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"audit store URL names a SQLite file whose folder cannot be made: "
                                 f"{printable(database)[:200]} ({getattr(exc, 'strerror', None) or exc})") from None


def _postgres_engine(url: Any) -> Any:
    from sqlalchemy import create_engine

    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True)


ENGINE_FACTORIES = {"sqlite": _sqlite_engine, "postgresql": _postgres_engine}


def create_engine(url_text: str) -> Any:
    """The engine of an audit store URL; ConfigurationError (password redacted) for any other URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(url_text)
        backend = url.get_backend_name()
        if backend not in ENGINE_FACTORIES:
            raise ConfigurationError(f"audit store URL must be one of {BACKENDS}; got {printable(backend)!r} "
                                     f"({printable(redact_url(url_text))})")
        return ENGINE_FACTORIES[backend](url)
    except (ArgumentError, ValueError, TypeError) as exc:       # ValueError: e.g. a port that is not a number
        raise ConfigurationError(f"audit store URL is not valid ({printable(redact_url(url_text))}): "
                                 f"{printable(redact_url(str(exc).splitlines()[0]))}") from None


# ----------------------------------------------------------------------------- transactions and schema

@contextmanager
def locked(engine: Any) -> Iterator[Any]:
    """One transaction holding the store's exclusive write lock."""
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            yield conn


@contextmanager
def reading(engine: Any) -> Iterator[Any]:
    """One read transaction (a consistent snapshot; writers are not blocked)."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def migrate(engine: Any) -> None:
    """Upgrade the schema to head under the write lock (several processes may open at once)."""
    from alembic import command
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current == head:
        return
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with locked(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
