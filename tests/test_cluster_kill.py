"""Kill test on a real cluster: `dask scheduler` and two `dask worker` processes, `lendsafe notices
--cluster tcp://...`, and one worker SIGKILLed while partitions are being issued. After Dask runs the lost
partitions again on the other worker, every application has exactly one manifest or error line, no issue
key is recorded twice, every listed PDF has its recorded hash and `lendsafe audit verify` passes."""
from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lendsafe.audit.store import AuditStore

from test_batch_kill import NOTICE_DATE, applications, environment, read_csv_rows, write_csv

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).with_name("dask"))
PARTITION_ROWS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    """A scheduler and two single-threaded workers without nannies (a killed worker stays dead)."""

    def __init__(self, folder: Path, env: dict):
        self.port, self.folder, self.env = free_port(), folder, env
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> "Cluster":
        self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--no-dashboard"])
        wait_for(lambda: listening(self.port), "the scheduler")
        for name in ("w1", "w2"):
            self._spawn(name, [DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--name", name,
                               "--no-dashboard", "--death-timeout", "60"])
        for name in ("w1", "w2"):
            wait_for(lambda name=name: "Registered to" in self.log(name), f"worker {name} to join")
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def notices(csv_path: Path, out: Path, env: dict, cluster: str | None) -> subprocess.Popen:
    where = ["--cluster", cluster, "--partition-rows", str(PARTITION_ROWS)] if cluster else []
    return subprocess.Popen([sys.executable, "-m", "lendsafe.cli", "notices", str(csv_path), "--out", str(out),
                             "--writer", "template", "--notice-date", NOTICE_DATE, *where], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def part_lines(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) - 1 for p in out.glob(".lendsafe-parts/*/*.manifest.csv"))


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """What one uninterrupted process lists for the CSV: its manifest rows and error rows."""
    folder = tmp_path_factory.mktemp("cluster-kill-reference")
    csv_path = folder / "applications.csv"
    write_csv(csv_path, applications())
    process = notices(csv_path, folder / "out", environment(folder), None)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    return {"csv": csv_path, "rows": sorted(int(m["data_row"]) for m in read_csv_rows(folder / "out" / "manifest.csv")),
            "errors": sorted(int(e["data_row"]) for e in read_csv_rows(folder / "out" / "errors.csv")),
            "summary": json.loads(stdout)}


@pytest.mark.parametrize("lines_before_kill", [3, 14])
def test_a_worker_killed_mid_run_leaves_a_complete_verified_result(lines_before_kill, expected, tmp_path):
    env = environment(tmp_path)
    cluster = Cluster(tmp_path, env).start()
    out = tmp_path / "out"
    try:
        run = notices(expected["csv"], out, env, cluster.address)
        wait_for(lambda: part_lines(out) >= lines_before_kill or run.poll() is not None, "partitions to be issued")
        assert run.poll() is None, "the run ended before the kill: " + run.stderr.read()
        cluster.processes["w1"].send_signal(signal.SIGKILL)
        assert cluster.processes["w1"].wait(timeout=30) == -signal.SIGKILL
        stdout, stderr = run.communicate(timeout=600)
    finally:
        cluster.stop()
    assert run.returncode == 0 and "Traceback" not in stderr, stderr
    summary = json.loads(stdout)
    assert summary["failed_partitions"] == 0 and summary["processed"] == expected["summary"]["processed"]
    assert "Remove worker" in cluster.log("scheduler") and "w1" in cluster.log("scheduler")
    check_complete(out, env, expected)


def check_complete(out: Path, env: dict, expected: dict) -> None:
    manifest, errors = read_csv_rows(out / "manifest.csv"), read_csv_rows(out / "errors.csv")
    listed = Counter(int(r["data_row"]) for r in manifest + errors)
    assert sorted(listed) == sorted(expected["rows"] + expected["errors"]) and set(listed.values()) == {1}, \
        "every application has exactly one notice or one error row"
    assert sorted(int(m["data_row"]) for m in manifest) == expected["rows"]
    with AuditStore(env["LENDSAFE_DATABASE_URL"], key=env["LENDSAFE_AUDIT_KEY"]) as store:
        records = store.list(limit=None)
    keys = Counter(r.content.get("issue_key") for r in records)
    assert set(keys.values()) == {1}, "no issue recorded twice"
    assert len(records) == sum(1 for row in manifest + errors if row["audit_id"])
    by_id = {str(r.id): r for r in records}
    for row in manifest:
        if row["path"]:
            assert hashlib.sha256((out / row["path"]).read_bytes()).hexdigest() == row["sha256"]
        assert by_id[row["audit_id"]].content["issue_key"] == row["key"]
    assert sorted(p.name for p in out.glob("*.pdf")) == sorted(m["path"] for m in manifest if m["path"])
    verify = subprocess.run([sys.executable, "-m", "lendsafe.cli", "audit", "verify"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
