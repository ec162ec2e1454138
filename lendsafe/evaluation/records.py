"""Per-decision records of the evaluation: what each writer's first attempt and final text say (verification,
factors, figures, legal sentences), latency, and the notice check of a denial."""
from __future__ import annotations

import datetime as dt
from typing import Any

from lendsafe.explain.grounding import grounding, prose
from lendsafe.explain.verify import NUMBER_RE, allowed_numbers, matches_figure, mentioned_factors, strip_citations, verify
from lendsafe.issue.issuer import render_notice

NOTICE_DATE = dt.date(2026, 1, 15)                               # fixed, so notices are reproducible


def text_facts(decision: Any, text: str | None) -> dict[str, Any]:
    """Verification of one text plus the counts behind factor precision/recall and number accuracy."""
    text = text or ""
    report = verify(decision, text)
    written = [n.rstrip(".,") for n in NUMBER_RE.findall(strip_citations(prose(decision, text)))]
    values = allowed_numbers(decision)
    legal = grounding(decision, text)
    return {"text": text, "passed": report.passed, "failures": report.failures,
            "factors": sorted({code for _, code in mentioned_factors(text)}),
            "numbers": len(written), "numbers_correct": sum(matches_figure(n, values) for n in written),
            "legal_sentences": len(legal), "supported_sentences": sum(bool(r["passage_id"]) for r in legal)}


def decision_record(example: dict[str, Any], writer: str, decision: Any, wall_ms: float) -> dict[str, Any]:
    attempts = (decision.verification or {}).get("attempts") or []
    first_text = attempts[0]["text"] if attempts else decision.explanation
    final = text_facts(decision, decision.explanation)
    return {"kind": "decision", "writer": writer, **_identity(example),
            "first": text_facts(decision, first_text) if attempts else final, "final": final,
            "final_writer": decision.writer, "attempts": len(attempts),
            "passed_on_retry": len(attempts) > 1 and bool(attempts[-1]["passed"]),
            "fell_back": bool(attempts) and decision.writer == "template",
            "latency_ms": decision.latency_ms, "wall_ms": round(wall_ms, 1),
            "generation_ms": [a["latency_ms"] for a in attempts], "error": None}


def failed_record(example: dict[str, Any], writer: str, error: str, wall_ms: float) -> dict[str, Any]:
    """A decision for which nothing could be issued (the pipeline refused its final text)."""
    empty = {"text": "", "passed": False, "failures": ["not_issued"], "factors": [], "numbers": 0, "numbers_correct": 0,
             "legal_sentences": 0, "supported_sentences": 0}
    return {"kind": "decision", "writer": writer, **_identity(example), "first": empty, "final": empty,
            "final_writer": None, "attempts": 0, "passed_on_retry": False, "fell_back": False,
            "latency_ms": None, "wall_ms": round(wall_ms, 1), "generation_ms": [], "error": error}


def _identity(example: dict[str, Any]) -> dict[str, Any]:
    return {"id": example["id"], "dataset": example["dataset"], "decision": example["decision"],
            "reference": example["reference"], "reason_codes": list(example["reason_codes"])}


def notice_check(decision: Any) -> dict[str, Any]:
    """Render the denial's notice PDF and check its completeness over the PDF's own text."""
    _, _, check = render_notice(decision, notice_date=NOTICE_DATE)
    return {"passed": check.passed, "failures": sorted(check.failures())}
