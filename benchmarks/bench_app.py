"""Dashboard speed in headless Chromium, each figure beside a baseline measured in the same run.

1. First page interactive: seconds from starting `streamlit run app.py` (artifacts prepared) until
   the Decision explorer is drawn with its Decide button and the script run has finished, beside a
   bare Streamlit hello page (a title and a button) measured the same way. Target: <= 3 s.
2. Decision with its explanation: p50 seconds from clicking "Decide this application" on a held-out
   denial until its explanation is on screen and the run has finished (also: until the result
   heading first shows), beside the library call
   alone (``Issuer.issue`` on other held-out denials, same writer, same fresh runtime home).
   Measured for the default writer (LoRA model; the decision records which writer wrote the text)
   and for the template writer (LENDSAFE_USE_LLM=0). Target: <= 1.5 s p50.
3. First decision after server start: the browser opens the explorer as soon as the server answers and
   decides one held-out denial; seconds from Decide to its result (target <= 5 s, its stages shown in
   ``st.status``), and since the server started.

Each server gets a fresh runtime home (the prepared index, base model, writer weights, risk tables and
query vectors linked in, an empty generation cache) so no explanation is answered from a cache.
Uses the benchmark method (``benchmarks/method.py``): app and bare page start in turns, round after
round; the decision figures are measured when the page still offers the controls they need (the
dashboard is being redesigned: when it does not, the result says what was missing).
Writes benchmarks/results/app.json (``--force`` to replace a quiet result with a noisy one).
"""
from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import method  # noqa: E402
from lendsafe.config import Settings  # noqa: E402
from lendsafe.ui import server as dashboard  # noqa: E402
from lendsafe.ui import PAGES  # noqa: E402

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
    for name in ("index", "models", "cache/writer", "cache/risk-tables", "cache/query-vectors.sqlite"):
        if (prepared / name).exists():
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            (home / name).symlink_to((prepared / name).resolve())
    return home


def run_ended(page) -> float:
    """The moment the running indicator is gone (the page's content is already on screen)."""
    page.wait_for_function(f"!document.querySelector('{dashboard.RUNNING_SELECTOR}')", timeout=TIMEOUT_MS,
                           polling=20)
    return time.perf_counter()


EXPLORER_PATH = next(p.url_path for p in PAGES if p.module == "explorer")


def first_page_seconds(browser, script: Path, env: dict, log: Path) -> float:
    """Seconds from process start until the page shows its first heading and the script run ended."""
    with dashboard.start(script, log=log, env=env) as running:
        running.wait_healthy()
        page = browser.new_page()
        page.goto(running.url)
        page.get_by_role("heading").first.wait_for(timeout=TIMEOUT_MS)
        seconds = run_ended(page) - running.started
        page.close()
    return seconds


def held_out_denials(count: int) -> list[tuple[int, dict]]:
    from lendsafe.decide.scoring import Scorer
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


def browser_decisions(browser, rows: list[tuple[int, dict]], env: dict, log: Path) -> dict:
    """Decisions in one browser session opened as soon as the server answers: the first after start (Decide
    to result, and since the server started; whether its stages were shown), then the warm ones."""
    with dashboard.start(log=log, env=env) as running:
        running.wait_healthy()
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{running.url.rstrip('/')}/{EXPLORER_PATH}")
        page.get_by_role("heading", name="Decision explorer").wait_for(timeout=TIMEOUT_MS)
        page.get_by_text("Held-out application", exact=True).click()
        page.get_by_role("button", name="Decide this application").wait_for(timeout=TIMEOUT_MS)
        dashboard.wait_idle(page, TIMEOUT_MS)
        page.get_by_role("combobox", name="Decision").click()          # only denials in the picker
        page.get_by_role("option", name="deny", exact=True).click()
        dashboard.wait_idle(page, TIMEOUT_MS)
        times = [decide_in_browser(page, rows[0][0])]
        since_start = time.perf_counter() - running.started
        stages_shown = page.get_by_text(re.compile(r"^Draft decided")).count() > 0
        times += [decide_in_browser(page, row) for row, _ in rows[1:]]
        page.close()
    return {"first": times[0][1], "first_since_start": since_start, "stages_shown": stages_shown, "warm": times[1:]}


def library_decisions(rows: list[tuple[int, dict]], home: Path, use_llm: str | None, audit_url: str) -> tuple[list[float], list[str]]:
    """``Issuer.issue`` alone on the same kind of applications (first call untimed: loading)."""
    from lendsafe.audit.store import AuditStore
    from lendsafe.issue.issuer import Issuer
    from lendsafe.explain.pipeline import Pipeline

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


def first_pages(browser, folder: Path, env: dict) -> dict[str, method.Timing]:
    """The app and a bare page, started in turns (each call a new server), round after round."""
    hello = folder / "hello.py"
    hello.write_text(HELLO)
    count = iter(range(1000))
    contenders = {"app": lambda: first_page_seconds(browser, ROOT / "app.py", env, folder / f"app{next(count)}.log"),
                  "bare_streamlit": lambda: first_page_seconds(browser, hello, env, folder / f"hello{next(count)}.log")}
    timer = StartTimer(contenders)
    return method.interleave(timer.contenders, calls=1, min_rounds=STARTS, max_rounds=STARTS + 2, warmup=0,
                             clock=timer.clock)


