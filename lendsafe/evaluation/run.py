"""The evaluation harness: held-out evidence that the risk model, its reasons, the explanation writers,
retrieval and notices can be trusted, written to one results file.

``run_evaluation(config, progress=None) -> EvaluationResults`` runs the sections of ``config`` and returns
the results (typed: ``lendsafe.evaluation.results``, where ``load_results`` reads them back). Results carry
a schema version and the hashes of every artifact; a results file is only ever resumed with the same
artifacts and settings (otherwise :class:`EvaluationMismatchError`, or start fresh). Sections are saved as
they finish and explanations decision by decision (``<out>.records.jsonl``), so an interrupted run keeps
what it finished and resumes there. The gate is ``lendsafe.evaluation.gate``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from lendsafe.config import Settings
from lendsafe.evaluation.config import COMPARISON_WRITERS, WRITERS, EvaluationConfig, WriterSpec
from lendsafe.evaluation.model import evaluate_reasons, evaluate_risk_model
from lendsafe.evaluation.plots import make_plots
from lendsafe.evaluation.results import SCHEMA_VERSION, EvaluationResults
from lendsafe.evaluation.sample import TRAINING_SPLITS, choose, held_out_examples, load_split, overlap_report
from lendsafe.evaluation.store import Progress, ProgressReporter, ResultsStore, artifact_hashes
from lendsafe.evaluation.summaries import (
    needed_passages_recall, notices_summary, summarize_writer, text_similarity, verifier_labelled_set,
)
from lendsafe.evaluation.writers import ExplainRun, Uncached, run_writer
from lendsafe.explain.generation import LoraGenerator
from lendsafe.explain.writer import Writer
from lendsafe.knowledge.embeddings import set_offline
from lendsafe.knowledge.retrieval import KnowledgeBase, evaluate_retrieval, load_eval_queries


# ---------------------------------------------------------------------------- running

@dataclass
class Run:
    config: EvaluationConfig
    settings: Settings
    store: ResultsStore
    progress: ProgressReporter
    generators: dict[str, Writer]
    knowledge: Any = None

    def kb(self) -> Any:
        if self.knowledge is None:
            self.knowledge = KnowledgeBase(self.settings)
        return self.knowledge


def _risk(run: Run) -> dict[str, Any]:
    out = {}
    for done, name in enumerate(run.config.datasets):
        run.progress(done, len(run.config.datasets), "risk models")
        out[name] = evaluate_risk_model(name, run.settings)
    run.progress(len(run.config.datasets), len(run.config.datasets), "risk models")
    return {"split": "the risk model's recorded test rows (stratified, seeded); baseline: logistic regression "
                     "fitted on the same training rows", "datasets": out}


def _reasons(run: Run) -> dict[str, Any]:
    c, out = run.config, {}
    for done, name in enumerate(c.datasets):
        run.progress(done, len(c.datasets), "reasons")
        out[name] = evaluate_reasons(name, run.settings, c.perturbation_copies, c.perturbation_scale, c.seed)
    run.progress(len(c.datasets), len(c.datasets), "reasons")
    return {"datasets": out}


def _retrieval(run: Run) -> dict[str, Any]:
    queries = load_eval_queries()[: run.config.retrieval_limit]
    run.progress(0, 1, "retrieval")
    report = evaluate_retrieval(run.kb(), queries)
    run.progress(1, 1, "retrieval")
    for name in ("knowledge_base", "vector_only", "bm25"):
        report[name]["misses"] = len(report[name]["misses"])
    return report


SIMPLE_SECTIONS = {"risk": _risk, "reasons": _reasons, "retrieval": _retrieval}


def run_evaluation(config: EvaluationConfig | None = None, progress: Progress | None = None, *,
                   settings: Settings | None = None, generators: dict[str, Writer] | None = None,
                   bar: bool = True) -> EvaluationResults:
    """Run (or resume) the evaluation and return the results (also written to ``config.out``).

    ``progress(done, total, stage)`` is called as work completes; ``generators`` maps a writer name
    to a ready language-model ``Writer`` (tests pass stand-ins); otherwise LoraGenerator is loaded on first use.
    """
    set_offline()
    config, settings = config or EvaluationConfig(), settings or Settings()
    generators = dict(generators or {})
    header = {"schema_version": SCHEMA_VERSION, "kind": config.kind, "config": config.identity(),
              "artifacts": artifact_hashes(config, settings, generators, {w: WRITERS[w].use_adapter for w in WRITERS})}
    run = Run(config, settings, ResultsStore(config.out, header, fresh=config.fresh), ProgressReporter(progress, bar),
              generators)
    started = time.perf_counter()
    try:
        for name, section in SIMPLE_SECTIONS.items():
            if name in config.sections and name not in run.store.results["sections"]:
                began = time.perf_counter()
                run.store.put(name, section(run), time.perf_counter() - began)
        if {"explanations", "notices"} & set(config.sections):
            _explanations(run)
        if config.plots:
            _plots(run)
    finally:
        run.progress.close()
    results = run.store.results
    results["complete"] = all(s in results["sections"] for s in config.sections)
    results["timing"]["this_run_seconds"] = round(time.perf_counter() - started, 1)
    results["timing"]["total_seconds"] = total_seconds(results["timing"])
    results["machine"] = {"cpu_count": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    run.store.save()
    return EvaluationResults.from_dict(results)


def total_seconds(timing: dict[str, Any]) -> float:
    """Seconds spent on the finished sections (explanations summed over writers), across resumed runs."""
    return round(sum(v for k, v in timing.items() if k not in ("this_run_seconds", "total_seconds", "explanations"))
                 + sum(timing.get("explanations", {}).values()), 1)


def _plots(run: Run) -> None:
    run.progress(0, 1, "plots")
    folder = run.config.out.parent
    results = EvaluationResults.from_dict(run.store.results)
    run.store.results["plots"] = make_plots(results, folder / "plots", folder, run.store.records)
    run.progress(1, 1, "plots")
    run.store.save()


# ---------------------------------------------------------------------------- explanations

NOTES = (
    "Reference texts were written by the deterministic composer for held-out applications (the SFT test-split "
    "targets). The template writer scoring about 1.0 against them is expected: it is a ceiling, not a claim.",
    "ROUGE and BERTScore measure imitation of the reference wording, not truth; the faithfulness figures come "
    "from lendsafe.explain.verify, and the final text of every writer is verified before it could be issued.",
    "Unrelated-pairs floor: each writer's first attempt scored against the reference of another applicant of the "
    "same dataset and decision.",
    "BERTScore: all-MiniLM-L6-v2 (local), layer 6, raw values without baseline rescaling.",
    "Meaning errors count texts the verifier's truth checks reject: a coded value described with another level's "
    "meaning or a false yes/no fact, a factor that is not a principal reason, a reason described as favourable, a "
    "missing value stated as fact, a wrong figure, a truncated text, a sample form cited as the legal basis or a "
    "legal sentence that no retrieved passage supports.",
    "Grounding: every legal or rights sentence must rest on a retrieved passage that applies to the decision (its "
    "numbers and periods equal the passage's, its content words the passage's own or accepted paraphrases). The "
    "lora_no_passages writer is the same adapter with the passages left out of its prompt: what retrieval adds.",
    "Approvals are not in the held-out sample: an approval prompt names only the product, so every approval "
    "prompt also occurs in the training data.",
)


def _make_generator(run: Run) -> Callable[[WriterSpec], Writer]:
    def make(spec: WriterSpec) -> Writer:
        generator = LoraGenerator(run.settings, use_adapter=spec.use_adapter, batch_size=run.config.batch_size,
                                  threads=run.config.threads)
        return generator if run.config.use_cache else Uncached(generator, drafts=bool(spec.use_adapter))
    return make


def held_out_sample(config: EvaluationConfig, settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The explanation examples evaluated, and the report proving they share nothing with training."""
    sft_dir = settings.data_dir / "sft"
    candidates, report = held_out_examples(sft_dir, config.split)
    examples = choose(candidates, config.limit, config.sample)
    training = [e for name in TRAINING_SPLITS for e in load_split(sft_dir, name)]
    ids = json.dumps([e["id"] for e in examples]).encode()
    return examples, {**report, "evaluated": len(examples), "ids_sha256": hashlib.sha256(ids).hexdigest(),
                      "selection": config.sample if config.sample == "gate" else f"limit {config.limit}",
                      "overlap_with_training": overlap_report(examples, training)}


