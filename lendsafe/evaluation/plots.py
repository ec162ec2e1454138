"""Plots of an evaluation (matplotlib, Agg), each saved as PNG beside the data drawn (JSON or CSV).

Computing is apart from drawing: every function takes the results (``EvaluationResults``; records for the
latency histogram) and returns ``{name: {"png": path, "data": path, "title": text}}`` with paths relative to
the results file's folder.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from lendsafe.evaluation.results import EvaluationResults, dig

WRITER_COLUMNS = (        # (column, where it is in a writer's summary)
    ("decisions", ("decisions",)),
    ("first_pass", ("first_pass_rate",)),
    ("final_pass", ("final_pass_rate",)),
    ("fallback", ("fallback_rate",)),
    ("factor_precision", ("faithfulness", "first_attempt", "factor_precision")),
    ("factor_recall", ("faithfulness", "first_attempt", "factor_recall")),
    ("number_accuracy", ("faithfulness", "first_attempt", "number_accuracy")),
    ("protected_basis", ("faithfulness", "first_attempt", "protected_basis_rate")),
    ("forbidden_phrase", ("faithfulness", "first_attempt", "forbidden_phrase_rate")),
    ("rougeL", ("text_similarity", "first_attempt", "rougeL")),
    ("rougeL_floor", ("text_similarity", "unrelated_floor", "rougeL")),
    ("bertscore_f1", ("text_similarity", "first_attempt", "bertscore_f1")),
    ("bertscore_f1_floor", ("text_similarity", "unrelated_floor", "bertscore_f1")),
    ("latency_p50_ms", ("latency_ms", "p50")),
    ("latency_p95_ms", ("latency_ms", "p95")),
    ("batch1_p50_ms", ("batch1_latency_ms", "p50")),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, plot_dir: Path, name: str) -> Path:
    path = plot_dir / f"{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)
    return path


def _entry(png: Path, data: Path, base: Path, title: str) -> dict[str, str]:
    return {"png": str(png.relative_to(base)) if png.is_relative_to(base) else str(png),
            "data": str(data.relative_to(base)) if data.is_relative_to(base) else str(data), "title": title}


def risk_plots(results: EvaluationResults, plot_dir: Path, base: Path) -> dict[str, dict[str, str]]:
    """ROC and calibration of each risk model beside the logistic baseline (held-out rows)."""
    plt, out = _pyplot(), {}
    for name, data in (results.risk.datasets if results.risk else {}).items():
        figure, (roc, calibration) = plt.subplots(1, 2, figsize=(10, 4.2))
        for system, style in (("model", "-"), ("logistic_baseline", "--")):
            curve, metrics = data["roc"][system], data[system]
            roc.plot(curve["fpr"], curve["tpr"], style, label=f"{system} (AUC {metrics['auc']:.3f})")
            bins = metrics["calibration"]
            calibration.plot([b["mean_predicted"] for b in bins], [b["observed_rate"] for b in bins], style + "o",
                             label=f"{system} (Brier {metrics['brier']:.3f})")
        roc.plot([0, 1], [0, 1], ":", color="grey")
        roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{name}: ROC (test rows)")
        calibration.plot([0, 1], [0, 1], ":", color="grey")
        calibration.set(xlabel="mean predicted risk", ylabel="observed rate",
                        title=f"{name}: calibration (10 equal-count bins)")
        roc.legend(loc="lower right")
        calibration.legend(loc="upper left")
        png = _save(figure, plot_dir, f"risk_{name}")
        json_path = plot_dir / f"risk_{name}.json"
        json_path.write_text(json.dumps({k: data[k] for k in ("roc", "model", "logistic_baseline")}, indent=1) + "\n")
        out[f"risk_{name}"] = _entry(png, json_path, base, f"{name}: ROC and calibration beside the logistic baseline")
    return out


def writer_rows(results: EvaluationResults) -> list[dict[str, Any]]:
    return [{"writer": w, **{column: dig(s, path) for column, path in WRITER_COLUMNS}} for w, s in results.writers.items()]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:,.0f}"
    return "-" if value is None else str(value)


def writer_table(results: EvaluationResults, plot_dir: Path, base: Path) -> dict[str, dict[str, str]]:
    """The per-writer metric table as a PNG and a CSV."""
    rows = writer_rows(results)
    if not rows:
        return {}
    csv_path = plot_dir / "writer_metrics.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["writer", *(c for c, _ in WRITER_COLUMNS)])
        writer.writeheader()
        writer.writerows(rows)
    plt = _pyplot()
    columns = [c for c, _ in WRITER_COLUMNS]
    figure, axes = plt.subplots(figsize=(3.5 + 1.8 * len(rows), 0.8 + 0.3 * len(columns)))
    axes.axis("off")
    table = axes.table(cellText=[[c] + [_cell(r[c]) for r in rows] for c in columns],
                       colLabels=["metric"] + [r["writer"] for r in rows], loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.2)
    axes.set_title("Writers on held-out decisions\n(first attempt; final = after retry and fallback)", fontsize=10)
    png = _save(figure, plot_dir, "writer_metrics")
    return {"writer_metrics": _entry(png, csv_path, base, "Per-writer metrics")}


def failure_breakdown(results: EvaluationResults, plot_dir: Path, base: Path) -> dict[str, dict[str, str]]:
    """Share of decisions failing each verification check on the writer's first attempt."""
    failures = {w: s.faithfulness["first_attempt"]["failures_by_check"] for w, s in results.writers.items()}
    if not failures:
        return {}
    checks = sorted({c for by_check in failures.values() for c in by_check})
    shares = {w: [failures[w].get(c, 0) / max(s.decisions, 1) for c in checks] for w, s in results.writers.items()}
    csv_path = plot_dir / "faithfulness_failures.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["check", *shares])
        out.writerows([[c, *(round(shares[w][i], 4) for w in shares)] for i, c in enumerate(checks)])
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9, 1.5 + 0.45 * max(len(checks), 1) * max(len(shares), 1) / 2))
    height = 0.8 / max(len(shares), 1)
    for k, (writer, values) in enumerate(shares.items()):
        axes.barh([i + k * height for i in range(len(checks))], values, height=height, label=writer)
    axes.set_yticks([i + height * (len(shares) - 1) / 2 for i in range(len(checks))], checks)
    axes.set(xlabel="share of decisions failing the check (first attempt)", xlim=(0, 1),
             title="Faithfulness failures by check" + ("" if checks else ": none"))
    axes.legend(loc="lower right")
    png = _save(figure, plot_dir, "faithfulness_failures")
    return {"faithfulness_failures": _entry(png, csv_path, base, "Faithfulness failures by check, per writer")}


