"""Fair-lending analysis speed, each figure beside a baseline measured in the same run.

* the whole hmda analysis (scoring, outcomes, reasons, proxies, the LDA search, CSV, plots, report PDF)
  beside one plain fit of the current model's settings on its training rows (xgboost, its 2 threads, and
  the same on 1 thread: the LDA search fits on 1 thread each, two at a time);
* the Fair lending page drawing a saved analysis (Streamlit AppTest, script run only) beside a page
  that only writes its title.

Targets (issue 19): the whole hmda analysis <= 60 s on 2 cores; the page draws in <= 2 s.
Writes benchmarks/results/fairness.json. Run: ``python benchmarks/bench_fairness.py [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "fairness.json"
TARGETS = {"analysis_seconds": 60.0, "page_seconds": 2.0}
BASELINE_PAGE = "import streamlit as st\nst.title('Fair lending')\n"


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def timed(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        samples.append(time.perf_counter() - began)
    return samples


def plain_fit(threads: int = 2) -> None:
    """One fit of the current hmda model's settings on its own training rows (its 2 threads, or 1)."""
    import xgboost as xgb

    from lendsafe.decide.datasets import load_dataset
    from lendsafe.decide.risk import RiskModel, model_dir

    model, dataset = RiskModel.load(model_dir("hmda")), load_dataset("hmda")
    train = np.setdiff1d(np.arange(len(dataset.y)), model.test_index_)
    matrix = dataset.X.iloc[train].to_numpy(np.float32)
    xgb.train({**model.params.xgb_params(dataset.spec), "nthread": threads},
              xgb.DMatrix(matrix, label=dataset.y[train], nthread=threads), num_boost_round=model.params.n_estimators)


def analysis(folder: Path) -> dict:
    """The whole analysis; returns its stage timing with the LDA search's seconds per family."""
    from lendsafe.fairness import FairnessConfig, run_fairness

    results = run_fairness(FairnessConfig(dataset="hmda", split="test", out=folder))
    families: dict[str, float] = {}
    for row in results["lda"]["alternatives"]:
        families[row["family"]] = round(families.get(row["family"], 0.0) + row["seconds"], 3)
    return {**results["timing"], "lda_by_family": families}


def page_seconds(script: Path, repeats: int) -> list[float]:
    """Script-run seconds of a page in AppTest (the first run, which imports, is left out)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(script), default_timeout=120).run()
    assert not at.exception, at.exception
    return timed(lambda: at.run(), repeats)


def summary(samples: list[float]) -> dict:
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3),
            "samples_s": [round(s, 3) for s in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each contender (default 3)")
    args = parser.parse_args()
    record = {"benchmark": "fairness", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "load_before": load_average(), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "versions": {p: metadata.version(p) for p in ("fairlearn", "xgboost-cpu", "scikit-learn", "streamlit")}}
    plain_fit()                                            # warm: imports and data loading
    fit = timed(plain_fit, max(5, args.repeats))
    fit_one_thread = timed(lambda: plain_fit(1), max(5, args.repeats))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fairness"
        stages = []
        runs = timed(lambda: stages.append(analysis(folder / "hmda")), args.repeats)
        os.environ["LENDSAFE_FAIRNESS_DIR"] = str(folder)
        page = page_seconds(ROOT / "lendsafe" / "ui" / "fairness.py", args.repeats)
        baseline_page = Path(tmp) / "baseline_page.py"
        baseline_page.write_text(BASELINE_PAGE)
        bare = page_seconds(baseline_page, args.repeats)
    figures = {"analysis": summary(runs), "plain_fit": summary(fit), "plain_fit_one_thread": summary(fit_one_thread),
               "page": summary(page), "bare_page": summary(bare)}
    figures["analysis_over_plain_fit"] = round(statistics.median(runs) / statistics.median(fit), 1)
    figures["page_over_bare_page"] = round(statistics.median(page) / statistics.median(bare), 1)
    record.update(figures=figures, stages_s=stages, targets=TARGETS, own_cpu_s=round(sum(os.times()[:2]), 1),
                  meets={"analysis_seconds": statistics.median(runs) <= TARGETS["analysis_seconds"],
                         "page_seconds": statistics.median(page) <= TARGETS["page_seconds"]},
                  load_after=load_average())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
    print(f"-> {OUT.relative_to(ROOT)}; load before {record['load_before']}, after {record['load_after']}")


if __name__ == "__main__":
    main()
