"""Start the dashboard (or any Streamlit script) as a subprocess on 127.0.0.1, wait until it answers,
and wait until a browser page has finished a script run: used by the browser tests and the app
benchmark (which bring their own Playwright page)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lendsafe.config import PROJECT_ROOT
from lendsafe.errors import LendSafeError

HEALTH_PATH = "/_stcore/health"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class StreamlitServer:
    """A running ``streamlit run``; stop it with ``stop()`` (or use it as a context manager)."""

    process: subprocess.Popen
    url: str
    log: Path
    started: float          # time.perf_counter() just before the process was started

    def wait_healthy(self, timeout_s: float = 90.0) -> float:
        """Seconds from start until ``/_stcore/health`` answered 200."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LendSafeError(f"streamlit exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + HEALTH_PATH, timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.1)
        raise LendSafeError(f"streamlit did not answer {HEALTH_PATH} within {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "StreamlitServer":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def start(script: Path | str = PROJECT_ROOT / "app.py", *, log: Path, env: dict[str, str | None] | None = None,
          port: int | None = None) -> StreamlitServer:
    """``streamlit run <script>`` headless on 127.0.0.1:<port> (a free one by default); ``env`` adds
    variables to this process's environment (None removes one)."""
    port = port or free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    return StreamlitServer(process, f"http://127.0.0.1:{port}", log, started)


RUNNING_SELECTOR = '[data-testid="stStatusWidget"]'      # Streamlit's "running" indicator


def wait_idle(page, timeout_ms: float = 300_000, settle_ms: int = 600) -> None:
    """Until the page's script run has ended: the running indicator is gone and still gone a moment
    later (it shows with a short delay after a run starts). ``page`` is a Playwright page."""
    for _ in range(2):
        page.wait_for_timeout(settle_ms)
        page.wait_for_function(f"!document.querySelector('{RUNNING_SELECTOR}')", timeout=timeout_ms)
