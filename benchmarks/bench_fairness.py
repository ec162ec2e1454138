"""Fair-lending analysis speed, each figure beside a baseline measured in the same run, with the benchmark
method (``benchmarks/method.py``).

* the whole hmda analysis (scoring, outcomes, reasons, proxies, the LDA search, CSV, plots, report PDF)
  beside one plain fit of the current model's settings on its training rows (xgboost, its 2 threads, and
  the same on 1 thread: the LDA search fits on 1 thread each, two at a time), taking turns after one
  untimed call each (imports); the data are loaded once, so a fit is the fit alone;
* the Fair lending page drawing a saved analysis (Streamlit AppTest, script run only; the first run, which
  imports, is left out) beside a page that only writes its title, taking turns.

Targets (issue 19): the whole hmda analysis <= 60 s on 2 cores; the page draws in <= 2 s (p50).
Run: ``python benchmarks/bench_fairness.py [--quick] [--max-rounds 4] [--force]``.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import method  # noqa: E402

ROOT = method.ROOT
TARGETS = {"analysis_seconds": 60.0, "page_seconds": 2.0}
BASELINE_PAGE = "import streamlit as st\nst.title('Fair lending')\n"
ROUNDS = {"default": {"analysis": (3, 4), "page": (3, 8)}, "quick": {"analysis": (2, 2), "page": (2, 2)}}
PAGE_CALLS = 3


def plain_fit():
    """A contender: one fit of the current hmda model's settings on its own training rows, by thread count."""
    import xgboost as xgb

    from lendsafe.decide.datasets import load_dataset
    from lendsafe.decide.risk import RiskModel, model_dir

    model, dataset = RiskModel.load(model_dir("hmda")), load_dataset("hmda")
    train = np.setdiff1d(np.arange(len(dataset.y)), model.test_index_)
    matrix, labels = dataset.X.iloc[train].to_numpy(np.float32), dataset.y[train]
    params = model.params.xgb_params(dataset.spec)

    def fit(threads: int) -> None:
        xgb.train({**params, "nthread": threads}, xgb.DMatrix(matrix, label=labels, nthread=threads),
                  num_boost_round=model.params.n_estimators)
    return fit


class Analysis:
    """A contender: the whole hmda analysis into one folder; keeps each run's stage timing."""

    def __init__(self, folder: Path):
        self.folder, self.stages = folder, []

    def __call__(self) -> None:
        from lendsafe.fairness import FairnessConfig, run_fairness

        results = run_fairness(FairnessConfig(dataset="hmda", split="test", out=self.folder))
        families: dict[str, float] = {}
        for row in results["lda"]["alternatives"]:
            families[row["family"]] = round(families.get(row["family"], 0.0) + row["seconds"], 3)
        self.stages.append({**results["timing"], "lda_by_family": families})


def page(script: Path):
    """A contender: one script run of a page in AppTest (the first, importing run done here, untimed)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(script), default_timeout=120).run()
    assert not at.exception, at.exception
    return lambda: at.run()


def measure_analysis(folder: Path, rounds: tuple) -> tuple[dict, dict, list]:
    fit, analysis = plain_fit(), Analysis(folder / "hmda")
    contenders = {"analysis": analysis, "plain_fit": lambda: fit(2), "plain_fit_one_thread": lambda: fit(1)}
    timings = method.interleave(contenders, calls=1, min_rounds=rounds[0], max_rounds=rounds[1])
    return method.summaries(timings, baseline="plain_fit"), timings, analysis.stages[1:]


def measure_page(folder: Path, rounds: tuple) -> tuple[dict, dict]:
    os.environ["LENDSAFE_FAIRNESS_DIR"] = str(folder)
    bare = folder.parent / "baseline_page.py"
    bare.write_text(BASELINE_PAGE)
    contenders = {"page": page(ROOT / "lendsafe" / "ui" / "fairness.py"), "bare_page": page(bare)}
    timings = method.interleave(contenders, calls=PAGE_CALLS, min_rounds=rounds[0], max_rounds=rounds[1], warmup=0)
    return method.summaries(timings, baseline="bare_page"), timings


def readme_rows(figures: dict, goals: dict) -> list[dict[str, str]]:
    analysis, page_ = figures["analysis"], figures["page"]
    verdict = {name: "met" if goal["met"] else "NOT met" for name, goal in goals.items()}
    return [{"what": "whole fair-lending analysis of hmda (outcomes, reasons, proxies, LDA search, report; p50)",
             "measured": f"{analysis['analysis']['p50_ms'] / 1000:.1f} s (target <= {TARGETS['analysis_seconds']:g} s: "
                         f"{verdict['analysis_seconds']})",
             "baseline": f"one plain fit of the model's settings {analysis['plain_fit']['p50_ms'] / 1000:.2f} s "
                         f"(2 threads), {analysis['plain_fit_one_thread']['p50_ms'] / 1000:.2f} s (1 thread)"},
            {"what": "Fair lending page drawing a saved analysis (script run, p50)",
             "measured": f"{page_['page']['p50_ms'] / 1000:.2f} s (target <= {TARGETS['page_seconds']:g} s: "
                         f"{verdict['page_seconds']})",
             "baseline": f"a page with only its title {page_['bare_page']['p50_ms'] / 1000:.3f} s"}]


def main(argv: list[str] | None = None) -> int:
    parser = method.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of each (a check that it runs)")
    parser.add_argument("--max-rounds", type=int, help="round limit of the analysis rounds (default 4)")
    args = parser.parse_args(argv)
    rounds = dict(ROUNDS["quick" if args.quick else "default"])
    if args.max_rounds:
        rounds["analysis"] = (min(rounds["analysis"][0], args.max_rounds), args.max_rounds)
    run = method.Run("fairness", "fairlearn", "xgboost-cpu", "scikit-learn", "streamlit")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "fairness"
        analysis, analysis_timings, stages = measure_analysis(folder, rounds["analysis"])
        page_figures, page_timings = measure_page(folder, rounds["page"])
    figures = {"analysis": analysis, "page": page_figures}
    goals = {"analysis_seconds": method.target(round(analysis["analysis"]["p50_ms"] / 1000, 2),
                                               TARGETS["analysis_seconds"]),
             "page_seconds": method.target(round(page_figures["page"]["p50_ms"] / 1000, 3), TARGETS["page_seconds"])}
    spreads = {f"{section} {name}": t.spread() for section, timings in (("analysis", analysis_timings),
                                                                        ("page", page_timings))
               for name, t in timings.items()}
    method.print_targets(goals)
    run.finish(figures, readme_rows(figures, goals), spreads, force=args.force, targets=goals, stages_s=stages,
               rounds=rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