class StartTimer:
    """Times each contender by the seconds it reports itself (a server's start, not the browser's set-up)."""

    def __init__(self, contenders: dict):
        self.now = 0.0
        self.contenders = {name: self._wrap(function) for name, function in contenders.items()}

    def _wrap(self, function):
        def timed():
            self.now += function()
        return timed

    def clock(self) -> float:
        return self.now


def decisions(browser, folder: Path, denials: list) -> dict:
    """Decision with explanation per writer (first after start, warm p50), beside the library call."""
    out = {}
    for index, (name, use_llm) in enumerate(WRITERS.items()):
        home = fresh_home(folder / f"decide-{name}")
        audit = f"sqlite:///{folder / f'decide-{name}.db'}"
        chunk = denials[index * 2 * (DECISIONS + 1):(index + 1) * 2 * (DECISIONS + 1)]
        browser_rows, library_rows = chunk[:DECISIONS + 1], chunk[DECISIONS + 1:]
        env = {"LENDSAFE_HOME": str(home), "LENDSAFE_DATABASE_URL": audit, "LENDSAFE_USE_LLM": use_llm}
        try:
            timed = browser_decisions(browser, browser_rows, env, folder / f"decide-{name}.log")
        except Exception as exc:     # the page no longer offers what the measurement clicks
            out[name] = {"measured": False, "why": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            continue
        alone, writers = library_decisions(library_rows, home, use_llm, audit)
        shown = [t[1] for t in timed["warm"]]
        out[name] = {"measured": True, "browser_s": [round(s, 2) for s in shown], "browser_p50_s": p50(shown),
                     "first_decision_s": round(timed["first"], 2),
                     "first_decision_since_start_s": round(timed["first_since_start"], 2),
                     "first_decision_stages_shown": timed["stages_shown"],
                     "result_heading_p50_s": p50([t[0] for t in timed["warm"]]), "library_s": [round(s, 2) for s in alone],
                     "library_p50_s": p50(alone), "ratio": ratio(p50(shown), p50(alone)), "writers": sorted(set(writers))}
    return out


def readme_rows(first: dict, decided: dict) -> list[dict[str, str]]:
    rows = [{"what": "dashboard: first page drawn after `streamlit run app.py` (p50)",
             "measured": f"{first['app']['p50_ms'] / 1000:.2f} s",
             "baseline": f"bare Streamlit page {first['bare_streamlit']['p50_ms'] / 1000:.2f} s"}]
    for name, figure in decided.items():
        measured = (f"{figure['browser_p50_s']:.2f} s p50 ({', '.join(figure['writers'])})" if figure["measured"]
                    else f"not measured: {figure['why']}")
        baseline = f"the library call alone {figure['library_p50_s']:.2f} s" if figure["measured"] else ""
        rows.append({"what": f"dashboard: decision with explanation, warm ({name} writer)", "measured": measured,
                     "baseline": baseline})
        if figure["measured"]:
            rows.append({"what": f"dashboard: first decision after server start, Decide to result ({name} writer)",
                         "measured": f"{figure['first_decision_s']:.2f} s (stages shown: "
                                     f"{'yes' if figure['first_decision_stages_shown'] else 'no'})",
                         "baseline": f"{figure['first_decision_since_start_s']:.2f} s since the server started"})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = method.parser(__doc__.splitlines()[0]).parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"bench_app skipped: needs {CHROMIUM} (Debian chromium; `make system-test` installs it)")
        return 0
    from playwright.sync_api import sync_playwright

    run = method.Run("app", "streamlit", "playwright", "torch")
    denials = held_out_denials(4 * (DECISIONS + 1))
    with tempfile.TemporaryDirectory(prefix="lendsafe-bench-app-") as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        env = {"LENDSAFE_HOME": str(fresh_home(folder / "first")), "LENDSAFE_DATABASE_URL": f"sqlite:///{folder / 'a.db'}"}
        timings = first_pages(browser, folder, env)
        first = method.summaries(timings, baseline="bare_streamlit")
        print(f"first page: app {first['app']['p50_ms'] / 1000:.2f} s, bare page "
              f"{first['bare_streamlit']['p50_ms'] / 1000:.2f} s", flush=True)
        decided = decisions(browser, folder, denials)
        browser.close()
    for name, figure in decided.items():
        print(f"decision ({name} writer): " + (f"browser p50 {figure['browser_p50_s']:.2f} s, library "
                                                f"{figure['library_p50_s']:.2f} s" if figure["measured"] else figure["why"]))
    run.finish({"first_page": first, "decision": decided}, readme_rows(first, decided),
               {f"first page {k}": t.spread() for k, t in timings.items()}, force=args.force,
               targets={"first_page_s": 3.0, "decision_p50_s": 1.5, "first_decision_s": 5.0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
