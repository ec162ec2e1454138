"""Alembic migrations of the audit store; applied to head by ``AuditStore`` on open."""
