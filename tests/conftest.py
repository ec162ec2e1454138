"""Suite-wide settings: no network, and an audit store of the test session's own.

The converted base model and the Chroma index stay under the project's runtime home (built once by
``lendsafe prepare``); decisions the tests make are recorded in a temporary SQLite store so the
analyst's own audit database is never touched.
"""
import os
import socket
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_AUDIT_DIR = Path(tempfile.mkdtemp(prefix="lendsafe-test-audit-"))
os.environ.setdefault("LENDSAFE_DATABASE_URL", f"sqlite:///{_AUDIT_DIR / 'audit.db'}?synchronous=NORMAL")


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(scope="module")
def no_network():
    """Any connection or name lookup outside loopback raises: a download attempt fails the test."""
    patch = pytest.MonkeyPatch()
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(address[0])):
            raise OSError(f"network access attempted in tests: {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(str(host)):
            raise OSError(f"name lookup attempted in tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    patch.setattr(socket.socket, "connect", connect)
    patch.setattr(socket, "getaddrinfo", getaddrinfo)
    patch.setenv("HF_HUB_OFFLINE", "1")
    yield
    patch.undo()


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the run (each test makes its own database on it)."""
    from pg_server import PostgresUnavailable, running_postgres

    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL test server could not start (install Debian's postgresql): {exc}")


@pytest.fixture(scope="session")
def fairness_hmda_folder(tmp_path_factory):
    """The hmda fair-lending analysis (test split, with the LDA search), run once per test session through the CLI."""
    from lendsafe.cli import main

    folder = tmp_path_factory.mktemp("fairness") / "hmda"
    assert main(["fairness", "--dataset", "hmda", "--split", "test", "--quiet", "--out", str(folder)]) == 0
    return folder
