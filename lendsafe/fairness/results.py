"""Results of a fair-lending analysis on disk: artifact hashes (the evaluation's own ``file_sha256``), the
hash of the figures, ``fairness.json``, the CSV tables, and reading them back."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from lendsafe.config import PACKAGE_DIR
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.evaluation.store import differences, file_sha256, now
from lendsafe.fairness.plots import draw_all
from lendsafe.fairness.report import write_report
from lendsafe.fairness.tables import TABLES

RESULTS_FILE = "fairness.json"
REPORT_FILE = "fairness_report.pdf"
FIGURE_SECTIONS = ("config", "artifacts", "dataset", "attributes", "not_recorded", "outcomes", "reasons", "proxies",
                   "lda")
CODE_FILES = tuple(sorted(f"fairness/{p.name}" for p in (PACKAGE_DIR / "fairness").glob("*.py"))) + (
    "decide/scoring.py", "decide/reasons.py", "decide/risk.py", "decide/datasets.py")


def artifact_hashes(model: Any, dataset: Any) -> dict[str, Any]:
    """sha256 of the model, the data, the spec, the reason catalog and the code the results depend on."""
    from lendsafe.decide.reasons import catalog_sha256

    return {"risk_model_sha256": model.sha256, "data_sha256": dataset.sha256,
            "spec_sha256": file_sha256(dataset.spec.path), "catalog_sha256": catalog_sha256(),
            "code_sha256": {name: file_sha256(PACKAGE_DIR / name) for name in CODE_FILES}}


def stale(results: dict[str, Any], hashes: dict[str, Any]) -> list[str]:
    """What changed between the saved results' artifacts and ``hashes`` (empty: still current)."""
    return differences(results.get("artifacts", {}), hashes)


def results_sha256(results: dict[str, Any]) -> str:
    """sha256 of the figures (canonical JSON of the figure sections; timing and file names left out)."""
    figures = {k: results.get(k) for k in FIGURE_SECTIONS}
    return hashlib.sha256(json.dumps(figures, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_csv(path: Path, rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["empty"])
        writer.writeheader()
        writer.writerows(rows)
    return path.name


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def prepare_folder(out: Path | str) -> Path:
    """The output folder, created; refused with the field named when it cannot be."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"out: cannot create the folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ConfigurationError(f"out: the folder {out} is not writable")
    return out


def write_outputs(results: dict[str, Any], out: Path, began: float) -> Path:
    """fairness.json, the CSV tables, the plots and the report PDF under ``out``."""
    out = prepare_folder(out)
    results["created"], results["results_sha256"] = now(), results_sha256(results)
    files = {"tables": {name: write_csv(out / f"{name}.csv", make(results)) for name, make in TABLES.items()}}
    files["plots"] = draw_all(results, out)
    started = time.perf_counter()
    files["report"] = write_report(results, out / REPORT_FILE).name
    results["timing"]["report"] = round(time.perf_counter() - started, 2)
    results["files"] = files
    results["timing"]["total_seconds"] = round(time.perf_counter() - began, 2)
    write_json(out / RESULTS_FILE, results)
    return out / RESULTS_FILE


def load_fairness(folder: Path | str) -> dict[str, Any]:
    """A saved analysis (``folder/fairness.json``) with its file names resolved to paths in ``folder``."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        raise ArtifactNotFoundError(f"no fair-lending results at {path}; run `lendsafe fairness`")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path} is not a fair-lending results file: {exc}") from None
    if results.get("kind") != "fairness":
        raise ConfigurationError(f"{path} is not a fair-lending results file (kind {results.get('kind')!r})")
    results["folder"] = str(Path(folder))
    return results
