"""The audit store: every decision, notice of incompleteness, refused notice and purge, recorded in a signed
hash chain that can replay exactly what the applicant received.

The package owns, in data-flow order (an import-linter contract holds it):
``records`` (record kinds, the entries callers hand in, each kind's canonical body, ``AuditRecord``),
``retention`` (the 12 CFR 1002.12(b) retention rule and purge-log fields), ``anchor`` (the audit key and
the signed checkpoint file kept outside the database), ``chain`` (hash links over ``lendsafe.canonical``,
signatures, and the verification naming the first broken record), ``database`` (SQLite and PostgreSQL
engines, tables, migrations, the write lock), ``store`` (``AuditStore``: writing, reading, verifying and
purging), ``replay`` (the notice rebuilt from a record: the only module here that imports the notice
renderer) and ``evidence`` (the evidence pack of a record).
"""
