"""Evaluation: what an analyst needs first (are explanations true, do they state anything untrue of the
applicant, are notices complete, how good is the risk model, in words), then the engineering detail
(ROUGE/BERTScore, retrieval, latency) with what each figure means, its floor and ceiling. A run
started here is shown as soon as it finishes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

import lendsafe.evaluation.config as evaluation_config
from lendsafe.errors import LendSafeError
from lendsafe.evaluation.config import WRITERS, EvaluationConfig
from lendsafe.evaluation.results import (
    SECTIONS, EvaluationResults, ExplanationsSection, NoticesSection, ReasonsSection, RetrievalSection, RiskSection, dig,
    load_results,
)
from lendsafe.evaluation.run import run_evaluation, total_seconds
from lendsafe.ui import common, tables

APP_RESULTS = Path("eval") / "app_results.json"      # under LENDSAFE_HOME: runs started from the dashboard
APP_LABEL = "last dashboard run"
JUST_RUN_KEY = "ls_eval_just_run"
ENGINEERING_PLOTS_SKIPPED = ("writer_metrics",)      # the per-writer table drawn as a picture: the table is shown


@dataclass(frozen=True)
class Metric:
    """One figure of the results: where it is, what it means, the worst and best it can be."""

    label: str
    path: tuple[str, ...]
    meaning: str
    floor: str
    ceiling: str


RISK_METRICS = (
    Metric("AUC", ("auc",), "chance that an applicant with the adverse outcome gets a higher risk than one without",
           "0.5 (chance)", "1.0 (perfect ranking)"),
    Metric("KS", ("ks",), "largest gap between the risk distributions of the two outcomes",
           "0 (no separation)", "1 (complete separation)"),
    Metric("Brier", ("brier",), "mean squared error of the predicted probability (lower is better)",
           "base rate × (1 − base rate): everyone given the base rate", "0 (certain and right)"),
)
REASON_METRICS = (
    Metric("same principal reason under ±2% changes", ("perturbation", "same_principal_reason"),
           "share of denials (still denied) whose first reason survives small changes of their figures",
           "0", "1 (reasons never move on noise)"),
    Metric("same reasons in order under ±2% changes", ("perturbation", "same_reasons_in_order"),
           "share whose whole reason list, in order, survives the small changes", "0", "1"),
    Metric("decision flipped by ±2% changes", ("perturbation", "decision_flipped"),
           "share of denials that became approvals after the small changes (applicants near the threshold)",
           "0 (none near the threshold)", "1"),
    Metric("population vs cutoff: same principal reason", ("references", "same_principal_reason"),
           "share of denials whose first reason is the same under both Reg B references; no right value — "
           "low means the reference choice matters", "0", "1"),
    Metric("population vs cutoff: mean Jaccard", ("references", "mean_jaccard"),
           "overlap of the two reason sets (shared / all)", "0 (disjoint)", "1 (identical sets)"),
)
RETRIEVAL_METRICS = (
    Metric("recall@4", ("recall@4",), "share of the expected citations among the top 4 passages",
           "the BM25 keyword baseline (row beside it)", "1"),
    Metric("MRR", ("mrr",), "1 / rank of the first correct passage, averaged", "0", "1 (always first)"),
    Metric("query p50 (ms)", ("query_ms_p50",), "median time of one search", "—", "—"),
)
WRITER_METRICS = (
    Metric("first-pass faithfulness", ("first_pass_rate",), "share of first drafts passing every verification check",
           "0", "1"),
    Metric("final faithfulness", ("final_pass_rate",), "share of issued explanations passing verification after "
           "retry and fallback (must be 1: nothing unverified is issued)", "0", "1"),
    Metric("fallback rate", ("fallback_rate",), "share where the deterministic writer took over", "1", "0"),
    Metric("meaning errors, first attempt", ("meaning_errors", "first_attempt", "rate"),
           "drafts stating something untrue of the applicant (wrong level meaning, false yes/no fact, favourable "
           "fact as reason, missing value as fact, wrong figure, truncation, wrong legal basis)", "1", "0"),
    Metric("meaning errors, final", ("meaning_errors", "final", "rate"),
           "issued texts stating something untrue of the applicant (must be 0)", "1", "0"),
    Metric("writer's own share", ("writer_share",), "share of issued texts written by this writer itself", "0", "1"),
    Metric("supported legal sentences, first attempt", ("grounding", "first_attempt", "supported_rate"),
           "legal and rights sentences resting on a retrieved passage that applies to the decision", "0", "1"),
    Metric("supported legal sentences, final", ("grounding", "final", "supported_rate"),
           "the same for issued texts (must be 1)", "0", "1"),
    Metric("factor precision", ("faithfulness", "first_attempt", "factor_precision"),
           "stated factors that are real principal reasons", "0", "1"),
    Metric("factor recall", ("faithfulness", "first_attempt", "factor_recall"),
           "principal reasons the text states", "0", "1"),
    Metric("number accuracy", ("faithfulness", "first_attempt", "number_accuracy"),
           "figures in the text equal to the applicant's own", "0", "1"),
    Metric("protected-basis rate", ("faithfulness", "first_attempt", "protected_basis_rate"),
           "drafts mentioning a prohibited basis", "1", "0"),
    Metric("forbidden-phrase rate", ("faithfulness", "first_attempt", "forbidden_phrase_rate"),
           "drafts promising or hinting ('reapply', 'guaranteed', …)", "1", "0"),
    Metric("ROUGE-L vs reference", ("text_similarity", "first_attempt", "rougeL"),
           "word overlap with the composer's reference text: imitation, not truth",
           "the unrelated-pairs row below", "1 (the template writer, by construction)"),
    Metric("ROUGE-L unrelated pairs", ("text_similarity", "unrelated_floor", "rougeL"),
           "the same writer scored against another applicant's reference: the floor", "—", "—"),
    Metric("BERTScore F1 vs reference", ("text_similarity", "first_attempt", "bertscore_f1"),
           "embedding similarity with the reference (raw, not rescaled: a narrow range)",
           "the unrelated-pairs row below", "1 (the template writer)"),
    Metric("BERTScore F1 unrelated pairs", ("text_similarity", "unrelated_floor", "bertscore_f1"),
           "the floor of BERTScore for these texts", "—", "—"),
    Metric("latency p50 (ms, batched)", ("latency_ms", "p50"), "wall time per decision in batches", "—", "—"),
    Metric("latency p50 (ms, one at a time)", ("batch1_latency_ms", "p50"), "wall time of a single decision",
           "—", "—"),
)


def _value(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def metric_rows(metrics: tuple[Metric, ...], systems: dict[str, Any]) -> pd.DataFrame:
    """One row per metric, one column per system, then what it means, its floor and ceiling."""
    rows = [{"metric": m.label, **{name: _value(dig(data, m.path)) for name, data in systems.items()},
             "what it means": m.meaning, "floor": m.floor, "ceiling": m.ceiling} for m in metrics]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- results files

def result_files() -> dict[str, Path]:
    """Results that exist: the committed evaluation and the last run started from the dashboard."""
    candidates = {"committed evaluation (data/eval/results.json)": evaluation_config.DEFAULT_OUT,
                  APP_LABEL: common.app_settings().home / APP_RESULTS}
    return {label: path for label, path in candidates.items() if path.is_file()}


def open_results() -> EvaluationResults | None:
    files = result_files()
    if not files:
        st.info("No results yet: run an evaluation below (or `lendsafe evaluate`, which writes "
                "data/eval/results.json).")
        return None
    if st.session_state.pop(JUST_RUN_KEY, False) and APP_LABEL in files:
        st.session_state["ls_eval_file"] = APP_LABEL            # show the run that just finished
    if st.session_state.get("ls_eval_file") not in files:
        st.session_state["ls_eval_file"] = max(files, key=lambda label: files[label].stat().st_mtime)
    label = st.selectbox("Results", list(files), key="ls_eval_file")
    try:
        return load_results(files[label])
    except LendSafeError as exc:
        st.error(f"Those results cannot be read: {exc}")
        return None


# ---------------------------------------------------------------------------- running

def run_form() -> None:
    settings = common.app_settings()
    with st.form("ls_eval_form"):
        st.write("Run the evaluation on held-out data; results go to "
                 f"`{settings.home / APP_RESULTS}` (the committed results are not touched).")
        cols = st.columns(2)
        limit = cols[0].number_input("Held-out explanations (limit)", min_value=1, max_value=180, value=8, step=1)
        writers = cols[1].multiselect("Writers", list(WRITERS), default=["template"],
                                      help="lora and base load the language model (slow on CPU)")
        sections = st.multiselect("Sections", list(SECTIONS), default=list(SECTIONS))
        datasets = st.multiselect("Risk models", common.available_datasets(), default=common.available_datasets())
        submitted = st.form_submit_button("Run the evaluation", type="primary")
    if not submitted:
        return
    try:
        config = EvaluationConfig(out=settings.home / APP_RESULTS, limit=int(limit), writers=tuple(writers),
                                  sections=tuple(sections), datasets=tuple(datasets), fresh=True,
                                  perturbation_copies=2, batch1_sample=min(4, int(limit)))
    except LendSafeError as exc:
        st.error(str(exc))
        return
    run(config, settings)


def run(config: EvaluationConfig, settings: Any) -> None:
    bar = st.progress(0.0, text="Starting the evaluation…")
    common.engine().wait_for_imports()

    def progress(done: int, total: int, stage: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done} of {total}")

    try:
        results = run_evaluation(config, progress, settings=settings, bar=False)
    except LendSafeError as exc:
        st.error(f"The evaluation stopped: {exc}")
        return
    bar.progress(1.0, text=f"Done in {results.timing['this_run_seconds']} s")
    st.session_state[JUST_RUN_KEY] = True
    st.toast("Evaluation finished: its results are shown below", icon=":material/analytics:")


# ---------------------------------------------------------------------------- showing

def show_table(frame: pd.DataFrame) -> None:
    """A metric table at full height, the explanation columns wide."""
    wide = {"what it means": st.column_config.TextColumn(width="large"),
            "floor": st.column_config.TextColumn(width="medium"), "ceiling": st.column_config.TextColumn(width="medium")}
    st.dataframe(frame, hide_index=True, width="stretch", height=35 * (len(frame) + 1) + 3, column_config=wide)


def risk_section(section: RiskSection) -> None:
    st.subheader("Risk models (held-out test rows)")
    st.caption(section.split)
    for name, data in section.datasets.items():
        held = data.get("held_out", {})
        st.markdown(f"**{name}** — predicts {data.get('outcome')}; {held.get('test_rows')} test rows, "
                    f"{held.get('shared_rows')} shared with training; base rate "
                    f"{dig(data, ('model', 'base_rate')) or 0:.1%}")
        show_table(metric_rows(RISK_METRICS, {"model": data["model"], "logistic baseline": data["logistic_baseline"]}))


def reasons_section(section: ReasonsSection) -> None:
    st.subheader("Reason stability")
    show_table(metric_rows(REASON_METRICS, section.datasets))


def retrieval_section(section: RetrievalSection) -> None:
    st.subheader("Retrieval")
    st.caption(f"{section.queries} questions over {section.passages} passages; ranking "
               f"{section.ranking} (keyword weight {section.keyword_weight}).")
    systems = {name: getattr(section, name) for name in ("knowledge_base", "vector_only", "bm25")
               if getattr(section, name)}
    show_table(metric_rows(RETRIEVAL_METRICS, systems))


def explanations_section(section: ExplanationsSection) -> None:
    st.subheader("Explanation writers (held-out denials)")
    sample = section.sample
    overlap = sample.get("overlap_with_training", {})
    selection = "all of them" if sample.get("selection") == "limit None" else sample.get("selection")
    st.caption(f"{sample.get('evaluated')} held-out decisions ({selection}); shared with training: "
               f"{overlap.get('shared_applications')} applications, {overlap.get('shared_prompts')} prompts.")
    show_table(metric_rows(WRITER_METRICS, section.writers))
    needed = section.passages_needed
    if needed:
        st.caption(f"Retrieval of the passages each decision needs (a rule for every reason, every right that "
                   f"applies): recall {needed['recall']} ({needed['retrieved']} of {needed['needed']}).")
    labelled = section.verifier_labelled_set
    if labelled:
        st.caption(f"Verifier on its labelled set ({labelled['bad']} known-bad texts, {labelled['good']} correct "
                   f"paraphrases): recall {labelled['recall']}, precision {labelled['precision']}, "
                   f"{labelled['false_alarms']} false alarm(s).")
    for note in section.notes:
        st.caption("• " + note)


def notices_section(section: NoticesSection) -> None:
    st.subheader("Notices")
    rate = section.completeness_pass_rate
    st.write(f"{section.notices} notices rendered from the {section.writer} writer's decisions; "
             f"completeness check pass rate {rate if rate is not None else 'n/a'} (floor 0, ceiling 1: every "
             "notice must pass).")
    if section.failures_by_check:
        st.json(section.failures_by_check)


SECTION_VIEWS = {"risk": risk_section, "reasons": reasons_section, "retrieval": retrieval_section,
                 "explanations": explanations_section, "notices": notices_section}


def _evaluation_time(timing: dict[str, Any]) -> str:
    """'N s of evaluation' (the total, or what the finished sections took so far)."""
    if timing.get("total_seconds") is not None:
        return f"{timing['total_seconds']} s of evaluation"
    return f"{total_seconds(timing)} s of evaluation so far"


def sample_words(config: dict[str, Any], sample: dict[str, Any]) -> str:
    """'all 183 held-out denials' or 'the first 8 held-out denials' (never 'limit None')."""
    evaluated = sample.get("evaluated")
    return (f"all {evaluated} held-out denials" if config.get("limit") is None else
            f"{evaluated} held-out denials (a sample limited to {config['limit']})")


def main_writer(writers: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The writer the dashboard issues with: the language model when it was evaluated, else the first."""
    for name in ("lora", "template", *writers):
        if name in writers:
            return name, writers[name]
    return None


