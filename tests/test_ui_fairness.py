"""The Fair lending page (Streamlit AppTest): it draws a saved analysis (AIR table, plots, candidates), says
what is missing when there is none, runs the analysis from its button, and shows result text as plain
text. Saved analyses are read from ``LENDSAFE_FAIRNESS_DIR`` (a temporary folder here)."""
from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from lendsafe.config import PROJECT_ROOT
from lendsafe.fairness.analysis import FAIRNESS_DIR_ENV
from lendsafe.ui import PAGES

PAGE = str(PROJECT_ROOT / "lendsafe" / "ui" / "fairness.py")
EVIL = "[click](http://evil.example) <b>bold</b>"


@pytest.fixture
def saved_root(tmp_path, monkeypatch, fairness_hmda_folder):
    """A fairness root holding the session's hmda analysis."""
    shutil.copytree(fairness_hmda_folder, tmp_path / "hmda")
    monkeypatch.setenv(FAIRNESS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("LENDSAFE_USE_LLM", "0")
    return tmp_path


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    monkeypatch.setenv(FAIRNESS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("LENDSAFE_USE_LLM", "0")
    return tmp_path


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=180).run()


def texts(at: AppTest) -> list[str]:
    kinds = ("markdown", "caption", "info", "error", "success", "warning")
    return [str(e.value) for kind in kinds for e in at.get(kind)]


def test_the_page_is_registered():
    assert any(p.module == "fairness" and p.title == "Fair lending" for p in PAGES)


def test_a_saved_analysis_is_drawn(saved_root):
    results = json.loads((saved_root / "hmda" / "fairness.json").read_text())
    at = page()
    assert not at.exception
    assert at.title[0].value == "Fair lending"
    air = at.dataframe[0].value
    for name, section in results["outcomes"].items():
        for c in section["comparisons"]:
            row = air[(air["attribute"] == name) & (air["group"] == c["protected"])].iloc[0]
            assert row["AIR"] == pytest.approx(c["air"])
            assert row["95% interval"] == f"[{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]"
    assert len(at.get("image")) == len(results["files"]["plots"])
    shown = " ".join(texts(at))
    assert "Nothing is switched automatically" in shown and "sex" in shown
    for name, found in results["lda"]["candidates"].items():
        assert f"Raise the worst AIR of {name}" in shown and f"{len(found)} alternative(s)" in shown


def test_without_an_analysis_the_page_says_so_and_offers_the_run(empty_root):
    at = page()
    assert not at.exception
    assert any("No fair-lending analysis of hmda yet" in t for t in texts(at))
    assert any(b.label == "Run the fair-lending analysis" for b in at.button)


def test_the_button_runs_the_analysis(empty_root):
    at = page()
    at.checkbox(key="ls_fair_lda").uncheck()
    next(b for b in at.button if b.label == "Run the fair-lending analysis").click()
    at.run()
    assert not at.exception
    results = json.loads((empty_root / "hmda" / "fairness.json").read_text())
    assert "lda" not in results and results["config"]["split"] == "test"
    assert any("Analysis finished" in t for t in texts(at))
    assert any("This analysis ran without the alternative search" in t for t in texts(at))


def test_a_current_analysis_is_not_called_stale_and_a_changed_model_is(saved_root):
    assert not any(t.startswith("Stale") for t in texts(page()))
    path = saved_root / "hmda" / "fairness.json"
    results = json.loads(path.read_text())
    results["artifacts"]["risk_model_sha256"] = "0" * 64
    path.write_text(json.dumps(results))
    warnings = [t for t in texts(page()) if t.startswith("Stale")]
    assert warnings and "risk\\_model\\_sha256" in warnings[0]


def test_result_text_is_shown_as_plain_text(saved_root):
    path = saved_root / "hmda" / "fairness.json"
    results = json.loads(path.read_text())
    results["not_recorded"] = [EVIL]
    path.write_text(json.dumps(results))
    at = page()
    shown = [t for t in texts(at) if "evil.example" in t]
    assert shown and all("\\[click\\]" in t and "\\<b\\>" in t for t in shown)


def test_an_unreadable_analysis_is_said_not_raised(saved_root):
    (saved_root / "hmda" / "fairness.json").write_text("{not json")
    at = page()
    assert not at.exception
    assert any("cannot be read" in t for t in texts(at))
