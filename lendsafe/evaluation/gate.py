"""The gate: a fixed 34-decision evaluation of the LoRA writer that fails when the final output is not 100%
faithful or first-pass faithfulness falls more than 3 points below ``data/eval/gate_baseline.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lendsafe.config import Settings
from lendsafe.errors import ArtifactNotFoundError, LendSafeError
from lendsafe.evaluation.results import SCHEMA_VERSION, EvaluationResults
from lendsafe.evaluation.config import GATE_BASELINE, gate_config
from lendsafe.evaluation.run import run_evaluation
from lendsafe.evaluation.store import Progress, now
from lendsafe.explain.writer import Writer

GATE_MAX_DROP = 0.03                      # first-pass LoRA faithfulness may fall at most 3 points


def run_gate(settings: Settings | None = None, progress: Progress | None = None, *, out: Path | str | None = None,
             generators: dict[str, Writer] | None = None, bar: bool = True) -> EvaluationResults:
    """The gate evaluation (always fresh); returns its results."""
    return run_evaluation(gate_config(out), progress, settings=settings, generators=generators, bar=bar)


def gate_summary(results: EvaluationResults) -> dict[str, Any]:
    """The figures the gate compares: first-pass and final faithfulness of the LoRA writer."""
    section = results.explanations
    lora = section.writers["lora"]
    return {"schema_version": SCHEMA_VERSION, "decisions": lora.decisions,
            "ids_sha256": section.sample["ids_sha256"], "first_pass_rate": lora.first_pass_rate,
            "final_pass_rate": lora.final_pass_rate, "fallback_rate": lora.fallback_rate,
            "failures_by_check": lora.faithfulness["first_attempt"]["failures_by_check"],
            "artifacts": results.artifacts["writers"]["lora"], "written": now()}


def check_gate(summary: dict[str, Any], baseline: dict[str, Any], max_drop: float = GATE_MAX_DROP) -> list[str]:
    """Why the gate fails (empty when it passes)."""
    problems = []
    if summary["final_pass_rate"] is None or summary["final_pass_rate"] < 1.0:
        problems.append(f"final faithfulness is {_pct(summary['final_pass_rate'])}; every issued explanation must "
                        f"pass verification (100%)")
    if summary["ids_sha256"] != baseline.get("ids_sha256"):
        problems.append("the gate's decisions differ from the baseline's (the SFT test split changed): rewrite the "
                        "baseline with `lendsafe evaluate --gate --write-baseline`")
    floor = baseline["first_pass_rate"] - max_drop
    if summary["first_pass_rate"] is None or summary["first_pass_rate"] < floor - 1e-9:
        problems.append(f"first-pass LoRA faithfulness fell to {_pct(summary['first_pass_rate'])} from the baseline's "
                        f"{_pct(baseline['first_pass_rate'])} (at most {max_drop * 100:.0f} points lower allowed)")
    return problems


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def read_gate_baseline(path: Path | str = GATE_BASELINE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"no gate baseline at {path}; write it with `lendsafe evaluate --gate "
                                    f"--write-baseline`")
    return json.loads(path.read_text(encoding="utf-8"))


def write_gate_baseline(summary: dict[str, Any], path: Path | str = GATE_BASELINE) -> Path:
    """Commit a gate run as the baseline; refused unless its final faithfulness is 100%."""
    if summary["final_pass_rate"] != 1.0:
        raise LendSafeError(f"final faithfulness is {_pct(summary['final_pass_rate'])}; a baseline needs 100%")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return path
