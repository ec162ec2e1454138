"""Review queue speed, each figure beside a baseline measured in the same run.

1. Queue page draw: the dashboard's Review page run in-process by Streamlit's AppTest (the page's script
   run: the queue read from the audit chain, the table, the open item; no browser paint) with N pending
   items (default 1,000), beside the Audit page drawn the same way from the same store. Also the
   library's ``queue()`` alone. Target: <= 2 s.
2. Approve and edit round-trips, excluding rendering in the page: ``Reviewer.approve`` (read the item
   through its keys, check, render and check the notice, append under the outcome key) beside
   ``Issuer.issue`` of the same kind of decision without review (render, check, append);
   ``Reviewer.edit`` (read, verify, diff, append under the revision key) beside the verifier alone on
   the same text. Target: <= 300 ms p50.

The pending items are the held example denial under different application ids (the deterministic
writer; every item the same size as a real one). Uses the benchmark method (``benchmarks/method.py``).

    python benchmarks/bench_review.py [--items 1000] [--force]

Writes benchmarks/results/review.json (a noisy run beside a quiet result goes to results/noisy/).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from itertools import count
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import method  # noqa: E402

QUEUE_TARGET_S, ROUND_TRIP_TARGET_MS = 2.0, 300.0
APP = str(ROOT / "app.py")
POOL = 120                      # pending items the approve round-trips consume


def example_denial():
    from lendsafe.config import Settings
    from lendsafe.explain.pipeline import Pipeline

    application = json.loads((ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    return Pipeline(Settings(use_llm=False)).run(application)


def variant(decision, number: int):
    return decision.with_updates(application={**decision.application, "application_id": f"HMDA-BENCH-{number:06d}"})


def hold_many(store, decision, numbers) -> list[int]:
    """Hold one variant per number (the draft verified once: every variant states the same)."""
    from lendsafe.audit.records import ReviewEntry
    from lendsafe.review.actions import hold_entry
    from lendsafe.review.keys import hold_key

    details = hold_entry(decision, ("batch",)).details
    entries = [ReviewEntry("hold", details, variant(decision, n), hold_key(variant(decision, n))) for n in numbers]
    ids = []
    for start in range(0, len(entries), 250):
        ids += [a.record.id for a in store.append(entries[start:start + 250], actor="bench:ann")]
    return ids


def page(path: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=600).run()
    at.switch_page(path).run()
    if at.exception:
        raise RuntimeError(f"{path} failed: {[e.value for e in at.exception]}")
    return at


def queue_figures(folder: Path, decision, items: int) -> tuple[dict, dict]:
    from lendsafe.audit.store import AuditStore
    from lendsafe.review.queue import queue

    url = f"sqlite:///{folder / 'queue.db'}"
    os.environ.update(LENDSAFE_DATABASE_URL=url, LENDSAFE_USE_LLM="0")
    store = AuditStore(url)
    hold_many(store, decision, range(items))
    review, audit = page("lendsafe/ui/review.py"), page("lendsafe/ui/audit.py")
    shown = next(m.value for m in review.markdown if "item(s) match" in m.value)
    timings = method.interleave({"review_page": review.run, "audit_page": audit.run, "queue_load": lambda: queue(store)},
                                calls=2, min_rounds=3, max_rounds=8)
    store.close()
    return timings, {"pending_items": items, "page_says": shown}


def round_trip_figures(folder: Path, decision) -> tuple[dict, dict]:
    from lendsafe.audit.store import AuditStore
    from lendsafe.explain.verify import verify
    from lendsafe.issue.issuer import Issuer
    from lendsafe.review import Reviewer, ReviewPolicy

    store = AuditStore(f"sqlite:///{folder / 'round-trips.db'}")
    reviewer = Reviewer(store, policy=ReviewPolicy())
    pool = iter(hold_many(store, decision, range(10_000, 10_000 + POOL)))
    edited = hold_many(store, decision, range(20_000, 20_010))
    texts = [decision.explanation.replace("weighed most", "counted most", 1),
             decision.explanation.replace("weighed most", "mattered most", 1)]
    issuer, fresh = Issuer(None, audit=store, actor="bench:carl"), count(30_000)
    edits = count()

    def edit() -> None:
        number = next(edits)
        reviewer.edit(edited[number % len(edited)], texts[(number // len(edited)) % 2], actor="bench:ann")

    timings = method.interleave({
        "approve": lambda: reviewer.approve(next(pool), actor="bench:bob"),
        "issue_without_review": lambda: issuer.issue(variant(decision, next(fresh))),
        "edit": edit,
        "verify_alone": lambda: verify(decision, texts[0]),
    }, calls=4, min_rounds=3, max_rounds=8)
    ok = store.verify().ok
    store.close()
    return timings, {"chain_verifies_after": ok}


def readme_rows(figures: dict, items: int) -> list[dict[str, str]]:
    page_ms, audit_ms = figures["review_page"]["p50_ms"], figures["audit_page"]["p50_ms"]
    return [
        {"what": f"Review page draw with {items:,} pending items (AppTest script run, p50; target <= 2 s)",
         "measured": f"{page_ms / 1000:.2f} s (queue read {figures['queue_load']['p50_ms']:.0f} ms)",
         "baseline": f"Audit page, same store {audit_ms / 1000:.2f} s"},
        {"what": "Review approve / edit round-trip (p50; target <= 300 ms)",
         "measured": f"{figures['approve']['p50_ms']:.0f} ms / {figures['edit']['p50_ms']:.0f} ms",
         "baseline": f"issue without review {figures['issue_without_review']['p50_ms']:.0f} ms / verifier alone "
                     f"{figures['verify_alone']['p50_ms']:.0f} ms"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="pending items in the queue (default 1000)")
    args = parser.parse_args(argv)
    run = method.Run("review", "streamlit", "reportlab", "sqlalchemy")
    decision = example_denial()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        queue_timings, queue_extra = queue_figures(Path(tmp), decision, args.items)
        trip_timings, trip_extra = round_trip_figures(Path(tmp), decision)
    timings = {**queue_timings, **trip_timings}
    figures = {**method.summaries(queue_timings, baseline="audit_page"),
               **method.summaries(trip_timings, baseline="issue_without_review")}
    targets = {"queue_page_s": round(figures["review_page"]["p50_ms"] / 1000, 3),
               "queue_page_met": figures["review_page"]["p50_ms"] <= QUEUE_TARGET_S * 1000,
               "approve_p50_ms": figures["approve"]["p50_ms"], "edit_p50_ms": figures["edit"]["p50_ms"],
               "round_trips_met": max(figures["approve"]["p50_ms"], figures["edit"]["p50_ms"]) <= ROUND_TRIP_TARGET_MS}
    for name, row in figures.items():
        print(f"{name:22s} p50 {row['p50_ms']:9.1f} ms  p95 {row['p95_ms']:9.1f} ms  x{row['ratio_to_baseline_p50']}")
    print("targets:", targets)
    run.finish(figures, readme_rows(figures, args.items), {k: t.spread() for k, t in timings.items()},
               force=args.force, targets=targets, **queue_extra, **trip_extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
