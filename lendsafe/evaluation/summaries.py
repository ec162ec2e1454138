"""Summaries of the per-decision records: pass rates, faithfulness, meaning errors, grounding, latency and
text similarity for each writer; the notices; retrieval of the passages decisions need; the verifier on
its labelled set."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.decide.decision import Decision
from lendsafe.decide.scoring import Scorer
from lendsafe.evaluation.text import METRIC_NAMES, mean_scores, pair_scores, unrelated_pairs
from lendsafe.evaluation.config import WRITERS
from lendsafe.explain.grounding import applicable_rights, retrieve
from lendsafe.explain.verify import verify


def rate(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def faithfulness(records: list[dict[str, Any]], which: str) -> dict[str, Any]:
    """Factor precision/recall, number accuracy, protected-basis and forbidden-phrase rates, pass rate."""
    facts = [(r[which], set(r["reason_codes"])) for r in records]
    stated = sum(len(f["factors"]) for f, _ in facts)
    right = sum(len(set(f["factors"]) & expected) for f, expected in facts)
    return {
        "pass_rate": rate([f["passed"] for f, _ in facts]),
        "factor_precision": ratio(right, stated), "factor_recall": ratio(right, sum(len(e) for _, e in facts)),
        "number_accuracy": ratio(sum(f["numbers_correct"] for f, _ in facts), sum(f["numbers"] for f, _ in facts)),
        "protected_basis_rate": rate(["no_protected_basis" in f["failures"] for f, _ in facts]),
        "forbidden_phrase_rate": rate(["no_forbidden_phrase" in f["failures"] for f, _ in facts]),
        "failures_by_check": dict(sorted(Counter(c for f, _ in facts for c in f["failures"]).items())),
    }


# The untrue statements an explanation can make, each caught by one verifier check.
UNTRUE_STATEMENTS = {
    "wrong_level_meaning_or_false_fact": "meaning_matches_value",
    "favourable_direction": "adverse_direction",
    "factor_not_a_reason": "no_other_factors",
    "missing_value_as_fact": "missing_not_fact",
    "wrong_figure": "numbers_match",
    "truncated": "complete_text",
    "wrong_legal_basis": "legal_basis",
    "unsupported_legal_sentence": "legal_sentences_supported",
    "unsupported_content": "only_decision_content",
}


def meaning_errors(records: list[dict[str, Any]], which: str) -> dict[str, Any]:
    """Texts that state something untrue of the applicant, by kind (the verifier's truth checks)."""
    by_kind = {kind: sum(check in r[which]["failures"] for r in records) for kind, check in UNTRUE_STATEMENTS.items()}
    untrue = sum(any(check in r[which]["failures"] for check in UNTRUE_STATEMENTS.values()) for r in records)
    return {"texts": len(records), "untrue_texts": untrue, "rate": ratio(untrue, len(records)), "by_kind": by_kind}


def grounding_rate(records: list[dict[str, Any]], which: str) -> dict[str, Any]:
    """Legal and rights sentences resting on a retrieved passage that applies, and texts stating every right."""
    legal = sum(r[which].get("legal_sentences", 0) for r in records)
    supported = sum(r[which].get("supported_sentences", 0) for r in records)
    return {"legal_sentences": legal, "supported": supported, "supported_rate": ratio(supported, legal),
            "texts_missing_a_right": sum("rights_stated" in r[which]["failures"] for r in records)}


def needed_passages_recall(examples: list[dict[str, Any]], knowledge: Any, settings: Settings) -> dict[str, Any]:
    """Of the passages each held-out denial needs (a rule passage for every reason, the passage of every
    right that applies), the share that retrieval returned for it."""
    tagged: dict[str, set[str]] = {}
    for passage in knowledge.passages:
        for code in passage.reason_codes:
            tagged.setdefault(code, set()).add(passage.id)
    needed = found = 0
    misses: Counter = Counter()
    for example in examples:
        decision = Scorer.load(example["dataset"], settings).score(example["application"], example["reference"])
        retrieved = {c.passage_id for c in retrieve(knowledge, decision)}
        wants = [(f"rule:{r.code}", tagged.get(r.code, set())) for r in decision.reasons]
        wants += [(f"right:{right.key}", {right.passage_id}) for right in applicable_rights(decision)]
        for name, ids in wants:
            needed += 1
            found += bool(ids & retrieved)
            misses[name] += not (ids & retrieved)
    return {"decisions": len(examples), "needed": needed, "retrieved": found, "recall": ratio(found, needed),
            "misses": {k: v for k, v in sorted(misses.items()) if v}}


def verifier_labelled_set(path: Path | None = None) -> dict[str, Any]:
    """Precision and recall of the verifier on its labelled set (known-bad texts must fail, correct
    paraphrases must pass); a bad text counts as caught only when the check named for it fails."""
    cases = [json.loads(line) for line in (path or PROJECT_ROOT / "tests" / "verifier_cases.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    flagged = {c["id"]: verify(Decision.from_dict(c["decision"]), c["text"]) for c in cases}
    bad = [c for c in cases if c["label"] == "bad"]
    caught = [c for c in bad if c["check"] in flagged[c["id"]].failures]
    alarms = [c for c in cases if c["label"] == "good" and not flagged[c["id"]].passed]
    rejected = len([c for c in bad if not flagged[c["id"]].passed]) + len(alarms)
    return {"bad": len(bad), "good": len(cases) - len(bad), "caught": len(caught), "false_alarms": len(alarms),
            "recall": ratio(len(caught), len(bad)), "precision": ratio(rejected - len(alarms), rejected),
            "missed": [c["id"] for c in bad if c not in caught], "false_alarm_ids": [c["id"] for c in alarms],
            "kinds": dict(sorted(Counter(c["kind"] for c in bad).items()))}


def percentiles(values: list[float]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0, "p50": None, "p95": None, "mean": None}
    return {"n": len(values), "p50": round(float(np.percentile(values, 50)), 1),
            "p95": round(float(np.percentile(values, 95)), 1), "mean": round(float(np.mean(values)), 1)}


def pass_rates(records: list[dict[str, Any]]) -> dict[str, Any]:
    """First-pass, retry and final pass rates, how often the composer took over, per group too."""
    groups = sorted({f"{r['dataset']}/{r['decision']}" for r in records})
    return {
        "decisions": len(records),
        "first_pass_rate": rate([r["first"]["passed"] for r in records]),
        "passed_on_retry_rate": rate([r["passed_on_retry"] for r in records]),
        "fallback_rate": rate([r["fell_back"] for r in records]),
        "final_pass_rate": rate([r["final"]["passed"] for r in records]),
        "not_issued": sum(r["error"] is not None for r in records),
        "first_pass_rate_by_group": {g: rate([r["first"]["passed"] for r in records
                                              if f"{r['dataset']}/{r['decision']}" == g]) for g in groups},
    }


def writer_name(writer: str) -> str:
    """The ``Decision.writer`` value a writer's own texts carry (the composer's fallback says 'template')."""
    return "template" if writer == "template" else "lora"


def summarize_writer(writer: str, records: list[dict[str, Any]], batch1: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": WRITERS[writer].label, **pass_rates(records),
        "faithfulness": {"first_attempt": faithfulness(records, "first"), "final": faithfulness(records, "final")},
        "meaning_errors": {"first_attempt": meaning_errors(records, "first"), "final": meaning_errors(records, "final")},
        "writer_share": rate([r["final_writer"] == writer_name(writer) for r in records]),
        "grounding": {"first_attempt": grounding_rate(records, "first"), "final": grounding_rate(records, "final")},
        "latency_ms": {**percentiles([r["latency_ms"] for r in records]),
                       "definition": "wall time per decision when deciding chunks with run_many (batched "
                                     "generation), amortized over the chunk, retries and fallback included"},
        "batch1_latency_ms": {**percentiles([r["latency_ms"] for r in batch1]),
                              "definition": "wall time of single decisions (Pipeline.run, batch of one)"},
        "wall_seconds": round(sum(r["wall_ms"] for r in records + batch1) / 1000, 1),
    }


def text_similarity(by_writer: dict[str, list[dict[str, Any]]], references: dict[str, str],
                    seed: int) -> dict[str, dict[str, Any]]:
    """ROUGE and BERTScore of each writer's first attempt and final text against the references, and
    of its first attempts against unrelated references (the floor); one BERTScore pass for all pairs."""
    jobs: list[tuple[str, str, str, str]] = []          # (writer, kind, candidate, reference)
    for writer, records in by_writer.items():
        refs = [references[r["id"]] for r in records]
        jobs += [(writer, "first_attempt", r["first"]["text"], ref) for r, ref in zip(records, refs)]
        jobs += [(writer, "final", r["final"]["text"], ref) for r, ref in zip(records, refs)]
        pairs = unrelated_pairs([f"{r['dataset']}/{r['decision']}" for r in records], seed)
        jobs += [(writer, "unrelated_floor", records[i]["first"]["text"], refs[j]) for i, j in pairs]
    scores = pair_scores([j[2] for j in jobs], [j[3] for j in jobs]) if jobs else {}
    out: dict[str, dict[str, Any]] = {}
    for writer in by_writer:
        for kind in ("first_attempt", "final", "unrelated_floor"):
            rows = [i for i, job in enumerate(jobs) if job[0] == writer and job[1] == kind]
            out.setdefault(writer, {})[kind] = _means({name: [v[i] for i in rows] for name, v in scores.items()})
    return out


def _means(scores: dict[str, list[float]]) -> dict[str, Any]:
    return mean_scores(scores) if scores else {**{m: None for m in METRIC_NAMES}, "pairs": 0}


def notices_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    checked = [r for r in records if "notice" in r]
    return {"notices": len(checked), "completeness_pass_rate": rate([r["notice"]["passed"] for r in checked]),
            "failures_by_check": dict(sorted(Counter(c for r in checked for c in r["notice"]["failures"]).items())),
            "writer": checked[0]["writer"] if checked else None}
