"""Fair lending: outcomes and reasons by protected group, proxies and less discriminatory alternatives,
drawn from a saved analysis (``lendsafe fairness``); a button runs the analysis again."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from lendsafe.errors import LendSafeError
from lendsafe.ui import common
from lendsafe.ui.tables import md_escape

DATASET_KEY = "ls_fair_dataset"
DATASETS = ("hmda", "credit")
CANDIDATE_COLUMNS = ("name", "family", "equal_approval_rate", "auc", "auc_cost", "air", "air_gain", "approval_rate_change")


def _folder(dataset: str) -> Path:
    from lendsafe.fairness import default_out

    return default_out(dataset, common.app_settings())


@st.cache_data(show_spinner=False, max_entries=8)
def _load(folder: str, mtime: float) -> dict[str, Any]:
    from lendsafe.fairness import load_fairness

    return load_fairness(folder)


def saved(dataset: str) -> dict[str, Any] | None:
    """The saved analysis of ``dataset`` (None when there is none; an unreadable one is said)."""
    path = _folder(dataset) / "fairness.json"
    if not path.is_file():
        return None
    try:
        return _load(str(path.parent), path.stat().st_mtime)
    except LendSafeError as exc:
        st.error(f"The saved analysis cannot be read: {md_escape(exc)}")
        return None


@st.cache_data(show_spinner=False, max_entries=8)
def _current_hashes(dataset: str) -> dict[str, Any]:
    from lendsafe.fairness import current_hashes

    return current_hashes(dataset, common.app_settings())


def stale_warning(dataset: str, results: dict[str, Any]) -> None:
    """Say so when the saved analysis was made with another model, data, spec, catalog or code."""
    from lendsafe.fairness import stale

    try:
        changed = stale(results, _current_hashes(dataset))
    except LendSafeError as exc:
        st.warning(f"Cannot tell whether this analysis is current: {md_escape(exc)}")
        return
    if changed:
        st.warning(md_escape("Stale: this analysis was made with other artifacts than today's ("
                             + "; ".join(changed[:4]) + "). Run it again to see today's figures."),
                   icon=":material/history:")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------------------- running

def run_form(dataset: str) -> None:
    from lendsafe.fairness import FairnessConfig, run_fairness

    with st.form("ls_fair_form"):
        cols = st.columns(2)
        split = cols[0].radio("Rows analysed", ("test", "all"), horizontal=True, key="ls_fair_split",
                              help="test: the model's held-out rows; all: every row (training rows included)")
        lda = cols[1].checkbox("Search for less discriminatory alternatives", value=True, key="ls_fair_lda",
                               help="refits about 25 alternative models (under a minute on 2 cores)")
        submitted = st.form_submit_button("Run the fair-lending analysis", type="primary")
    if not submitted:
        return
    bar = st.progress(0.0, text="Starting…")
    try:
        config = FairnessConfig(dataset=dataset, split=split, lda=lda, out=_folder(dataset))
        results = run_fairness(config, common.app_settings(dataset),
                               lambda d, t, s: bar.progress(min(d / max(t, 1), 1.0), text=s))
    except LendSafeError as exc:
        st.error(f"The analysis stopped: {md_escape(exc)}")
        return
    bar.progress(1.0, text=f"Done in {results['timing']['total_seconds']} s")
    st.success("Analysis finished; its results are shown below.")


# ---------------------------------------------------------------------------- showing

def header(results: dict[str, Any]) -> None:
    d, a = results["dataset"], results["artifacts"]
    st.caption(md_escape(f"{d['title']} — {d['rows']} rows ({d['split']}: {d['split_meaning']}), {d['denials']} "
                         f"denied by the model; created {results.get('created')}; "
                         f"{results['timing'].get('total_seconds')} s of work."))
    st.caption(md_escape(f"model sha256 {a['risk_model_sha256'][:16]}…, data sha256 {a['data_sha256'][:16]}…, "
                         f"results sha256 {results['results_sha256'][:16]}…"))
    if results.get("not_recorded"):
        st.info(md_escape("Not recorded in this data, so not analysed: " + ", ".join(results["not_recorded"]) + "."))


def air_table(results: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name, s in results["outcomes"].items():
        for c in s["comparisons"]:
            p, k = s["groups"][c["protected"]], s["groups"][c["control"]]
            rows.append({"attribute": name, "group": c["protected"], "control": c["control"],
                         "approved / n": f"{p['approved']} / {p['n']}", "control approved / n": f"{k['approved']} / {k['n']}",
                         "AIR": c["air"], "95% interval": f"[{_fmt(c['ci95'][0])}, {_fmt(c['ci95'][1])}]",
                         "below 0.8": c["below_four_fifths"], "SMD risk": c["smd_risk"],
                         "small group": c["small_group"]})
    return pd.DataFrame(rows)


def outcomes_section(results: dict[str, Any], folder: Path) -> None:
    st.subheader("Outcomes by group")
    st.dataframe(air_table(results), hide_index=True, width="stretch")
    first = next(iter(results["outcomes"].values()))
    st.caption(md_escape(f"AIR = protected approval rate / control approval rate. Interval: {first['air_method']}. "
                         f"0.8 is a screen, not a legal line. Groups under {first['min_group_size']} rows are "
                         "flagged small."))
    for name, s in results["outcomes"].items():
        for group, gap in s["risk_deciles"]["weighted_gaps"].items():
            st.write(md_escape(f"{name} = {group} vs {s['control']}, risk held equal (within risk deciles): model "
                               f"denial-rate gap {_fmt(gap['model_denial_gap'])}, observed adverse-outcome gap "
                               f"{_fmt(gap['observed_adverse_gap'])}"))
    _image(folder, results, "air", "AIR with 95% interval")


def reasons_section(results: dict[str, Any], folder: Path) -> None:
    st.subheader("Reasons given to denied applicants, by group")
    for name, section in results["reasons"].items():
        for scope, label in (("first_reason", "first reason"), ("all_reasons", "all reasons")):
            test = section[scope]["independence"]
            st.write(md_escape(f"{name}, {label}: p = {_fmt(test['p_value'])} ({test.get('p_method', 'chi-square')}), "
                               f"Cramér's V {_fmt(test['cramers_v'])}"))
        rows = [{"group": g, **{k: r[k] for k in ("code", "share_protected", "share_control", "gap", "p_holm")}}
                for g, top in section["all_reasons"]["largest"].items() for r in top]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        _image(folder, results, f"reasons_{name}", f"Reason shares by group ({name})")


def proxies_section(results: dict[str, Any]) -> None:
    st.subheader("Proxy check")
    rows = [{"attribute": name, "group": group, "input": r["input"], "AUC": r["auc"]}
            for name, section in results["proxies"].items() for group, data in section.items()
            for r in data["inputs"][:5]]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("Cross-validated AUC of each input predicting the group: 0.5 says nothing; further from 0.5, a proxy.")


def lda_section(results: dict[str, Any], folder: Path) -> None:
    lda = results.get("lda")
    st.subheader("Less discriminatory alternatives")
    if not lda:
        st.info("This analysis ran without the alternative search.")
        return
    for name, found in lda["candidates"].items():
        st.write(md_escape(f"Raise the worst AIR of {name} at ≤ {lda['auc_tolerance']} AUC cost: {len(found)} "
                           "alternative(s)"))
        if found:
            frame = pd.DataFrame(found)
            st.dataframe(frame[[c for c in CANDIDATE_COLUMNS if c in frame.columns]], hide_index=True, width="stretch")
    st.caption("Nothing is switched automatically: the current model stays until the lender decides.")
    _image(folder, results, "lda_frontier", "Held-out AUC vs worst AIR; the star is the current model")


def _image(folder: Path, results: dict[str, Any], name: str, caption: str) -> None:
    file = results.get("files", {}).get("plots", {}).get(name)
    if file and (folder / file).is_file():
        st.image(str(folder / file), caption=caption)


def downloads(results: dict[str, Any], folder: Path) -> None:
    report = folder / results["files"]["report"]
    cols = st.columns(2)
    if report.is_file():
        cols[0].download_button("Download the report PDF", report.read_bytes(), file_name=report.name,
                                mime="application/pdf")
    cols[1].download_button("Download fairness.json", (folder / "fairness.json").read_bytes(),
                            file_name="fairness.json", mime="application/json")


def render() -> None:
    st.title("Fair lending")
    default = common.current_dataset()
    dataset = st.selectbox("Dataset", DATASETS, index=DATASETS.index(default) if default in DATASETS else 0,
                           key=DATASET_KEY)
    results = saved(dataset)
    with st.expander("Run the analysis", expanded=results is None):
        run_form(dataset)
    results = saved(dataset)
    if results is None:
        common.stop_with(f"No fair-lending analysis of {dataset} yet: run it above (or `lendsafe fairness "
                         f"--dataset {dataset}`).")
    folder = Path(results["folder"])
    stale_warning(dataset, results)
    header(results)
    downloads(results, folder)
    outcomes_section(results, folder)
    reasons_section(results, folder)
    proxies_section(results)
    lda_section(results, folder)


if __name__ == "__main__":
    render()
