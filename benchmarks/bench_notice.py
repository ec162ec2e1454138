"""Notice rendering speed beside a bare reportlab canvas page, measured in the same run.

Prints p50 render time per notice and notices/s for: a typical denial notice (Latin text, no
explanation), the same with a multi-script creditor (DejaVu + CJK runs, right-to-left reordering),
and the completeness check; writes benchmarks/results/notice.json.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lendsafe.decision import Decision, Reason  # noqa: E402
from lendsafe.notice import NoticeSettings, build_notice, check_pdf, register_fonts, render_pdf  # noqa: E402

REPEATS = int(os.environ.get("BENCH_NOTICE_REPEATS", "200"))
RESULTS = ROOT / "benchmarks" / "results" / "notice.json"
REASONS = (("DEBT_TO_INCOME", "Excessive obligations in relation to income", "debt_to_income"),
           ("CONSUMER_CREDIT_HISTORY", "Delinquent past or present credit obligations with others",
            "consumer_credit_history"),
           ("LOAN_TO_VALUE", "Value of collateral not sufficient for the amount of credit requested", "loan_to_value"),
           ("PUBLIC_RECORD", "Public record of bankruptcy, judgment, lien or collection action",
            "public_bad_credit_record"))


def sample_decision() -> Decision:
    reasons = tuple(Reason(code, text, feature, 1, "1", 0.4 - 0.05 * i, "12 CFR 1002, App. C, Form C-1")
                    for i, (code, text, feature) in enumerate(REASONS))
    return Decision(application={"debt_to_income": 0.45}, dataset="hmda", decision="deny", risk=0.81,
                    threshold=0.5, reference="population", reasons=reasons, contributions={},
                    model={"dataset": "hmda", "sha256": "0" * 64, "threshold_version": "bench"})


def bare_canvas_page() -> bytes:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, invariant=1)
    page.drawString(72, 720, "Notice of Action Taken on Your Credit Application")
    page.showPage()
    page.save()
    return buffer.getvalue()


def timings(fn, repeats: int = REPEATS) -> dict[str, float]:
    """Median wall time and median CPU time of this process (the one-core cost on a shared machine)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    p50, cpu_p50 = statistics.median(wall), statistics.median(cpu)
    return {"p50_ms": round(p50 * 1000, 3), "per_second": round(1 / p50, 1),
            "cpu_p50_ms": round(cpu_p50 * 1000, 3), "cpu_per_second": round(1 / max(cpu_p50, 1e-9), 1),
            "repeats": repeats}


def main() -> dict:
    register_fonts()
    decision = sample_decision()
    latin = build_notice(decision, NoticeSettings(), notice_date=dt.date(2026, 1, 5))
    mixed_settings = NoticeSettings(creditor_name="北京信贷 & Co <Lending>",
                                    creditor_address="شارع الملك فهد 12\nΑθήνα 105 57\nМосква")
    mixed = build_notice(decision, mixed_settings, notice_date=dt.date(2026, 1, 5))
    pdf = render_pdf(latin)
    figures = {
        "bare_canvas_page": timings(bare_canvas_page),
        "notice_latin": timings(lambda: render_pdf(latin)),
        "notice_multiscript": timings(lambda: render_pdf(mixed)),
        "check_pdf": timings(lambda: check_pdf(pdf, decision), repeats=max(REPEATS // 10, 5)),
    }
    base = figures["bare_canvas_page"]["p50_ms"]
    for name, row in figures.items():
        row["ratio_to_bare_canvas"] = round(row["p50_ms"] / base, 1)
        print(f"{name:20s} p50 {row['p50_ms']:8.3f} ms {row['per_second']:8.1f}/s | cpu p50 "
              f"{row['cpu_p50_ms']:8.3f} ms {row['cpu_per_second']:8.1f}/s | x{row['ratio_to_bare_canvas']} bare canvas")
    result = {"figures": figures, "pdf_bytes": len(pdf), "python": platform.python_version(),
              "machine": platform.machine(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