def _explanations(run: Run) -> None:
    examples, sample = held_out_sample(run.config, run.settings)
    writers = run.config.writers if "explanations" in run.config.sections else run.config.writers[:1]
    explain = ExplainRun(run.settings, run.config.chunk_size, run.config.batch1_sample,
                         check_notices=False, done=run.store.done, append=run.store.append,
                         progress=run.progress, make_generator=_make_generator(run), knowledge=run.kb(),
                         generators=dict(run.generators))
    sample["comparison_evaluated"] = sum(len(writer_examples(run.config, w, examples)) for w in writers
                                         if w in COMPARISON_WRITERS)
    for index, writer in enumerate(writers):
        explain.check_notices = "notices" in run.config.sections and index == 0
        mine = writer_examples(run.config, writer, examples)
        run_writer(writer, mine, explain)
        run.store.results["timing"].setdefault("explanations", {})[writer] = _writer_seconds(run, writer, mine)
        run.store.save()
    _summarize_explanations(run, writers, examples, sample)


def writer_examples(config: EvaluationConfig, writer: str, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The examples ``writer`` writes: all of them, or the first ``comparison_limit`` for a comparison writer."""
    return examples[: config.comparison_limit] if writer in COMPARISON_WRITERS else examples


def _writer_seconds(run: Run, writer: str, examples: list[dict[str, Any]]) -> float:
    ids = {e["id"] for e in examples}
    rows = run.store.select("decision", writer, ids) + run.store.select("batch1", writer, ids)
    return round(sum(r["wall_ms"] for r in rows) / 1000, 1)


def _summarize_explanations(run: Run, writers: tuple[str, ...], examples: list[dict[str, Any]],
                            sample: dict[str, Any]) -> None:
    """Per-writer summaries (text similarity too, except in the gate) and the notices summary."""
    ids = {e["id"] for e in examples}
    records = {w: run.store.select("decision", w, ids) for w in writers}
    if "explanations" in run.config.sections:
        references = {e["id"]: e["target"] for e in examples}
        similarity = _similarity(run, records, references)
        summaries = {w: {**summarize_writer(w, records[w], run.store.select("batch1", w, ids)),
                         "text_similarity": similarity.get(w)} for w in writers}
        composer = records.get("template", [])
        sample["composer_reproduces_reference"] = sum(r["final"]["text"] == references[r["id"]] for r in composer)
        run.store.put("explanations", {"sample": sample, "notes": list(NOTES), "writers": summaries,
                                       "verifier_labelled_set": verifier_labelled_set(),
                                       "passages_needed": needed_passages_recall(examples, run.kb(), run.settings)})
    if "notices" in run.config.sections:
        run.store.put("notices", notices_summary(records[writers[0]]))


def _similarity(run: Run, records: dict[str, list[dict[str, Any]]], references: dict[str, str]) -> dict[str, Any]:
    if run.config.kind == "gate":          # the gate compares faithfulness only
        return {}
    run.progress(0, 1, "text similarity")
    similarity = text_similarity(records, references, run.config.seed)
    run.progress(1, 1, "text similarity")
    return similarity
