"""Signed chain: record and purge-log signatures, purges as chain records, a lawful-period guard.

Adds ``audit_records.record_mac`` (HMAC of the record hash with the audit key) and, to the purge
log, ``credit`` (consumer or business: the retention rule applied), ``last_created_at`` (newest
record removed), ``record_id`` (the purge's own record in the chain) and ``entry_mac``. A purge-log
row with a period below the 12-month floor of 12 CFR 1002.12(b) is refused by the database itself.

Revision ID: 0002_signed_chain
Revises: 0001_audit_store
Create Date: 2025-02-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_signed_chain"
down_revision = "0001_audit_store"
branch_labels = None
depends_on = None

HASH = sa.String(64)
FLOOR_MONTHS = 12        # business credit; consumer credit (25 months) is checked by the library

RECORD_COLUMNS = (sa.Column("record_mac", HASH, nullable=True),)
PURGE_COLUMNS = (
    sa.Column("credit", sa.String(16), nullable=True),
    sa.Column("last_created_at", sa.String(32), nullable=True),
    sa.Column("record_id", sa.Integer, nullable=True),
    sa.Column("entry_mac", HASH, nullable=True),
)

GUARDS = {
    "sqlite": (
        f"""CREATE TRIGGER audit_purges_lawful_period BEFORE INSERT ON audit_purges
           WHEN NEW.months < {FLOOR_MONTHS}
           BEGIN SELECT RAISE(ABORT, 'audit_purges: retention period below {FLOOR_MONTHS} months refused'); END""",
    ),
    "postgresql": (
        f"""ALTER TABLE audit_purges ADD CONSTRAINT audit_purges_lawful_period CHECK (months >= {FLOOR_MONTHS})""",
    ),
}
UNGUARDS = {
    "sqlite": ("DROP TRIGGER IF EXISTS audit_purges_lawful_period",),
    "postgresql": ("ALTER TABLE audit_purges DROP CONSTRAINT IF EXISTS audit_purges_lawful_period",),
}


def upgrade() -> None:
    for column in RECORD_COLUMNS:
        op.add_column("audit_records", column)
    for column in PURGE_COLUMNS:
        op.add_column("audit_purges", column)
    for statement in GUARDS.get(op.get_bind().dialect.name, ()):
        op.execute(statement)


def downgrade() -> None:
    for statement in UNGUARDS.get(op.get_bind().dialect.name, ()):
        op.execute(statement)
    for column in PURGE_COLUMNS:
        op.drop_column("audit_purges", column.name)
    for column in RECORD_COLUMNS:
        op.drop_column("audit_records", column.name)
