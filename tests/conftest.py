"""Suite-wide settings: no network, and an audit store of the test session's own.

The converted base model and the Chroma index stay under the project's runtime home (built once by
``lendsafe prepare``); decisions the tests make are recorded in a temporary SQLite store so the
analyst's own audit database is never touched.
"""
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_AUDIT_DIR = Path(tempfile.mkdtemp(prefix="lendsafe-test-audit-"))
os.environ.setdefault("LENDSAFE_DATABASE_URL", f"sqlite:///{_AUDIT_DIR / 'audit.db'}?synchronous=NORMAL")
