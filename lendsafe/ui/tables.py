"""What the dashboard shows of decisions, computed without Streamlit: tables and the words and numbers in them
(the application form: ``fields``; notices and audit records: ``records``).

Every function here takes library objects (``Decision``, ``DatasetSpec``, audit records) and returns
plain data, so the pages stay thin and the shaping is tested on its own.
"""
from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from lendsafe.config import Settings
from lendsafe.decide.specs import DatasetSpec
from lendsafe.decide.decision import Decision
from lendsafe.decide.reasons import ADVERSE_EPSILON

ROLE_PRINCIPAL = "adverse: principal reason"
ROLE_ADVERSE = "adverse: not among the reasons"
ROLE_LOWERED = "lowered risk"
ROLES = (ROLE_PRINCIPAL, ROLE_ADVERSE, ROLE_LOWERED)
CHECK_MARKS = {True: "pass", False: "FAIL"}


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def md_escape(text: Any) -> str:
    """Text shown as-is inside Streamlit markdown (no emphasis, links, LaTeX from ``$``)."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


# ---------------------------------------------------------------------------- held-out applications

def held_out_applications(dataset: str, settings: Settings | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(source row, application) for every test row the risk model recorded as held out."""
    from lendsafe.decide.datasets import load_dataset
    from lendsafe.decide.risk import RiskModel, model_dir

    model = RiskModel.load(model_dir(dataset, settings))
    data = load_dataset(dataset)
    inputs = [f.name for f in data.spec.input_fields]
    frame = data.applications[inputs].astype(object)
    frame = frame.where(frame.notna(), None)
    rows = []
    for row in sorted(int(i) for i in model.test_index_):
        values = frame.iloc[row].to_dict()
        application = {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items()}
        rows.append((row, {**application, "application_id": f"{dataset.upper()}-ROW-{row}"}))
    return rows


def held_out_frame(rows: list[tuple[int, dict[str, Any]]], decisions: list[Decision]) -> pd.DataFrame:
    """One line per held-out application: data row, model decision, risk (percent) and reason codes, then
    its values."""
    lines = []
    for (row, application), decision in zip(rows, decisions):
        codes = [r.code for r in decision.reasons]
        lines.append({"row": row, "decision": decision.decision, "risk": percent(decision.risk),
                      "reasons": ", ".join(codes), "first_reason": codes[0] if codes else "",
                      **{k: v for k, v in application.items() if k != "application_id"}})
    return pd.DataFrame(lines)


def filter_held_out(frame: pd.DataFrame, decision: str | None = None, reason: str | None = None) -> pd.DataFrame:
    """Rows with this decision and this reason among their principal reasons (None = any)."""
    keep = pd.Series(True, index=frame.index)
    if decision:
        keep &= frame["decision"] == decision
    if reason:
        keep &= frame["reasons"].str.split(", ").map(lambda codes: reason in codes)
    return frame[keep]


# ---------------------------------------------------------------------------- words and numbers

def percent(probability: float) -> float:
    """A probability as a percentage rounded to one decimal: the one format of risk everywhere."""
    return round(float(probability) * 100, 1)


def risk_text(probability: float) -> str:
    return f"{float(probability):.1%}"


def points(contribution: float, risk: float) -> float:
    """A log-odds contribution as percentage points of this applicant's risk: the risk minus the risk
    the applicant would have without this factor's push (the other factors unchanged)."""
    risk = min(max(float(risk), 1e-9), 1 - 1e-9)
    without = 1 / (1 + math.exp(-(math.log(risk / (1 - risk)) - float(contribution))))
    return round((risk - without) * 100, 1)


def points_text(value: float) -> str:
    return f"{value:+.1f} pp"


def reason_statements(dataset: str) -> dict[str, str]:
    """Reason code -> the statement an applicant reads, for the dataset's model inputs."""
    from lendsafe.decide.catalog import load_catalog
    from lendsafe.decide.specs import load_spec

    catalog = load_catalog()
    return {f.reason: catalog[f.reason].statement for f in load_spec(dataset).features if f.reason in catalog}


POINTS_HELP = ("Percentage points (pp) of risk: how much higher this applicant's predicted risk is because of "
               "the factor, compared with the reason reference. The model adds log-odds; the log-odds figure "
               "is in the table's last column.")
