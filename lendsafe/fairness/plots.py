"""Plots of an analysis (matplotlib, Agg), drawn from the results dict only and saved as PNG in its folder:
the AIR of each protected group with its interval, reason shares by group, and the LDA frontier."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lendsafe.fairness.outcomes import AIR_SCREEN


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, out: Path, name: str) -> str:
    figure.tight_layout()
    figure.savefig(out / f"{name}.png", dpi=100)
    _pyplot().close(figure)
    return f"{name}.png"


def air_plot(results: dict[str, Any], out: Path) -> str:
    """One line per protected group: AIR point and 95% interval, the four-fifths screen and parity marked."""
    rows = [(f"{name}: {c['protected']} vs {c['control']}", c) for name, s in results["outcomes"].items()
            for c in s["comparisons"]]
    figure, axis = _pyplot().subplots(figsize=(8, 0.5 * len(rows) + 2))
    for y, (label, c) in enumerate(rows):
        low, high = c["ci95"][0] or 0.0, c["ci95"][1] or 2.0
        axis.plot([low, high], [y, y], color="tab:blue")
        axis.plot([c["air"] or 0.0], [y], "o", color="tab:red" if c["small_group"] else "tab:blue")
    axis.axvline(AIR_SCREEN, color="grey", linestyle="--", label="four-fifths screen (0.8)")
    axis.axvline(1.0, color="black", linewidth=0.8, label="parity (1.0)")
    axis.set_yticks(range(len(rows)), [label for label, _ in rows])
    axis.set_xlabel("AIR (approval rate protected / control), 95% interval\nred point = small group")
    axis.legend(loc="lower right", fontsize=8)
    return _save(figure, out, "air")


def reasons_plot(results: dict[str, Any], name: str, out: Path) -> str:
    """Share of denials naming each reason, one bar per group."""
    import numpy as np

    section = results["reasons"][name]["all_reasons"]
    codes, groups = results["reasons"][name]["codes"], list(section["groups"])
    figure, axis = _pyplot().subplots(figsize=(8, 0.35 * len(codes) * max(1, len(groups) / 2) + 1.5))
    height = 0.8 / max(1, len(groups))
    for k, group in enumerate(groups):
        shares = [section["groups"][group]["share"][c] or 0.0 for c in codes]
        denials = section["groups"][group]["denials"]
        axis.barh(np.arange(len(codes)) + k * height, shares, height, label=f"{group} ({denials} denials)")
    axis.set_yticks(np.arange(len(codes)) + height * (len(groups) - 1) / 2, codes)
    axis.set_xlabel(f"share of denials naming the reason ({name})")
    axis.legend(fontsize=8)
    return _save(figure, out, f"reasons_{name}")


def frontier_plot(results: dict[str, Any], out: Path) -> str:
    """Held-out AUC against the worst AIR of each attribute; the frontier joined, the current model starred."""
    lda = results["lda"]
    names = list(lda["frontier"])
    figure, axes = _pyplot().subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    current = lda["alternatives"][0]
    for axis, name in zip(axes[0], names):
        points = [(r["auc"], r["air"][name]["worst"], r) for r in lda["alternatives"] if r["air"][name]["worst"] is not None]
        for family in sorted({r["family"] for _, _, r in points}):
            chosen = [(x, y) for x, y, r in points if r["family"] == family]
            axis.scatter(*zip(*chosen), label=family + (" (approves more)" if family == "cutoff" else ""), s=25)
        edge = sorted((x, y) for x, y, r in points if r["name"] in lda["frontier"][name])
        if edge:
            axis.plot(*zip(*edge), color="black", linewidth=0.8, label="frontier (at the current approval rate)")
        if current["air"][name]["worst"] is not None:
            axis.scatter([current["auc"]], [current["air"][name]["worst"]], marker="*", s=250, color="red",
                         label="current model", zorder=5)
        axis.axvline(current["auc"] - lda["auc_tolerance"], color="grey", linestyle=":",
                     label=f"AUC cost {lda['auc_tolerance']}")
        axis.set_xlabel("held-out AUC")
        axis.set_ylabel(f"worst held-out AIR ({name})")
        axis.legend(fontsize=7)
    return _save(figure, out, "lda_frontier")


def draw_all(results: dict[str, Any], out: Path) -> dict[str, str]:
    """Every plot of the results; returns {name: file name in ``out``}."""
    plots = {"air": air_plot(results, out)}
    plots.update({f"reasons_{n}": reasons_plot(results, n, out) for n in results.get("reasons", {})})
    if results.get("lda"):
        plots["lda_frontier"] = frontier_plot(results, out)
    return plots
