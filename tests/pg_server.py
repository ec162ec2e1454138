"""A throwaway PostgreSQL server on 127.0.0.1 for tests.

``initdb`` into a temporary directory, ``pg_ctl start`` on a free port, one fresh database per
caller (``new_database()``), ``pg_ctl stop`` and removal at the end. PostgreSQL refuses to run as
root, so as root the server runs as the unprivileged ``postgres`` user via ``runuser``. Binaries
come from Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``) or ``PATH``.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Iterator

SERVER_USER = "postgres"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """The test server could not be started; the message says what is missing."""


def find_bin_dir() -> Path:
    """Directory holding initdb and pg_ctl: newest Debian version first, then PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    candidates = [Path(p) for p in reversed(versions)]
    on_path = shutil.which("pg_ctl")
    candidates += [Path(on_path).parent] if on_path else []
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise PostgresUnavailable("PostgreSQL server binaries not found: expected initdb and pg_ctl under "
                              "/usr/lib/postgresql/*/bin or on PATH (install Debian's `postgresql`)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root needs `runuser` to start PostgreSQL as an unprivileged user")
    return ["runuser", "-u", SERVER_USER, "--", *command]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{what} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


class PostgresServer:
    """A running server; ``new_database()`` returns a SQLAlchemy URL of an empty database."""

    def __init__(self, bin_dir: Path, root: Path, port: int):
        self.bin_dir, self.root, self.port = bin_dir, root, port
        self.data_dir = root / "data"
        self._names = count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> "PostgresServer":
        _run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SERVER_USER, "--auth=trust",
              "--encoding=UTF8", "--no-sync"], "initdb")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} -c fsync=off"
        try:
            _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start"], "pg_ctl start")
        except PostgresUnavailable as exc:
            raise PostgresUnavailable(f"{exc}\nserver log:\n{self.log_tail()}") from exc
        return self

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                                        "-w", "stop"]), capture_output=True, timeout=START_TIMEOUT_S)

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def new_database(self, prefix: str = "test") -> str:
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={SERVER_USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a private server for the duration of the block; raises PostgresUnavailable with the reason."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="lendsafe-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=SERVER_USER, group=None)
        os.chmod(root, 0o700)
    server = PostgresServer(bin_dir, root, free_port())
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
