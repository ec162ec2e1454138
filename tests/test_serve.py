"""`lendsafe serve`: a real worker process answers `lendsafe explain` exactly as the command would alone."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lendsafe.commands import serve
from lendsafe.config import PROJECT_ROOT

EXAMPLES = PROJECT_ROOT / "data" / "examples"
LENDSAFE = [sys.executable, "-m", "lendsafe.cli"]
TIMINGS = ("latency_ms", "load_ms", "audit_id")


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """A worker serving on a socket of its own (template writer, its own audit store)."""
    folder = tmp_path_factory.mktemp("serve")
    env = {**os.environ, "LENDSAFE_SERVE_SOCKET": str(folder / "w.sock"), "LENDSAFE_USE_LLM": "0",
           "LENDSAFE_DATABASE_URL": f"sqlite:///{folder / 'audit.db'}", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([*LENDSAFE, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (folder / "w.sock").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.1)
    yield env, folder
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) != 0 and not (folder / "w.sock").exists()     # stopped, its socket removed


def run(args: list[str], env: dict, stdin: bytes | None = None, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*LENDSAFE, *args], env=env, input=stdin, capture_output=True, cwd=cwd, timeout=300)


def alone(env: dict) -> dict:
    return {**env, "LENDSAFE_SERVE": "0"}


def without_timings(stdout: bytes) -> dict:
    return {k: v for k, v in json.loads(stdout).items() if k not in TIMINGS}


def test_the_worker_answers_as_the_command_alone_would(worker):
    env, _ = worker
    args = ["explain", str(EXAMPLES / "hmda_denial.json")]
    served, own = run(args, env), run(args, alone(env))
    assert served.returncode == own.returncode == 0
    assert without_timings(served.stdout) == without_timings(own.stdout)
    assert json.loads(served.stdout)["load_ms"] < json.loads(own.stdout)["load_ms"]      # models already loaded


def test_the_worker_records_each_explanation_in_the_clients_audit_store(worker, tmp_path):
    env, _ = worker
    mine = {**env, "LENDSAFE_DATABASE_URL": f"sqlite:///{tmp_path / 'mine.db'}"}
    served = run(["explain", str(EXAMPLES / "hmda_denial.json")], mine)
    listed = run(["audit", "list"], mine)
    assert served.returncode == 0 and json.loads(served.stdout)["audit_id"] == 1
    assert listed.returncode == 0 and len(listed.stdout.decode().strip().splitlines()) >= 1


@pytest.mark.parametrize("args, stdin", [
    (["explain", "missing.json"], None),
    (["explain", "-"], b'{"loan_amount": "x"}'),
    (["explain", "-"], b"\xff\xfe not json"),
    (["explain", "--writer", "bogus", "x.json"], None),
    (["explain", str(EXAMPLES / "credit_denial.json")], None),          # hmda fields missing
])
def test_bad_input_gets_the_same_message_and_exit_code_from_the_worker(worker, args, stdin):
    env, _ = worker
    served, own = run(args, env, stdin), run(args, alone(env), stdin)
    assert served.returncode == own.returncode == 2
    assert served.stderr == own.stderr and served.stdout == own.stdout == b""


def test_relative_paths_and_standard_input_are_the_clients(worker):
    env, _ = worker
    relative = run(["explain", "hmda_denial.json"], env, cwd=EXAMPLES)
    piped = run(["explain", "-"], env, stdin=(EXAMPLES / "hmda_denial.json").read_bytes())
    assert relative.returncode == piped.returncode == 0
    assert without_timings(relative.stdout) == without_timings(piped.stdout)


def test_a_second_worker_on_the_same_socket_is_refused(worker):
    env, _ = worker
    second = run(["serve"], env)
    assert second.returncode == 2 and b"a worker is already serving" in second.stderr


def test_without_a_worker_the_command_runs_in_its_own_process(tmp_path, monkeypatch):
    monkeypatch.setenv(serve.SOCKET_ENV, str(tmp_path / "none.sock"))
    assert serve.forward(["explain", "x.json"]) is None
    (tmp_path / "none.sock").write_text("")                   # a socket file left by a worker that is gone
    assert serve.forward(["explain", "x.json"]) is None
    assert serve.forward(["score", "x.json"]) is None          # not a forwarded command
    monkeypatch.setenv(serve.SWITCH_ENV, "0")
    assert serve.forward(["explain", "x.json"]) is None


def test_bad_settings_are_left_to_the_command_to_report(monkeypatch, capsys):
    from lendsafe.cli import main

    monkeypatch.delenv(serve.SOCKET_ENV, raising=False)
    monkeypatch.setenv("LENDSAFE_USE_LLM", "sometimes")
    assert serve.forward(["explain", "x.json"]) is None
    assert main(["explain", str(EXAMPLES / "hmda_denial.json")]) == 2
    assert "LENDSAFE_USE_LLM" in capsys.readouterr().err


def test_a_crash_inside_the_worker_prints_its_traceback_and_exits_1(capsys):
    def crash() -> int:
        raise RuntimeError("boom")

    assert serve._exit_code(crash) == 1 and "RuntimeError: boom" in capsys.readouterr().err
    assert serve._exit_code(lambda: (_ for _ in ()).throw(SystemExit(2))) == 2


def test_the_request_context_restores_the_workers_folder_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LENDSAFE_HOME", "/worker/home")
    monkeypatch.delenv("LENDSAFE_USE_LLM", raising=False)
    before = os.getcwd()
    request = {"argv": ["explain"], "cwd": str(tmp_path), "env": {"LENDSAFE_USE_LLM": "0"}, "stdin": ""}
    with serve._client_context(request):
        assert os.getcwd() == str(tmp_path) and "LENDSAFE_HOME" not in os.environ
        assert os.environ["LENDSAFE_USE_LLM"] == "0"
    assert os.getcwd() == before and os.environ["LENDSAFE_HOME"] == "/worker/home"
    assert "LENDSAFE_USE_LLM" not in os.environ
