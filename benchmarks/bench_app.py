"""Dashboard speed in headless Chromium, each figure beside a baseline measured in the same run.

1. First page interactive: seconds from starting `streamlit run app.py` (artifacts prepared) until
   the Decision explorer is drawn with its Decide button and the script run has finished, beside a
   bare Streamlit hello page (a title and a button) measured the same way. Target: <= 5 s.
2. Decision with its explanation: p50 seconds from clicking "Decide this application" on a held-out
   denial until its explanation is on screen and the run has finished (also: until the result
   heading first shows), beside the library call
   alone (``Issuer.issue`` on other held-out denials, same writer, same fresh runtime home).
   Measured for the default writer (LoRA model; the decision records which writer wrote the text)
   and for the template writer (LENDSAFE_USE_LLM=0). Target: <= 3 s p50.

Each server gets a fresh runtime home (the prepared index and base model linked in, an empty
generation cache) so no explanation is answered from a cache. Writes benchmarks/results/app.json.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lendsafe.config import Settings  # noqa: E402
from lendsafe.ui import server as dashboard  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RESULTS = ROOT / "benchmarks" / "results" / "app.json"
STARTS = int(os.environ.get("BENCH_APP_STARTS", "3"))
DECISIONS = int(os.environ.get("BENCH_APP_DECISIONS", "5"))
WRITERS = {"default": None, "template": "0"}          # LENDSAFE_USE_LLM of the server (None = default)
HELLO = 'import streamlit as st\nst.title("Hello")\nst.button("Go")\n'
TIMEOUT_MS = 300_000


def fresh_home(folder: Path) -> Path:
    """A runtime home with the prepared index and base model linked in and nothing cached."""
    prepared = Settings().home
    home = folder / "home"
    home.mkdir(parents=True)
    for name in ("index", "models"):
        if (prepared / name).exists():
            (home / name).symlink_to((prepared / name).resolve())
    return home


def run_ended(page) -> float:
    """The moment the running indicator is gone (the page's content is already on screen)."""
    page.wait_for_function(f"!document.querySelector('{dashboard.RUNNING_SELECTOR}')", timeout=TIMEOUT_MS,
                           polling=20)
    return time.perf_counter()


def first_page_seconds(browser, script: Path, heading: str, button: str, env: dict, log: Path) -> float:
    """Seconds from process start until ``heading`` and ``button`` are drawn and the run ended."""
    with dashboard.start(script, log=log, env=env) as running:
        running.wait_healthy()
        page = browser.new_page()
        page.goto(running.url)
        page.get_by_role("heading", name=heading).wait_for(timeout=TIMEOUT_MS)
        page.get_by_role("button", name=button, exact=True).wait_for(timeout=TIMEOUT_MS)
        seconds = run_ended(page) - running.started
        page.close()
    return seconds


def held_out_denials(count: int) -> list[tuple[int, dict]]:
    from lendsafe.scoring import Scorer
    from lendsafe.ui.tables import held_out_applications

    rows = held_out_applications("hmda")
    decisions = Scorer.load("hmda").score_many([application for _, application in rows])
    return [row for row, decision in zip(rows, decisions) if decision.denied][:count]


def decide_in_browser(page, row: int) -> tuple[float, float]:
    """Pick held-out row ``row`` and time Decide -> (result heading shown, whole result with its
    explanation drawn and the run finished)."""
    picker = page.get_by_role("combobox", name="Application")
    picker.click()
    picker.fill(f"row {row} ·")
    page.get_by_role("option", name=re.compile(rf"^row {row} ·")).first.click()
    dashboard.wait_idle(page, TIMEOUT_MS, settle_ms=300)
    started = time.perf_counter()
    page.get_by_role("button", name="Decide this application").click()
    page.get_by_role("heading", name=f"Result (held-out row {row})").wait_for(timeout=TIMEOUT_MS)
    first = time.perf_counter() - started
    page.get_by_role("heading", name="Explanation").wait_for(timeout=TIMEOUT_MS)
    seconds = run_ended(page) - started
    dashboard.wait_idle(page, TIMEOUT_MS)
    return first, seconds


def browser_decisions(browser, rows: list[tuple[int, dict]], env: dict, log: Path) -> list[tuple[float, float]]:
    """Decisions in one browser session; the first (untimed) waits for the models to load."""
    with dashboard.start(log=log, env=env) as running:
        running.wait_healthy()
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(running.url)
        page.get_by_role("heading", name="Decision explorer").wait_for(timeout=TIMEOUT_MS)
        page.get_by_text("Held-out application", exact=True).click()
        page.get_by_role("button", name="Decide this application").wait_for(timeout=TIMEOUT_MS)
        dashboard.wait_idle(page, TIMEOUT_MS)
        page.get_by_role("combobox", name="Decision").click()          # only denials in the picker
        page.get_by_role("option", name="deny", exact=True).click()
        dashboard.wait_idle(page, TIMEOUT_MS)
        times = [decide_in_browser(page, row) for row, _ in rows]
        page.close()
    return times[1:]


def library_decisions(rows: list[tuple[int, dict]], home: Path, use_llm: str | None, audit_url: str) -> tuple[list[float], list[str]]:
    """``Issuer.issue`` alone on the same kind of applications (first call untimed: loading)."""
    from lendsafe.audit import AuditStore
    from lendsafe.issuance import Issuer
    from lendsafe.pipeline import Pipeline

    settings = Settings(home=home, use_llm=use_llm != "0")
    issuer = Issuer(Pipeline(settings), audit=AuditStore(audit_url), actor="bench:library")
    times, writers = [], []
    for _, application in rows:
        started = time.perf_counter()
        issued = issuer.issue(application)
        times.append(time.perf_counter() - started)
        writers.append(issued.decision.writer)
    return times[1:], writers[1:]


def p50(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 2) if baseline else float("nan")


def main() -> dict | None:
    if not Path(CHROMIUM).exists():
        print(f"bench_app skipped: needs {CHROMIUM} (Debian chromium; `make system-test` installs it)")
        return None
    from playwright.sync_api import sync_playwright

    denials = held_out_denials(4 * (DECISIONS + 1))
    report: dict = {"starts": STARTS, "decisions": DECISIONS}
    with tempfile.TemporaryDirectory(prefix="lendsafe-bench-app-") as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        hello = folder / "hello.py"
        hello.write_text(HELLO)
        env = {"LENDSAFE_HOME": str(fresh_home(folder / "first")), "LENDSAFE_DATABASE_URL": f"sqlite:///{folder / 'a.db'}"}
        app_s, hello_s = [], []
        for attempt in range(STARTS):
            hello_s.append(first_page_seconds(browser, hello, "Hello", "Go", env, folder / f"hello{attempt}.log"))
            app_s.append(first_page_seconds(browser, ROOT / "app.py", "Decision explorer", "Decide", env,
                                            folder / f"app{attempt}.log"))
        report["first_page"] = {"app_s": [round(s, 2) for s in app_s], "hello_s": [round(s, 2) for s in hello_s],
                                "app_p50_s": p50(app_s), "hello_p50_s": p50(hello_s),
                                "ratio": ratio(p50(app_s), p50(hello_s)), "target_s": 5.0}
        print(f"first page interactive: app {p50(app_s):.2f} s, bare hello page {p50(hello_s):.2f} s "
              f"(x{report['first_page']['ratio']})", flush=True)
        report["decision"] = {}
        for index, (name, use_llm) in enumerate(WRITERS.items()):
            home = fresh_home(folder / f"decide-{name}")
            audit = f"sqlite:///{folder / f'decide-{name}.db'}"
            chunk = denials[index * 2 * (DECISIONS + 1):(index + 1) * 2 * (DECISIONS + 1)]
            browser_rows, library_rows = chunk[:DECISIONS + 1], chunk[DECISIONS + 1:]
            server_env = {"LENDSAFE_HOME": str(home), "LENDSAFE_DATABASE_URL": audit, "LENDSAFE_USE_LLM": use_llm}
            timed = browser_decisions(browser, browser_rows, server_env, folder / f"decide-{name}.log")
            first, shown = [t[0] for t in timed], [t[1] for t in timed]
            alone, writers = library_decisions(library_rows, home, use_llm, audit)
            report["decision"][name] = {"browser_s": [round(s, 2) for s in shown], "browser_p50_s": p50(shown),
                                        "result_heading_p50_s": p50(first),
                                        "library_s": [round(s, 2) for s in alone], "library_p50_s": p50(alone),
                                        "ratio": ratio(p50(shown), p50(alone)), "writers": sorted(set(writers)),
                                        "target_p50_s": 3.0}
            print(f"decision with explanation ({name} writer -> {', '.join(sorted(set(writers)))}): browser p50 "
                  f"{p50(shown):.2f} s, library call alone {p50(alone):.2f} s (x{report['decision'][name]['ratio']})",
                  flush=True)
        browser.close()
    report["machine"] = {"cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
                         "python": platform.python_version()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
