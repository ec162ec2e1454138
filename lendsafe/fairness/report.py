"""The fair-lending report PDF (reportlab): what an analyst files, drawn from the results dict and the plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

FONT_SIZE = 8
NOT_SWITCHED = ("Nothing is switched automatically: the current model stays in use until the lender decides. "
                "Each alternative is listed with what it would cost in held-out AUC and approval rate.")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _interval(ci: list[Any]) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


class Story:
    """Flowables of the report, with the few styles it uses."""

    def __init__(self) -> None:
        from reportlab.lib.styles import getSampleStyleSheet

        self.styles = getSampleStyleSheet()
        self.items: list[Any] = []

    def heading(self, text: str, level: int = 2) -> None:
        from reportlab.platypus import Paragraph

        self.items.append(Paragraph(escape(text), self.styles[f"Heading{level}"]))

    def text(self, text: str) -> None:
        from reportlab.platypus import Paragraph

        self.items.append(Paragraph(escape(text), self.styles["BodyText"]))

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        from reportlab.lib import colors
        from reportlab.platypus import Spacer, Table, TableStyle

        table = Table([header] + [[_fmt(v) for v in row] for row in rows], repeatRows=1)
        table.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), FONT_SIZE), ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                                   ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]))
        self.items += [table, Spacer(1, 6)]

    def image(self, path: Path, width: float = 480) -> None:
        from reportlab.lib.utils import ImageReader
        from reportlab.platypus import Image

        if path.is_file():
            w, h = ImageReader(str(path)).getSize()
            self.items.append(Image(str(path), width=width, height=width * h / w))


def header_part(story: Story, results: dict[str, Any]) -> None:
    d, a = results["dataset"], results["artifacts"]
    story.heading(f"Fair-lending analysis: {d['title']}", 1)
    story.text(f"Created {results['created']}. Rows analysed: {d['rows']} ({d['split']}: {d['split_meaning']}); "
               f"denials by the model: {d['denials']}; threshold {d['threshold']}. The model predicts {d['outcome']}.")
    story.text(f"Risk model sha256 {a['risk_model_sha256']}; data sha256 {a['data_sha256']}; "
               f"results sha256 {results['results_sha256']}.")
    story.text("Protected attributes are read by this analysis only; the model never receives them. "
               f"Prohibited bases this data does not record (not analysed): {', '.join(results['not_recorded'])}.")


def outcomes_part(story: Story, results: dict[str, Any], folder: Path) -> None:
    story.heading("1. Outcomes by group")
    rows = []
    for name, s in results["outcomes"].items():
        for group, g in s["groups"].items():
            comparison = next((c for c in s["comparisons"] if c["protected"] == group), None)
            rows.append([name, group + (" (control)" if group == s["control"] else ""), g["n"], g["approved"],
                         g["approval_rate"], _fmt(comparison and comparison["air"]),
                         _interval(comparison["ci95"]) if comparison else "-",
                         _fmt(comparison and comparison["smd_risk"]), "SMALL" if g["small"] else ""])
    story.table(["attribute", "group", "n", "approved", "rate", "AIR", "95% interval", "SMD risk", "flag"], rows)
    first = next(iter(results["outcomes"].values()))
    story.text(f"AIR = protected approval rate / control approval rate; interval: {first['air_method']}. "
               f"0.8 (four-fifths) is a screen, not a legal line. Groups under {first['min_group_size']} rows are "
               "flagged SMALL: their ratio is unstable.")
    for name, s in results["outcomes"].items():
        for group, gap in s["risk_deciles"]["weighted_gaps"].items():
            story.text(f"{name} = {group} vs {s['control']}, risk held equal (within deciles of predicted risk, "
                       f"{gap['deciles_used']} deciles): model denial-rate gap {_fmt(gap['model_denial_gap'])}, "
                       f"observed adverse-outcome gap {_fmt(gap['observed_adverse_gap'])}.")
    story.image(folder / results["files_plots"]["air"], 420)


def reasons_part(story: Story, results: dict[str, Any]) -> None:
    story.heading("2. Reasons given to denied applicants, by group")
    for name, section in results["reasons"].items():
        for scope, label in (("first_reason", "first reason"), ("all_reasons", "all reasons")):
            test = section[scope]["independence"]
            story.text(f"{name}, {label}: chi-square {_fmt(test['statistic'], 2)}, dof {test['dof']}, "
                       f"p = {_fmt(test['p_value'], 4)} ({test.get('p_method', 'chi-square')}), "
                       f"Cramer's V {_fmt(test['cramers_v'])}")
            rows = [[g, r["code"], r["share_protected"], r["share_control"], r["gap"], r["p_holm"]]
                    for g, top in section[scope]["largest"].items() for r in top]
            story.table(["protected group", "reason", "share protected", "share control", "gap", "p (Holm)"], rows)


def proxies_part(story: Story, results: dict[str, Any]) -> None:
    story.heading("3. Proxy check: inputs that predict a protected attribute")
    rows = [[name, group, r["input"], r["auc"]] for name, section in results["proxies"].items()
            for group, data in section.items() for r in data["inputs"][:5]]
    story.table(["attribute", "protected group", "input (strongest 5)", "cross-validated AUC"], rows)
    story.text("AUC 0.5: the input says nothing about the group; the further from 0.5, the stronger a proxy.")


def lda_part(story: Story, results: dict[str, Any], folder: Path) -> None:
    lda = results["lda"]
    story.heading("4. Less discriminatory alternatives")
    story.text(lda["method"])
    names = list(lda["frontier"])
    rows = [[r["name"], r["family"], r["auc"], r["approval_rate"]] + [r["air"][n]["worst"] for n in names]
            for r in lda["alternatives"]]
    story.table(["alternative", "family", "AUC", "approval rate"] + [f"worst AIR {n}" for n in names], rows)
    for name, found in lda["candidates"].items():
        listed = "; ".join(f"{c['name']} (AIR {c['air_gain']:+.3f}, AUC {0.0 - c['auc_cost']:+.4f}, approval rate "
                           f"{c['approval_rate_change']:+.3f})" for c in found) or "none"
        story.text(f"Raise the worst AIR of {name} at an AUC cost of at most {lda['auc_tolerance']}: {listed}.")
    spread = ", ".join(f"{k.replace('_', ' ')} {_interval(v)}" for k, v in lda["noise"].items())
    story.text(f"Run-to-run noise (the current model and refits with other seeds): {spread}. {lda['worst_air']}. "
               "Excluded from the family: " + " ".join(lda["excluded_from_family"]))
    story.text(f"Candidates: {lda.get('candidates_rule', '')}.")
    story.text(NOT_SWITCHED)
    story.image(folder / results["files_plots"]["lda_frontier"], 500)


def write_report(results: dict[str, Any], path: Path) -> Path:
    """Render the report PDF to ``path``; the plots must already be in its folder."""
    from reportlab.lib.pagesizes import letter
    from reportlab.platypus import SimpleDocTemplate

    story, folder = Story(), Path(path).parent
    view = {**results, "files_plots": {n: f"{n}.png" for n in ("air", "lda_frontier")}}
    header_part(story, view)
    outcomes_part(story, view, folder)
    reasons_part(story, view)
    proxies_part(story, view)
    if results.get("lda"):
        lda_part(story, view, folder)
    SimpleDocTemplate(str(path), pagesize=letter, title="Fair-lending analysis", author="LendSafe",
                      leftMargin=40, rightMargin=40, topMargin=40, bottomMargin=40).build(story.items)
    return Path(path)
