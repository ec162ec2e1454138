"""What the dashboard shows, computed without Streamlit: tables, form rows, page images.

Every function here takes library objects (``Decision``, ``DatasetSpec``, audit records) and returns
plain data, so the pages stay thin and the shaping is tested on its own.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.datasets import DatasetSpec, FeatureSpec
from lendsafe.decision import Decision
from lendsafe.errors import ArtifactNotFoundError
from lendsafe.reasons import ADVERSE_EPSILON

EXAMPLES_DIR = PROJECT_ROOT / "data" / "examples"
PREVIEW_DPI = 80
ROLE_PRINCIPAL = "adverse: principal reason"
ROLE_ADVERSE = "adverse: not among the reasons"
ROLE_LOWERED = "lowered risk"
ROLES = (ROLE_PRINCIPAL, ROLE_ADVERSE, ROLE_LOWERED)
CHECK_MARKS = {True: "pass", False: "FAIL"}


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def md_escape(text: Any) -> str:
    """Text shown as-is inside Streamlit markdown (no emphasis, links, LaTeX from ``$``)."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


# ---------------------------------------------------------------------------- the application form

@dataclass(frozen=True)
class ExtraField:
    """A form field outside the model inputs: printed on the notice, never scored."""

    name: str            # column name as read by ``lendsafe.application.row_to_application``
    label: str
    help: str
    multiline: bool = False


EXTRA_FIELDS = (
    ExtraField("applicant_name", "Applicant name", "printed on the notice"),
    ExtraField("applicant_address", "Applicant address", "one line per address line", multiline=True),
    ExtraField("application_id", "Application id", "your reference for this application"),
    ExtraField("application_date", "Application date", "YYYY-MM-DD"),
    ExtraField("loan_amount", "Loan amount", "amount of credit requested"),
    ExtraField("product", "Product", "e.g. 30-year fixed mortgage"),
)


def choices(feature: FeatureSpec) -> list[str]:
    """Options of a yes/no or category field; an empty choice when the field is optional."""
    options = ["yes", "no"] if feature.type == "bool" else list(feature.categories)
    return ([""] if feature.optional else []) + options


def expected_text(feature: FeatureSpec) -> str:
    """The placeholder of a typed field, e.g. 'a number between 0 and 3'."""
    word = {"float": "a number", "int": "a whole number"}.get(feature.type, "")
    if feature.min is not None and feature.max is not None:
        word += f" between {feature.min:g} and {feature.max:g}"
    return word + (" (optional)" if feature.optional else "")


def cell_text(feature: FeatureSpec | None, value: Any) -> str:
    """An application value as the text a form cell holds (the inverse of CSV reading)."""
    if value is None:
        return ""
    if isinstance(value, bool) or (feature is not None and feature.type == "bool"):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def form_values(spec: DatasetSpec, application: dict[str, Any]) -> dict[str, str]:
    """Every form cell (model inputs and extra fields) filled from an application dict."""
    values = {f.name: cell_text(f, application.get(f.name)) for f in spec.input_fields}
    applicant = application.get("applicant") or {}
    for extra in EXTRA_FIELDS:
        if extra.name.startswith("applicant_"):
            values[extra.name] = str(applicant.get(extra.name.removeprefix("applicant_"), "") or "")
        else:
            values[extra.name] = cell_text(None, application.get(extra.name))
    return values


def problems_by_field(problems: Iterable[str], field_names: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The library's per-field messages, keyed by the form field they name (``applicant.name`` ->
    ``applicant_name``); messages naming no form field are returned apart."""
    known = set(field_names)
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        name = problem.split(" ", 1)[0].replace(".", "_")
        if name in known:
            by_field.setdefault(name, []).append(problem)
        else:
            general.append(problem)
    return by_field, general


def example_application(dataset: str) -> dict[str, Any]:
    """The dataset's example denial from ``data/examples`` (first example of the dataset otherwise)."""
    candidates = sorted(EXAMPLES_DIR.glob(f"{dataset}_*.json"), key=lambda p: ("denial" not in p.stem, p.name))
    if not candidates:
        return {}
    return json.loads(candidates[0].read_text(encoding="utf-8"))