def fraction(count: Any, total: Any) -> str:
    return f"{count} of {total}" if count is not None and total is not None else "n/a"


def analyst_summary(results: EvaluationResults) -> None:
    """Four answers in words: faithful explanations, untrue statements, complete notices, risk-model quality."""
    st.subheader("For analysts")
    cols = st.columns(3)
    explanations = results.explanations or ExplanationsSection()
    chosen = main_writer(explanations.writers)
    if chosen:
        name, writer = chosen
        final, first = dig(writer, ("final_pass_rate",)), dig(writer, ("first_pass_rate",))
        errors = dig(writer, ("meaning_errors", "final")) or {}
        first_errors = dig(writer, ("meaning_errors", "first_attempt")) or {}
        cols[0].metric("Explanations that passed every check", f"{(final or 0):.1%}",
                       help="issued explanations whose every sentence the verifier found true of the decision; "
                            "must be 100%: nothing unverified is issued")
        cols[0].caption(f"{engine_words(name)}: {(first or 0):.1%} passed on the first draft; the template writer "
                        f"took over for {(dig(writer, ('fallback_rate',)) or 0):.1%}. Over "
                        f"{sample_words(results.config, explanations.sample)}.")
        cols[1].metric("Issued explanations stating something untrue", fraction(errors.get("untrue_texts"), errors.get("texts")),
                       help="a wrong level meaning, a false yes/no fact, a favourable fact given as a reason, a missing "
                            "value stated as fact, a wrong figure, a cut-off text or a wrong legal basis")
        cols[1].caption(f"First drafts before verification: {fraction(first_errors.get('untrue_texts'), first_errors.get('texts'))} "
                        "stated something untrue; the verifier stopped every one.")
    notices = results.notices
    if notices:
        rate = notices.completeness_pass_rate
        cols[2].metric("Notices complete", f"{rate:.0%}" if rate is not None else "n/a",
                       help="notices whose PDF contains every element Reg B and the FCRA require")
        cols[2].caption(f"{notices.notices} notices rendered and checked.")
    risk_words(results.risk or RiskSection())


