"""`lendsafe serve`: a long-lived worker that keeps the models loaded for the command line.

Every `lendsafe explain` otherwise starts a process that imports torch and loads the base model, the
adapter, the regulation index and the risk model before it explains one application. With a worker
running, the command sends its arguments, working folder, standard input (for ``-``) and ``LENDSAFE_*``
environment over a Unix socket; the worker runs the very same command function (``cli.main``) with its
models already loaded and sends back standard output, standard error and the exit code, which the
command reproduces. Without a worker, or with ``LENDSAFE_SERVE=0``, the command runs in its own process
as before. The socket is ``<home>/serve.sock`` (``LENDSAFE_SERVE_SOCKET`` overrides it), readable by its
owner only; the worker takes one request at a time.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

FORWARDED_COMMANDS = ("explain",)        # commands whose models the worker keeps loaded
SOCKET_ENV, SWITCH_ENV = "LENDSAFE_SERVE_SOCKET", "LENDSAFE_SERVE"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_STDIN_BYTES = 16 * 1024 * 1024      # more than any application file may hold; the command refuses it
WORKER_GONE_EXIT = 3

_SERVING = False
_PIPELINES: dict[tuple, Any] = {}


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="keep the models loaded for `lendsafe explain` (a worker)")
    serve.add_argument("--socket", type=Path, help=f"socket path (default <home>/serve.sock or ${SOCKET_ENV})")
    serve.add_argument("--dataset", action="append", help="dataset to load at start (repeatable; default hmda)")
    serve.set_defaults(func=run_serve)


def socket_path() -> Path:
    """The worker's socket: ``$LENDSAFE_SERVE_SOCKET`` or ``<home>/serve.sock``."""
    from lendsafe.config import Settings

    return Path(os.environ.get(SOCKET_ENV) or Settings().home / "serve.sock")


# ----------------------------------------------------------------------------- the worker's side

def pipeline(settings: Any, **options: Any) -> Any:
    """A ``Pipeline``: a new one in a one-off process, the worker's loaded one for these settings when serving."""
    from lendsafe.explain.pipeline import Pipeline

    if not _SERVING:
        return Pipeline(settings, **options)
    key = (repr(settings), tuple(sorted(options.items())))
    if key not in _PIPELINES:
        _PIPELINES[key] = Pipeline(settings, **options)
    return _PIPELINES[key]


def run_serve(args: argparse.Namespace) -> int:
    global _SERVING
    from lendsafe.config import Settings
    from lendsafe.errors import ConfigurationError

    path = args.socket or socket_path()
    if _worker_answers(path):
        raise ConfigurationError(f"socket: a worker is already serving at {path}")
    _SERVING = True
    for dataset in args.dataset or ["hmda"]:
        pipeline(Settings(dataset=dataset), reference="population", writer="auto").load()
    path.unlink(missing_ok=True)
    for stop in (signal.SIGTERM, signal.SIGINT):         # either ends the loop below, which removes the socket
        signal.signal(stop, _stop)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        os.chmod(path, 0o600)
        server.listen(8)
        print(f"lendsafe worker serving at {path} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        try:
            while True:
                connection, _ = server.accept()
                with connection:
                    _answer(connection)
        finally:
            path.unlink(missing_ok=True)


def _stop(signum: int, _frame: Any) -> None:
    raise SystemExit(f"lendsafe worker stopped ({signal.Signals(signum).name})")


def _answer(connection: socket.socket) -> None:
    try:
        request = json.loads(_receive(connection))
    except (ValueError, ConnectionError):
        return
    _send(connection, json.dumps(run_request(request)).encode())


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Run one forwarded command as ``cli.main`` would in the client's folder, environment and input."""
    from lendsafe import cli

    out, err = io.StringIO(), io.StringIO()
    with _client_context(request), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _exit_code(lambda: cli.main(list(request["argv"])))
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _exit_code(command: Callable[[], int]) -> int:
    """The command's exit code, as its own process would end: argparse's exits and crashes included."""
    try:
        return int(command() or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:       # an unexpected failure prints its traceback and exits 1, as in a process of its own
        traceback.print_exc()
        return 1


@contextlib.contextmanager
def _client_context(request: dict[str, Any]):
    """The client's working folder, LENDSAFE_* environment and standard input, restored afterwards."""
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("LENDSAFE_")}
    saved_cwd, saved_stdin = os.getcwd(), sys.stdin
    for key in saved_env:
        del os.environ[key]
    os.environ.update({k: v for k, v in request.get("env", {}).items() if k.startswith("LENDSAFE_")})
    sys.stdin = io.TextIOWrapper(io.BytesIO(base64.b64decode(request.get("stdin") or "")), encoding="utf-8")
    try:
        os.chdir(request["cwd"])
        yield
    finally:
        os.chdir(saved_cwd)
        sys.stdin = saved_stdin
        for key in [k for k in os.environ if k.startswith("LENDSAFE_")]:
            del os.environ[key]
        os.environ.update(saved_env)


# ----------------------------------------------------------------------------- the command's side

def forward(argv: list[str]) -> int | None:
    """Run `argv` on a running worker and reproduce its output and exit code; None when it should run here
    (not a forwarded command, no worker, or ``LENDSAFE_SERVE=0``)."""
    if _SERVING or not argv or argv[0] not in FORWARDED_COMMANDS or os.environ.get(SWITCH_ENV, "1") == "0":
        return None
    from lendsafe.errors import LendSafeError

    try:
        path = socket_path()
    except LendSafeError:          # bad settings: the command itself reports them, in its own process
        return None
    connection = _connect(path)
    if connection is None:
        return None
    with connection:
        _send(connection, json.dumps(_request(argv)).encode())
        try:
            answer = json.loads(_receive(connection))
        except (ValueError, ConnectionError):
            print(f"error: the worker at {path} stopped before answering; the command may not have completed "
                  f"(check `lendsafe audit list`), run it again", file=sys.stderr)
            return WORKER_GONE_EXIT
    sys.stdout.write(answer["stdout"])
    sys.stderr.write(answer["stderr"])
    return int(answer["code"])


def _request(argv: list[str]) -> dict[str, Any]:
    stdin = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1) if "-" in argv[1:] else b""
    return {"argv": argv, "cwd": os.getcwd(), "stdin": base64.b64encode(stdin).decode(),
            "env": {k: v for k, v in os.environ.items() if k.startswith("LENDSAFE_")}}


def _connect(path: Path) -> socket.socket | None:
    if not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:           # a socket left by a worker that is gone
        connection.close()
        return None
    return connection


def _worker_answers(path: Path) -> bool:
    connection = _connect(path)
    if connection is not None:
        connection.close()
    return connection is not None


def _send(connection: socket.socket, payload: bytes) -> None:
    connection.sendall(len(payload).to_bytes(8, "big") + payload)


def _receive(connection: socket.socket) -> bytes:
    size = int.from_bytes(_exactly(connection, 8), "big")
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {size} bytes; at most {MAX_MESSAGE_BYTES}")
    return _exactly(connection, size)


def _exactly(connection: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
