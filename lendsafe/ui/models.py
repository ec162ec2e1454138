"""Models and data: the risk model card, the explanation adapter card, the corpus and index status."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from lendsafe.errors import LendSafeError
from lendsafe.ui import common

MONOTONE_WORDS = {1: "raises risk as it grows", -1: "lowers risk as it grows", 0: "unconstrained"}
EXCLUSION_WORDS = {"protected": "prohibited basis", "not_applicant": "not the applicant's own record",
                   "education": "possible proxy", "income_type": "income type that may not be discounted"}
ADAPTER_FILES = ("lendsafe_adapter.json", "adapter_config.json", "loss.json", "loss_curve.png")


# ---------------------------------------------------------------------------- risk model

@st.cache_data(show_spinner=False, max_entries=8)
def risk_card(dataset: str, settings_key: str) -> dict[str, Any]:
    """The risk model card: metadata.json of the model beside its dataset spec."""
    from lendsafe.decide.specs import load_spec
    from lendsafe.decide.reasons import load_catalog
    from lendsafe.decide.risk import model_dir

    folder = model_dir(dataset, common.app_settings(dataset))
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    spec, catalog = load_spec(dataset), load_catalog()
    features = [{"field": f.name, "label": f.label, "type": f.type,
                 "range": f"{f.min:g} to {f.max:g}" if f.min is not None and f.max is not None else
                 (", ".join(f.categories) if f.categories else ""),
                 "model input": f.model_input, "direction": MONOTONE_WORDS[f.monotone] if f.model_input else "",
                 "reason code": f.reason or "", "reason statement": catalog[f.reason].statement if f.reason else "",
                 "meaning": f.help} for f in spec.features]
    excluded = [{"column": e["column"], "kind": EXCLUSION_WORDS.get(e["kind"], e["kind"]), "why excluded": e["why"]}
                for e in meta["excluded_columns"]]
    return {"spec": {"title": spec.title, "source": spec.source, "outcome": spec.outcome, "path": str(spec.path)},
            "meta": meta, "features": features, "excluded": excluded, "folder": str(folder)}


def metrics_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    test, baseline = metrics["test"], metrics["logistic_baseline_test"]
    notes = {"auc": "chance of ranking a denied applicant above an approved one (0.5 = chance, 1 = perfect)",
             "ks": "largest gap between the score distributions of the two outcomes (0 = none, 1 = full separation)",
             "brier": "mean squared error of the predicted probability (0 = perfect; lower is better)"}
    return [{"metric": name.upper() if name != "brier" else "Brier", "XGBoost (monotone)": round(test[name], 4),
             "logistic baseline": round(baseline[name], 4), "what it means": note} for name, note in notes.items()]


def risk_section(dataset: str) -> None:
    import pandas as pd

    try:
        card = risk_card(dataset, common.settings_key(common.app_settings(dataset)))
    except (LendSafeError, OSError, KeyError) as exc:
        st.warning(f"No risk model card for {dataset}: {exc}. Run `lendsafe train-risk {dataset}`.")
        return
    meta, spec = card["meta"], card["spec"]
    st.header(f"Risk model — {spec['title']}")
    st.write(f"**Data source:** {spec['source']} · {meta['data']['rows']:,} rows · sha256 "
             f"`{meta['data']['sha256'][:16]}…`  \n**Predicts:** {spec['outcome']} · **threshold** "
             f"{meta['threshold']} (version {meta['threshold_version']}) · **model sha256** "
             f"`{meta['model_sha256'][:16]}…` · trained with xgboost {meta['versions']['xgboost']}")
    metrics = meta["metrics"]
    cv = metrics["cv_auc"]
    st.subheader("Metrics on the held-out test rows")
    st.caption(f"{metrics['test']['n']} test rows never seen in training; cross-validated AUC on the training "
               f"part {cv['mean']:.3f} ± {cv['std']:.3f}; base rate {metrics['test']['base_rate']:.1%}.")
    st.dataframe(pd.DataFrame(metrics_table(metrics)), hide_index=True, width="stretch")
    confusion = metrics["test"]["confusion"]
    st.caption("At the threshold: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in confusion.items()
                                               if k != "threshold"))
    calibration = pd.DataFrame(metrics["test"]["calibration"])
    if not calibration.empty:
        st.markdown("**Calibration** on the test rows: observed rate against mean predicted risk in ten "
                    "equal-count groups; the grey line is perfect calibration.")
        st.altair_chart(calibration_chart(calibration), width="stretch")
    st.subheader("Features")
    st.dataframe(pd.DataFrame(card["features"]), hide_index=True, width="stretch")
    st.subheader("Excluded attributes and why")
    st.dataframe(pd.DataFrame(card["excluded"]), hide_index=True, width="stretch")
    st.subheader("Reason references (Reg B comment 9(b)(2)-5)")
    for name, ref in meta["references"].items():
        st.write(f"**{name}:** {ref['definition']} ({ref['count']} applicants)")
    with st.expander("Training parameters"):
        st.json(meta["params"])


def calibration_chart(calibration) -> Any:
    import altair as alt
    import pandas as pd

    top = float(max(calibration["mean_predicted"].max(), calibration["observed_rate"].max(), 0.05))
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, top], "y": [0.0, top]})).mark_line(
        color="grey", strokeDash=[4, 4]).encode(x="x:Q", y="y:Q")
    points = alt.Chart(calibration).mark_line(point=True).encode(
        x=alt.X("mean_predicted:Q", title="mean predicted risk", axis=alt.Axis(format="%")),
        y=alt.Y("observed_rate:Q", title="observed rate", axis=alt.Axis(format="%")),
        tooltip=["mean_predicted", "observed_rate", "count"])
    return (diagonal + points).properties(height=240)


# ---------------------------------------------------------------------------- adapter

def adapter_status(adapter_dir: Path) -> dict[str, Any]:
    """What is on disk for the adapter: its manifest, PEFT config, losses and training log."""
    files = {name: adapter_dir / name for name in ADAPTER_FILES}
    read = lambda name: json.loads(files[name].read_text(encoding="utf-8")) if files[name].is_file() else None  # noqa: E731
    log = adapter_dir.parent / f"{adapter_dir.name}.train.log"
    log_tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:] if log.is_file() else []
    return {"manifest": read("lendsafe_adapter.json"), "config": read("adapter_config.json"),
            "loss": read("loss.json"), "curve": files["loss_curve.png"] if files["loss_curve.png"].is_file() else None,
            "log_tail": log_tail}


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def adapter_section() -> None:
    settings = common.app_settings()
    status = adapter_status(settings.adapter_dir)
    st.header("Explanation adapter")
    manifest = status["manifest"]
    if not manifest or not manifest.get("trained"):
        st.warning(f"Not trained: no trained LoRA adapter in {settings.adapter_dir}. Explanations come from "
                   "the deterministic template writer until `lendsafe finetune` (scripts/train_adapter.sh) "
                   "writes it.")
        if status["log_tail"]:
            st.caption("Training log: " + " · ".join(status["log_tail"]))
        return
    import pandas as pd

    st.write(f"**Base model:** {manifest.get('base_model')} (sha256 `{str(manifest.get('base_sha256'))[:16]}…`) · "
             f"**adapter sha256** `{str(manifest.get('adapter_sha256'))[:16]}…` · {manifest.get('steps')} steps · "
             f"final train loss {_rounded(manifest.get('final_train_loss'))} · validation loss "
             f"{_rounded(manifest.get('final_validation_loss'))}")
    st.markdown("**Data:** supervised examples from `data/sft` (composer-written targets for real decisions, "
                "split by application)")
    examples = manifest.get("examples", {})
    if examples:
        st.dataframe(pd.DataFrame([{"split": name, **counts} for name, counts in examples.items()]), hide_index=True)
    if status["curve"] is not None:
        st.image(str(status["curve"]), caption="loss curve (loss_curve.png)")
    left, right = st.columns(2)
    with left.expander("Hyperparameters"):
        st.json(manifest.get("hyperparameters", {}))
    with right.expander("PEFT adapter config"):
        st.json(status["config"] or {})


# ---------------------------------------------------------------------------- corpus and index

def corpus_section() -> None:
    import pandas as pd

    st.header("Regulation corpus and index")
    common.engine().wait_for_imports()
    kb = common.knowledge()
    try:
        passages = kb.passages
    except (LendSafeError, OSError) as exc:
        st.warning(f"Corpus unavailable: {exc}")
        return
    by_source = pd.DataFrame([{"source": p.source, "citation": p.citation} for p in passages])
    st.write(f"**{len(passages)} passages** from {kb.source} · corpus sha256 `{kb.corpus_sha256[:16]}…` · "
             f"index at {kb.location}")
    st.dataframe(by_source.groupby("source").size().rename("passages").reset_index(), hide_index=True)
    if st.button("Check the index (builds it when missing or stale)", key="ls_index_check"):
        with st.spinner("Opening the index…"):
            try:
                status = kb.ensure_index()
            except (LendSafeError, OSError) as exc:
                st.error(f"Index unavailable: {exc}")
                return
        built = "rebuilt now" if status["built"] else "up to date"
        st.success(f"Index {built}: {status['count']} passages in {status['collection']} ({status['seconds']} s).")


def render() -> None:
    st.title("Models and data")
    risk_section(common.current_dataset())
    st.divider()
    adapter_section()
    st.divider()
    corpus_section()


if __name__ == "__main__":
    render()