def sample_csv(spec: DatasetSpec) -> str:
    """A batch CSV with the dataset's columns and its example applications, to start from."""
    columns = [f.name for f in spec.input_fields] + [e.name for e in EXTRA_FIELDS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for path in sorted(EXAMPLES_DIR.glob(f"{spec.name}_*.json")):
        writer.writerow(form_values(spec, json.loads(path.read_text(encoding="utf-8"))))
    return buffer.getvalue()


# ---------------------------------------------------------------------------- held-out applications

def held_out_applications(dataset: str, settings: Settings | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(source row, application) for every test row the risk model recorded as held out."""
    from lendsafe.datasets import load_dataset
    from lendsafe.risk import RiskModel, model_dir

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
    """One line per held-out application: model decision, risk and reason codes, then its values."""
    lines = []
    for (row, application), decision in zip(rows, decisions):
        codes = [r.code for r in decision.reasons]
        lines.append({"row": row, "decision": decision.decision, "risk": round(decision.risk, 4),
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


# ---------------------------------------------------------------------------- one decision

def contribution_frame(decision: Decision, spec: DatasetSpec) -> pd.DataFrame:
    """Signed contribution of each feature against the reference, largest risk-raising first.

    ``role`` marks the adverse ones: features behind a principal reason, other risk-raising
    features, and those that lowered the risk.
    """
    reason_codes = {r.code for r in decision.reasons}
    lines = []
    for name, value in decision.contributions.items():
        feature = spec.feature(name)
        adverse = value > ADVERSE_EPSILON
        role = ROLE_PRINCIPAL if adverse and feature.reason in reason_codes else ROLE_ADVERSE if adverse else ROLE_LOWERED
        shown = decision.application.get(name)
        lines.append({"feature": name, "label": feature.label, "contribution": round(float(value), 4),
                      "role": role, "adverse": adverse, "reason_code": feature.reason or "",
                      "value": feature.display(shown) if name in decision.application else "derived"})
    frame = pd.DataFrame(lines)
    return frame.sort_values(["contribution", "feature"], ascending=[False, True]).reset_index(drop=True)


def reasons_frame(decision: Decision) -> pd.DataFrame:
    """The principal reasons in order, with the applicant's value and the rule behind each."""
    return pd.DataFrame([{"rank": i, "code": r.code, "statement": r.statement, "your value": r.display_value,
                          "contribution": round(r.contribution, 4), "citation": r.citation}
                         for i, r in enumerate(decision.reasons, start=1)],
                        columns=["rank", "code", "statement", "your value", "contribution", "citation"])


def dropped_frame(decision: Decision) -> pd.DataFrame:
    """Factors that raised the risk but are not stated as reasons, with why (favourable value, beyond four)."""
    return pd.DataFrame([{"code": d["code"], "feature": d.get("feature") or "", "your value": d.get("display_value", ""),
                          "contribution": round(float(d["contribution"]), 4), "why not a reason": d["why"]}
                         for d in decision.dropped],
                        columns=["code", "feature", "your value", "contribution", "why not a reason"])


def checklist_frame(verification: dict[str, Any] | None) -> pd.DataFrame:
    """The verifier's checks as rows: check, result, detail."""
    checks = (verification or {}).get("checks") or {}
    return pd.DataFrame([{"check": name.replace("_", " "), "result": CHECK_MARKS[bool(c["passed"])],
                          "detail": c.get("detail", "")} for name, c in checks.items()],
                        columns=["check", "result", "detail"])


def attempts_frame(verification: dict[str, Any] | None) -> pd.DataFrame:
    """Each language-model attempt: strict retry or not, passed, failed checks, latency, text."""
    attempts = (verification or {}).get("attempts") or []
    return pd.DataFrame([{"attempt": i, "stricter prompt": a.get("strict"), "passed": a.get("passed"),
                          "failed checks": ", ".join(a.get("failures") or []), "latency ms": a.get("latency_ms"),
                          "from cache": a.get("cached"), "text": a.get("text")}
                         for i, a in enumerate(attempts, start=1)])


def reference_changes(first: Decision, second: Decision) -> pd.DataFrame:
    """How the principal reasons differ between two references for the same application."""
    ranks = [{r.code: (i, r) for i, r in enumerate(d.reasons, start=1)} for d in (first, second)]
    codes = sorted(set(ranks[0]) | set(ranks[1]), key=lambda c: (ranks[1].get(c, (9, None))[0],
                                                                  ranks[0].get(c, (9, None))[0], c))
    lines = []
    for code in codes:
        a, b = ranks[0].get(code), ranks[1].get(code)
        lines.append({"code": code, "statement": (b or a)[1].statement,
                      f"rank ({first.reference})": a[0] if a else None,
                      f"rank ({second.reference})": b[0] if b else None,
                      f"contribution ({first.reference})": round(a[1].contribution, 4) if a else None,
                      f"contribution ({second.reference})": round(b[1].contribution, 4) if b else None,
                      "change": _rank_change(a[0] if a else None, b[0] if b else None)})
    return pd.DataFrame(lines)


def _rank_change(before: int | None, after: int | None) -> str:
    if before is None:
        return "new reason"
    if after is None:
        return "no longer a reason"
    if before == after:
        return "same rank"
    return f"moved {'up' if after < before else 'down'} {abs(before - after)}"


# ---------------------------------------------------------------------------- notices and records

def pdf_page_images(pdf: bytes, dpi: int = PREVIEW_DPI) -> list[bytes]:
    """Each page of a PDF as PNG bytes, rendered by poppler's ``pdftoppm``."""
    if not shutil.which("pdftoppm"):
        raise ArtifactNotFoundError("pdftoppm not found: install Debian's poppler-utils (make system-run)")
    with tempfile.TemporaryDirectory(prefix="lendsafe-preview-") as folder:
        source = Path(folder) / "notice.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(source), str(Path(folder) / "page")],
                       check=True, capture_output=True, timeout=60)
        pages = sorted(Path(folder).glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        return [page.read_bytes() for page in pages]


def notice_check_frame(check: Any) -> pd.DataFrame:
    """The notice completeness check (``lendsafe.notice.check_pdf``) as rows."""
    results = check.to_dict().get("checks", {}) if check is not None else {}
    return pd.DataFrame([{"check": name.replace("_", " "), "result": CHECK_MARKS[bool(r["passed"])],
                          "detail": r.get("detail", "")} for name, r in results.items()],
                        columns=["check", "result", "detail"])


RECORD_COLUMNS = ("id", "created_at", "dataset", "decision", "first_reason", "writer", "actor", "notice_sha256")


def records_frame(records: Iterable[Any]) -> pd.DataFrame:
    """Audit records as rows of their indexed columns (the notice hash shortened)."""
    lines = [{**{name: getattr(r, name) for name in RECORD_COLUMNS},
              "notice_sha256": r.notice_sha256[:16] + "…" if r.notice_sha256 else "",
              "first_reason": r.first_reason or "", "writer": r.writer or ""} for r in records]
    return pd.DataFrame(lines, columns=list(RECORD_COLUMNS))