def engine_words(writer: str) -> str:
    return {"lora": "Language model", "template": "Template writer", "base": "Base model without the adapter"}.get(writer, writer)


def risk_words(section: RiskSection) -> None:
    """Each risk model's quality in a sentence."""
    for name, data in section.datasets.items():
        model, baseline = data.get("model", {}), data.get("logistic_baseline", {})
        if model.get("auc") is None:
            continue
        st.markdown(tables.md_escape(
            f"Risk model ({name}): given one applicant with {data.get('outcome', 'the adverse outcome')} and one "
            f"without, it gives the first a higher risk {model['auc']:.0%} of the time (chance: 50%; a plain "
            f"logistic regression: {baseline.get('auc', 0):.0%}). Its predicted risks are off by "
            f"{model.get('brier', 0) ** 0.5 * 100:.0f} percentage points (root mean square: the root of the Brier "
            f"score), on "
            f"{data.get('held_out', {}).get('test_rows')} held-out applications."))


def show(results: EvaluationResults) -> None:
    status = "complete" if results.complete else "incomplete (resume with `lendsafe evaluate`)"
    st.caption(f"Results {status}; updated {results.updated}; {_evaluation_time(results.timing)}.")
    analyst_summary(results)
    st.divider()
    st.subheader("Detail for engineers")
    st.caption("ROUGE and BERTScore measure imitation of the template writer's text, not truth: read them beside "
               "their unrelated-pairs floor and the faithfulness figures above.")
    for name, view in SECTION_VIEWS.items():
        if name in results.sections:
            view(results.sections[name])
    plots = {key: entry for key, entry in results.plots.items() if key not in ENGINEERING_PLOTS_SKIPPED}
    if plots:
        st.subheader("Plots")
    for entry in plots.values():
        if Path(entry["png"]).is_file():
            st.image(entry["png"], caption=entry.get("title", ""))


def render() -> None:
    st.title("Evaluation")
    with st.expander("Run an evaluation", expanded=not result_files()):
        run_form()
    results = open_results()
    if results is not None:
        show(results)


if __name__ == "__main__":
    render()
