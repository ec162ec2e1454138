"""Unique issue keys: an application is issued once, whichever batch or process issues it.

Adds ``audit_records.issue_key`` (the key a batch issues a row under, copied from the hashed content;
NULL for records made without one, which any number of records may share) with a unique index, so two
processes issuing the same application cannot both commit a record for it. Existing records get the key
their content names; the append-only guard is lifted for that one statement and restored. Records that
already share a key (issued twice before this revision) stop the upgrade with their ids: review them
before upgrading.

Revision ID: 0003_unique_issue_keys
Revises: 0002_signed_chain
Create Date: 2025-03-01
"""
import importlib

import sqlalchemy as sa
from alembic import op

revision = "0003_unique_issue_keys"
down_revision = "0002_signed_chain"
branch_labels = None
depends_on = None

INDEX = "ux_audit_records_issue_key"
# The records' append-only guard (0001) per backend: how to lift and restore it around the copy.
_FIRST = importlib.import_module("lendsafe.audit.migrations.versions.0001_audit_store")
NO_UPDATE_SQLITE = next(statement for statement in _FIRST.GUARDS["sqlite"] if "audit_records_no_update" in statement)
LIFT = {
    "sqlite": ("DROP TRIGGER audit_records_no_update",),
    "postgresql": ("ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only",),
}
RESTORE = {
    "sqlite": (NO_UPDATE_SQLITE,),
    "postgresql": ("ALTER TABLE audit_records ENABLE TRIGGER audit_records_append_only",),
}
KEY_OF_CONTENT = {
    "sqlite": "json_extract(content, '$.issue_key')",
    "postgresql": "(content::json ->> 'issue_key')",
}
HAS_KEY = """content LIKE '%"issue_key":%'"""


def _shared_keys(bind) -> list[tuple[str, str]]:
    key = KEY_OF_CONTENT[bind.dialect.name]
    rows = bind.execute(sa.text(f"SELECT {key} AS k, MIN(id), MAX(id), COUNT(*) FROM audit_records "
                                f"WHERE {HAS_KEY} GROUP BY {key} HAVING COUNT(*) > 1"))
    return [(row[0], f"records {row[1]}..{row[2]} ({row[3]} records)") for row in rows]


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.add_column("audit_records", sa.Column("issue_key", sa.String(64), nullable=True))
    shared = _shared_keys(bind)
    if shared:
        raise RuntimeError("audit store upgrade stopped: these issue keys name more than one record (an "
                           "application issued twice): " + "; ".join(f"{k}: {where}" for k, where in shared))
    for statement in (*LIFT[dialect], f"UPDATE audit_records SET issue_key = {KEY_OF_CONTENT[dialect]} "
                                      f"WHERE {HAS_KEY}", *RESTORE[dialect]):
        op.execute(statement)
    op.create_index(INDEX, "audit_records", ["issue_key"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="audit_records")
    op.drop_column("audit_records", "issue_key")