RELEVANCE_HELP = ("Relevance from 0 to 1: 75% meaning similarity (MiniLM embeddings) and 25% keyword match "
                  "(BM25, scaled to the best passage) with the question asked for this decision. Higher is closer.")

# check name -> (sentence when it passed, sentence when it failed)
CHECK_SENTENCES: dict[str, tuple[str, str]] = {
    "decision_stated": ("The text states the decision the model made.", "The text does not state the model's decision."),
    "reasons_stated": ("Every principal reason is stated.", "A principal reason is missing from the text."),
    "no_other_factors": ("No factor other than the principal reasons is presented as a reason.",
                         "The text presents a factor that is not a principal reason."),
    "reasons_in_order": ("The reasons appear in the model's order of importance.",
                         "The reasons are not in the model's order of importance."),
    "no_repeated_reason": ("Each reason is stated once.", "A reason is stated more than once."),
    "numbers_match": ("Every figure in the text matches the application.", "A figure in the text does not match the application."),
    "meaning_matches_value": ("Every coded value (a rating, a yes/no fact) is described with its own meaning.",
                              "A coded value is described with another value's meaning."),
    "missing_not_fact": ("No missing value is stated as a fact.", "A value the applicant did not give is stated as a fact."),
    "adverse_direction": ("Every reason is described in the direction that hurt the application.",
                          "A reason is described in the wrong direction."),
    "only_decision_content": ("Every sentence is about this decision.", "A sentence is not about this decision."),
    "no_protected_basis": ("No prohibited basis (race, sex, age, marital status, ...) is mentioned.",
                           "A prohibited basis is mentioned."),
    "no_forbidden_phrase": ("No promise or sales phrase ('guaranteed', 'reapply', ...).", "A forbidden phrase is used."),
    "no_counterfactual_or_advice": ("No advice or 'if you had...' statements.", "The text gives advice or a counterfactual."),
    "no_hedging": ("No hedging ('may', 'might') about the reasons.", "The text hedges about the reasons."),
    "no_blame_or_sales": ("No blame and no sales language.", "The text blames the applicant or sells."),
    "no_threshold_or_score": ("Nothing internal (threshold, raw score, model) is disclosed.",
                              "The text discloses the threshold, the raw score or the model."),
    "legal_basis": ("The legal basis cited is the regulation itself, not a sample form.",
                    "A sample form or commentary is cited as the legal basis."),
    "legal_sentences_supported": ("Every legal or rights sentence rests on a retrieved regulation passage.",
                                  "A legal or rights sentence has no retrieved passage behind it."),
    "rights_stated": ("Every right that applies to this decision is stated.", "A right that applies is not stated."),
    "complete_text": ("The text ends with a complete sentence.", "The text is cut off."),
    "length_and_readability": ("Length and sentence length are readable.", "The text is too long or hard to read."),
    "citations_retrieved": ("Every citation in the text was retrieved for this decision.",
                            "The text cites something that was not retrieved."),
}


def check_sentence(name: str, passed: bool) -> str:
    words = CHECK_SENTENCES.get(name)
    if words is None:
        return f"{name.replace('_', ' ').capitalize()}: {'passed' if passed else 'failed'}."
    return words[0 if passed else 1]


# ---------------------------------------------------------------------------- one decision

def contribution_frame(decision: Decision, spec: DatasetSpec) -> pd.DataFrame:
    """Each feature's effect on this applicant's risk against the reference, largest risk-raising first.

    ``effect (pp)`` is percentage points of risk (``points``), ``log-odds`` the model's own figure;
    ``role`` marks features behind a principal reason, other risk-raising features, and those that
    lowered the risk.
    """
    reason_codes = {r.code for r in decision.reasons}
    lines = []
    for name, value in decision.contributions.items():
        feature = spec.feature(name)
        adverse = value > ADVERSE_EPSILON
        role = ROLE_PRINCIPAL if adverse and feature.reason in reason_codes else ROLE_ADVERSE if adverse else ROLE_LOWERED
        shown = decision.application.get(name)
        lines.append({"feature": name, "label": feature.label,
                      "value": feature.display(shown) if name in decision.application else "derived",
                      "effect (pp)": points(value, decision.risk), "role": role, "adverse": adverse,
                      "reason_code": feature.reason or "", "log-odds": round(float(value), 4)})
    frame = pd.DataFrame(lines)
    return frame.sort_values(["log-odds", "feature"], ascending=[False, True]).reset_index(drop=True)