def latency_histogram(records: list[dict[str, Any]], plot_dir: Path, base: Path) -> dict[str, dict[str, str]]:
    """Per-decision latency of each writer (batched runs, amortized) and of single decisions."""
    values: dict[str, list[float]] = {}
    for record in records:
        if record.get("latency_ms") is not None:
            label = record["writer"] + (" (one at a time)" if record["kind"] == "batch1" else " (batched)")
            values.setdefault(label, []).append(record["latency_ms"] / 1000)
    if not values:
        return {}
    json_path = plot_dir / "latency.json"
    json_path.write_text(json.dumps({k: [round(v, 3) for v in vs] for k, vs in values.items()}, indent=1) + "\n")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4))
    for label, seconds in sorted(values.items()):
        axes.hist(seconds, bins=20, alpha=0.6, label=f"{label}, n={len(seconds)}")
    axes.set(xlabel="seconds per decision", ylabel="decisions", title="Explanation latency (generation on CPU)")
    axes.legend()
    png = _save(figure, plot_dir, "latency")
    return {"latency": _entry(png, json_path, base, "Latency per decision, per writer")}


def make_plots(results: EvaluationResults, plot_dir: Path, base: Path,
               records: list[dict[str, Any]] | None = None) -> dict[str, dict[str, str]]:
    """Draw every plot the results allow; returns the plot index stored in the results."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = {**risk_plots(results, plot_dir, base), **writer_table(results, plot_dir, base),
             **failure_breakdown(results, plot_dir, base)}
    if records:
        plots.update(latency_histogram(records, plot_dir, base))
    return plots
