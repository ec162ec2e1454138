"""Alembic environment of the audit store.

``lendsafe.audit.database.migrate`` runs the upgrade programmatically and hands over its own connection (already
inside a locked transaction) through ``config.attributes["connection"]``. Run from the command
line, the environment opens ``sqlalchemy.url`` from the Alembic config or ``Settings().database_url``.
"""
from __future__ import annotations

from alembic import context

VERSION_TABLE = "audit_alembic_version"


def _run(connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from sqlalchemy import create_engine

    from lendsafe.config import Settings

    url = context.config.get_main_option("sqlalchemy.url") or Settings().database_url
    with create_engine(url).connect() as fresh:
        _run(fresh)
        fresh.commit()


if context.is_offline_mode():
    raise RuntimeError("the audit store migrations run online only; expected a database connection")
run_online()
