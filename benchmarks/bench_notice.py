"""Notice rendering speed beside a bare reportlab canvas page, measured in the same run.

Prints p50 render time per notice and notices/s for: a typical denial notice (Latin text, no
explanation), the same with a multi-script creditor (DejaVu + CJK runs, right-to-left reordering),
and the completeness check; writes benchmarks/results/notice.json.
"""
from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import method  # noqa: E402
from lendsafe.decide.decision import Decision, Reason  # noqa: E402
from lendsafe.notice import NoticeSettings, build_notice, check_pdf, render_pdf  # noqa: E402
from lendsafe.notice.text import register_fonts  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    """Notice rendering beside a bare reportlab canvas page, interleaved in rounds (benchmarks/method.py)."""
    args = method.parser(__doc__.splitlines()[0]).parse_args(argv)
    run = method.Run("notice", "reportlab")
    register_fonts()
    decision = sample_decision()
    latin = build_notice(decision, NoticeSettings(), notice_date=dt.date(2026, 1, 5))
    mixed_settings = NoticeSettings(creditor_name="北京信贷 & Co <Lending>",
                                    creditor_address="شارع الملك فهد 12\nΑθήνα 105 57\nМосква")
    mixed = build_notice(decision, mixed_settings, notice_date=dt.date(2026, 1, 5))
    pdf = render_pdf(latin)
    timings = method.interleave({"bare_canvas_page": bare_canvas_page, "notice_latin": lambda: render_pdf(latin),
                                 "notice_multiscript": lambda: render_pdf(mixed),
                                 "check_pdf": lambda: check_pdf(pdf, latin, decision)}, calls=20, warmup=2)
    figures = method.summaries(timings, baseline="bare_canvas_page")
    for name, row in figures.items():
        print(f"{name:20s} p50 {row['p50_ms']:8.3f} ms  x{row['ratio_to_baseline_p50']} bare canvas")
    rows = [{"what": "notice PDF rendering (p50): Latin text / embedded non-Latin fonts",
             "measured": f"{figures['notice_latin']['p50_ms']:.1f} ms / {figures['notice_multiscript']['p50_ms']:.1f} ms",
             "baseline": f"bare reportlab canvas page {figures['bare_canvas_page']['p50_ms']:.2f} ms"}]
    run.finish(figures, rows, {k: t.spread() for k, t in timings.items()}, force=args.force, pdf_bytes=len(pdf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
