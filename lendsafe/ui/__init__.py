"""The Streamlit dashboard: one module per page, run by ``app.py`` through ``st.navigation``.

This package is the only code that imports streamlit; pages are thin over the library. Each page
module is also a script (``streamlit`` runs it as ``__main__``), so ``st.Page`` takes its path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UI_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PageSpec:
    module: str          # file under lendsafe/ui/
    title: str
    icon: str
    url_path: str

    @property
    def path(self) -> str:
        """The page file relative to the project root (where app.py lives)."""
        return f"lendsafe/ui/{self.module}.py"


PAGES = (
    PageSpec("home", "Start", ":material/home:", "start"),
    PageSpec("explorer", "Decision explorer", ":material/search:", "explorer"),
    PageSpec("notices", "Notices", ":material/description:", "notices"),
    PageSpec("review", "Review", ":material/rate_review:", "review"),
    PageSpec("evaluation", "Evaluation", ":material/analytics:", "evaluation"),
    PageSpec("audit", "Audit", ":material/fact_check:", "audit"),
    PageSpec("models", "Models and data", ":material/model_training:", "models"),
    PageSpec("fairness", "Fair lending", ":material/balance:", "fairness"),
)
