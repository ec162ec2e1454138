"""Fair-lending analysis of a saved risk model: outcomes by protected group (adverse impact ratio with
its interval), reason disparity among denials, proxy check, and the search for less discriminatory
alternatives; written as JSON, CSV tables, plots and a report PDF.

``run_fairness(FairnessConfig(dataset="hmda"))`` runs it; ``load_fairness(folder)`` reads it back.
Protected attributes are read here (and in ``RiskModel``'s adverse-impact summary) only: the scorer
never receives them. No streamlit or argparse here: the faces are ``lendsafe fairness`` and the
"Fair lending" page.
"""
from lendsafe.fairness.analysis import FairnessConfig, current_hashes, default_out, results_root, run_fairness
from lendsafe.fairness.results import load_fairness, stale

__all__ = ["FairnessConfig", "current_hashes", "default_out", "load_fairness", "results_root", "run_fairness", "stale"]
