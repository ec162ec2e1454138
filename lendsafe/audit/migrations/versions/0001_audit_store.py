"""Audit store: hash-chained decision records, the purge log and append-only guards.

Revision ID: 0001_audit_store
Revises:
Create Date: 2025-01-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_audit_store"
down_revision = None
branch_labels = None
depends_on = None

# Records may be deleted only when a logged purge already covers them; nothing else changes.
GUARDS = {
    "sqlite": (
        """CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
           BEGIN SELECT RAISE(ABORT, 'audit_records is append-only: UPDATE refused'); END""",
        """CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
           WHEN NOT EXISTS (SELECT 1 FROM audit_purges WHERE audit_purges.last_id >= OLD.id)
           BEGIN SELECT RAISE(ABORT, 'audit_records is append-only: DELETE refused outside a logged purge'); END""",
        """CREATE TRIGGER audit_purges_no_update BEFORE UPDATE ON audit_purges
           BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only: UPDATE refused'); END""",
        """CREATE TRIGGER audit_purges_no_delete BEFORE DELETE ON audit_purges
           BEGIN SELECT RAISE(ABORT, 'audit_purges is append-only: DELETE refused'); END""",
    ),
    "postgresql": (
        """CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF TG_TABLE_NAME = 'audit_records' AND TG_OP = 'DELETE' THEN
               IF EXISTS (SELECT 1 FROM audit_purges WHERE last_id >= OLD.id) THEN
                 RETURN OLD;
               END IF;
               RAISE EXCEPTION USING MESSAGE =
                 'audit_records is append-only: DELETE refused outside a logged purge';
             END IF;
             RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused';
           END $$""",
        """CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
           FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
        """CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
           FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
        """CREATE TRIGGER audit_purges_append_only BEFORE UPDATE OR DELETE ON audit_purges
           FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
        """CREATE TRIGGER audit_purges_no_truncate BEFORE TRUNCATE ON audit_purges
           FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
    ),
}

UNGUARDS = {
    "sqlite": tuple(f"DROP TRIGGER IF EXISTS {name}" for name in (
        "audit_records_no_update", "audit_records_no_delete",
        "audit_purges_no_update", "audit_purges_no_delete")),
    "postgresql": ("DROP FUNCTION IF EXISTS audit_refuse_change() CASCADE",),
}

HASH = sa.String(64)
TIMESTAMP = sa.String(32)   # ISO 8601 UTC, fixed width, sorts as text


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, index=True),
        sa.Column("dataset", sa.String(64), nullable=False, index=True),
        sa.Column("decision", sa.String(16), nullable=False, index=True),
        sa.Column("writer", sa.String(32), nullable=True, index=True),
        sa.Column("actor", sa.String(128), nullable=False, index=True),
        sa.Column("first_reason", sa.String(64), nullable=True, index=True),
        sa.Column("notice_sha256", HASH, nullable=True),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("record_hash", HASH, nullable=False, unique=True),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_purges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("purged_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("months", sa.Integer, nullable=False),
        sa.Column("cutoff", TIMESTAMP, nullable=False),
        sa.Column("first_id", sa.Integer, nullable=False),
        sa.Column("last_id", sa.Integer, nullable=False, index=True),
        sa.Column("purged_count", sa.Integer, nullable=False),
        sa.Column("anchor_hash", HASH, nullable=False),
        sa.Column("prev_entry_hash", HASH, nullable=False),
        sa.Column("entry_hash", HASH, nullable=False, unique=True),
    )
    for statement in GUARDS.get(op.get_bind().dialect.name, ()):
        op.execute(statement)


def downgrade() -> None:
    for statement in UNGUARDS.get(op.get_bind().dialect.name, ()):
        op.execute(statement)
    op.drop_table("audit_purges")
    op.drop_table("audit_records")