def reasons_frame(decision: Decision) -> pd.DataFrame:
    """The principal reasons in order, with the applicant's value, the effect on risk and the rule behind each."""
    columns = ["rank", "reason", "your value", "effect (pp)", "rule", "code", "log-odds"]
    return pd.DataFrame([{"rank": i, "reason": r.statement, "your value": r.display_value,
                          "effect (pp)": points(r.contribution, decision.risk), "rule": r.citation, "code": r.code,
                          "log-odds": round(r.contribution, 4)}
                         for i, r in enumerate(decision.reasons, start=1)], columns=columns)


def dropped_frame(decision: Decision) -> pd.DataFrame:
    """Factors that raised the risk but are not stated as reasons, with why (favourable value, beyond four)."""
    columns = ["factor", "your value", "effect (pp)", "why not a reason", "code"]
    return pd.DataFrame([{"factor": d.get("feature") or d["code"], "your value": d.get("display_value", ""),
                          "effect (pp)": points(float(d["contribution"]), decision.risk),
                          "why not a reason": d["why"], "code": d["code"]} for d in decision.dropped], columns=columns)


def checklist_frame(verification: dict[str, Any] | None) -> pd.DataFrame:
    """The verifier's checks as rows: what was checked (a sentence), the result, the detail."""
    checks = (verification or {}).get("checks") or {}
    return pd.DataFrame([{"check": check_sentence(name, bool(c["passed"])), "result": CHECK_MARKS[bool(c["passed"])],
                          "detail": c.get("detail", "")} for name, c in checks.items()],
                        columns=["check", "result", "detail"])


def attempts_frame(verification: dict[str, Any] | None) -> pd.DataFrame:
    """Each language-model attempt: strict retry or not, passed, failed checks, latency, text."""
    attempts = (verification or {}).get("attempts") or []
    return pd.DataFrame([{"attempt": i, "stricter prompt": a.get("strict"), "passed": a.get("passed"),
                          "failed checks": ", ".join(a.get("failures") or []), "latency ms": a.get("latency_ms"),
                          "from cache": a.get("cached"), "text": a.get("text")}
                         for i, a in enumerate(attempts, start=1)])


def citations_frame(decision: Decision) -> pd.DataFrame:
    """Retrieved passages, most relevant first."""
    ordered = sorted(decision.citations, key=lambda c: (-c.score, c.citation))
    return pd.DataFrame([{"relevance": round(c.score, 2), "citation": c.citation, "title": c.title}
                         for c in ordered], columns=["relevance", "citation", "title"])


def reference_changes(first: Decision, second: Decision) -> pd.DataFrame:
    """How the principal reasons differ between two references for the same application."""
    ranks = [{r.code: (i, r) for i, r in enumerate(d.reasons, start=1)} for d in (first, second)]
    codes = sorted(set(ranks[0]) | set(ranks[1]), key=lambda c: (ranks[1].get(c, (9, None))[0],
                                                                  ranks[0].get(c, (9, None))[0], c))
    lines = []
    for code in codes:
        a, b = ranks[0].get(code), ranks[1].get(code)
        lines.append({"reason": (b or a)[1].statement, "change": _rank_change(a[0] if a else None, b[0] if b else None),
                      f"rank ({first.reference})": a[0] if a else None,
                      f"rank ({second.reference})": b[0] if b else None,
                      f"effect ({first.reference}, pp)": points(a[1].contribution, first.risk) if a else None,
                      f"effect ({second.reference}, pp)": points(b[1].contribution, second.risk) if b else None,
                      "code": code})
    return pd.DataFrame(lines)


def _rank_change(before: int | None, after: int | None) -> str:
    if before is None:
        return "new reason"
    if after is None:
        return "no longer a reason"
    if before == after:
        return "same rank"
    return f"moved {'up' if after < before else 'down'} {abs(before - after)}"
