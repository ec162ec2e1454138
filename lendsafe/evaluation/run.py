"""The evaluation harness: held-out evidence that the risk model, its reasons, the explanation writers,
retrieval and notices can be trusted, written to one results file.

``run_evaluation(config, progress=None) -> dict`` runs the sections of ``config`` and returns the
results; ``load_results(path) -> dict`` reads them back (plot paths resolved). Results carry a schema
version and the hashes of every artifact; a results file is only ever resumed with the same
artifacts and settings (otherwise :class:`EvaluationMismatchError`, or start fresh). Sections are
saved as they finish and explanations decision by decision (``<out>.records.jsonl``), so an
interrupted run keeps what it finished and resumes there.

The gate (``run_gate`` + ``check_gate``) is a fixed 34-decision evaluation of the LoRA writer that
fails when the final output is not 100% faithful or first-pass faithfulness falls more than 3 points
below ``data/eval/gate_baseline.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError, LendSafeError
from lendsafe.evaluation.store import (
    EvaluationMismatchError, Progress, ProgressReporter, ResultsStore, artifact_hashes, now, records_path,
)

SCHEMA_VERSION = 1
SECTIONS = ("risk", "reasons", "retrieval", "explanations", "notices")
EVAL_DIR = PROJECT_ROOT / "data" / "eval"
DEFAULT_OUT = EVAL_DIR / "results.json"
GATE_BASELINE = EVAL_DIR / "gate_baseline.json"
DEFAULT_LIMIT = None                      # every held-out denial of the SFT test split (see EvaluationConfig.limit)
DEFAULT_COMPARISON_LIMIT = 60             # of which the base without adapter writes the first 60 (the comparison)
COMPARISON_WRITERS = ("base", "lora_no_passages")   # writers that only serve as a comparison, never issue a notice
GATE_MAX_DROP = 0.03                      # first-pass LoRA faithfulness may fall at most 3 points
NOT_IDENTITY = ("out", "fresh", "plots")  # config fields that do not change what is measured


def _check_subset(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ConfigurationError(f"{name} must be a non-empty selection of {allowed}; got {values}")


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and where the results go."""

    out: Path = field(default=DEFAULT_OUT, metadata={"help": "results JSON (records go to <out>.records.jsonl)"})
    split: str = field(default="test", metadata={"help": "held-out split: the risk models' recorded test rows and "
                                                         "the SFT test split (only 'test')"})
    limit: int | None = field(default=DEFAULT_LIMIT, metadata={
        "help": "held-out explanations evaluated, the first N in a stable hash order (None = all 180 held-out denials)"})
    comparison_limit: int | None = field(default=DEFAULT_COMPARISON_LIMIT, metadata={
        "help": "of those, how many the comparison writer (base, no adapter) writes: the first N of the same order "
                f"(None = all). Default {DEFAULT_COMPARISON_LIMIT}: it writes about 6 s per decision on 2 cores, "
                "and the full evaluation then fits 20 min"})
    writers: tuple[str, ...] = field(default=("lora", "base", "lora_no_passages", "template"), metadata={
        "help": "explanation writers: lora (adapter), base (no adapter), lora_no_passages (the adapter with the "
                "retrieved passages left out of the prompt: the retrieval ablation), template (composer)"})
    sections: tuple[str, ...] = field(default=SECTIONS, metadata={"help": "sections to run: " + ", ".join(SECTIONS)})
    datasets: tuple[str, ...] = field(default=("hmda", "credit"), metadata={"help": "risk models evaluated"})
    sample: str = field(default="limit", metadata={"help": "'limit' (first N by a stable hash) or 'gate' (fixed 34)"})
    kind: str = field(default="full", metadata={"help": "'full' evaluation or 'gate'"})
    chunk_size: int = field(default=16, metadata={"help": "decisions per Pipeline.run_many call (and per save)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generation batch"})
    threads: int | None = field(default=None, metadata={"help": "torch threads for generation (None = generator default)"})
    batch1_sample: int = field(default=8, metadata={
        "help": "decisions also timed one at a time, for the writers the app issues with (lora, template)"})
    perturbation_copies: int = field(default=5, metadata={"help": "perturbed copies per held-out denial"})
    perturbation_scale: float = field(default=0.02, metadata={"help": "relative size of a perturbation of a figure"})
    retrieval_limit: int | None = field(default=None, metadata={"help": "retrieval questions used (None = all)"})
    seed: int = field(default=20261122, metadata={"help": "seed of perturbations and unrelated pairs"})
    use_cache: bool = field(default=False, metadata={"help": "answer repeated prompts from the generation cache "
                                                             "(off: every text is generated and timed)"})
    plots: bool = field(default=True, metadata={"help": "draw the plots next to the results"})
    fresh: bool = field(default=False, metadata={"help": "discard existing results at `out` instead of resuming"})

    def __post_init__(self) -> None:
        from lendsafe.evaluation.explain import WRITERS

        object.__setattr__(self, "out", Path(self.out))
        for name in ("writers", "sections", "datasets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_subset("writers", self.writers, tuple(WRITERS))
        _check_subset("sections", self.sections, SECTIONS)
        _check_subset("split", (self.split,), ("test",))
        _check_subset("sample", (self.sample,), ("limit", "gate"))
        _check_subset("kind", (self.kind,), ("full", "gate"))
        for name in ("limit", "comparison_limit", "chunk_size", "batch_size", "threads", "perturbation_copies",
                     "retrieval_limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{name} must be a whole number >= 1; got {value!r}")
        if self.batch1_sample < 0:
            raise ConfigurationError(f"batch1_sample must be >= 0; got {self.batch1_sample}")
        if not 0 < self.perturbation_scale < 0.5:
            raise ConfigurationError(f"perturbation_scale must be between 0 and 0.5; got {self.perturbation_scale}")

    @classmethod
    def help_table(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def identity(self) -> dict[str, Any]:
        """The settings that decide what is measured (a results file is resumed only with the same)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k not in NOT_IDENTITY}


def gate_config(out: Path | str | None = None, **changes: Any) -> EvaluationConfig:
    """The gate: the LoRA writer on 34 fixed held-out denials, explanations only, no plots."""
    out = Path(out) if out else Settings().home / "eval" / "gate_results.json"
    return EvaluationConfig(out=out, kind="gate", sample="gate", writers=("lora",), sections=("explanations",),
                            batch1_sample=0, plots=False, fresh=True, **changes)


# ---------------------------------------------------------------------------- running

@dataclass
class Run:
    config: EvaluationConfig
    settings: Settings
    store: ResultsStore
    progress: ProgressReporter
    generators: dict[str, Any]
    knowledge: Any = None

    def kb(self) -> Any:
        if self.knowledge is None:
            from lendsafe.knowledge.retrieval import KnowledgeBase

            self.knowledge = KnowledgeBase(self.settings)
        return self.knowledge


def _risk(run: Run) -> dict[str, Any]:
    from lendsafe.evaluation.model import evaluate_risk_model

    out = {}
    for done, name in enumerate(run.config.datasets):
        run.progress(done, len(run.config.datasets), "risk models")
        out[name] = evaluate_risk_model(name, run.settings)
    run.progress(len(run.config.datasets), len(run.config.datasets), "risk models")
    return {"split": "the risk model's recorded test rows (stratified, seeded); baseline: logistic regression "
                     "fitted on the same training rows", "datasets": out}


def _reasons(run: Run) -> dict[str, Any]:
    from lendsafe.evaluation.model import evaluate_reasons

    c, out = run.config, {}
    for done, name in enumerate(c.datasets):
        run.progress(done, len(c.datasets), "reasons")
        out[name] = evaluate_reasons(name, run.settings, c.perturbation_copies, c.perturbation_scale, c.seed)
    run.progress(len(c.datasets), len(c.datasets), "reasons")
    return {"datasets": out}


def _retrieval(run: Run) -> dict[str, Any]:
    from lendsafe.knowledge.retrieval import evaluate_retrieval, load_eval_queries

    queries = load_eval_queries()[: run.config.retrieval_limit]
    run.progress(0, 1, "retrieval")
    report = evaluate_retrieval(run.kb(), queries)
    run.progress(1, 1, "retrieval")
    for name in ("knowledge_base", "vector_only", "bm25"):
        report[name]["misses"] = len(report[name]["misses"])
    return report


SIMPLE_SECTIONS = {"risk": _risk, "reasons": _reasons, "retrieval": _retrieval}


def run_evaluation(config: EvaluationConfig | None = None, progress: Progress | None = None, *,
                   settings: Settings | None = None, generators: dict[str, Any] | None = None,
                   bar: bool = True) -> dict[str, Any]:
    """Run (or resume) the evaluation and return the results dict (also written to ``config.out``).

    ``progress(done, total, stage)`` is called as work completes; ``generators`` maps a writer name
    to a ready generator (tests pass stand-ins); otherwise LoraGenerator is loaded on first use.
    """
    from lendsafe.knowledge.embeddings import set_offline

    set_offline()
    config, settings = config or EvaluationConfig(), settings or Settings()
    generators = dict(generators or {})
    header = {"schema_version": SCHEMA_VERSION, "kind": config.kind, "config": config.identity(),
              "artifacts": artifact_hashes(config, settings, generators)}
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
    return results


def total_seconds(timing: dict[str, Any]) -> float:
    """Seconds spent on the finished sections (explanations summed over writers), across resumed runs."""
    return round(sum(v for k, v in timing.items() if k not in ("this_run_seconds", "total_seconds", "explanations"))
                 + sum(timing.get("explanations", {}).values()), 1)


def _plots(run: Run) -> None:
    from lendsafe.evaluation.plots import make_plots

    run.progress(0, 1, "plots")
    folder = run.config.out.parent
    run.store.results["plots"] = make_plots(run.store.results, folder / "plots", folder, run.store.records)
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


def _make_generator(run: Run) -> Callable[[Any], Any]:
    def make(spec: Any) -> Any:
        from lendsafe.evaluation.explain import Uncached
        from lendsafe.explain.generation import LoraGenerator

        generator = LoraGenerator(run.settings, use_adapter=spec.use_adapter, batch_size=run.config.batch_size,
                                  threads=run.config.threads)
        return generator if run.config.use_cache else Uncached(generator, drafts=bool(spec.use_adapter))
    return make


def held_out_sample(config: EvaluationConfig, settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The explanation examples evaluated, and the report proving they share nothing with training."""
    from lendsafe.evaluation.explain import TRAINING_SPLITS, choose, held_out_examples, load_split, overlap_report

    sft_dir = settings.data_dir / "sft"
    candidates, report = held_out_examples(sft_dir, config.split)
    examples = choose(candidates, config.limit, config.sample)
    training = [e for name in TRAINING_SPLITS for e in load_split(sft_dir, name)]
    ids = json.dumps([e["id"] for e in examples]).encode()
    return examples, {**report, "evaluated": len(examples), "ids_sha256": hashlib.sha256(ids).hexdigest(),
                      "selection": config.sample if config.sample == "gate" else f"limit {config.limit}",
                      "overlap_with_training": overlap_report(examples, training)}


def _explanations(run: Run) -> None:
    from lendsafe.evaluation.explain import ExplainRun, run_writer

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
    from lendsafe.evaluation.explain import (
        needed_passages_recall, notices_summary, summarize_writer, verifier_labelled_set,
    )

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
    from lendsafe.evaluation.explain import text_similarity

    if run.config.kind == "gate":          # the gate compares faithfulness only
        return {}
    run.progress(0, 1, "text similarity")
    similarity = text_similarity(records, references, run.config.seed)
    run.progress(1, 1, "text similarity")
    return similarity


# ---------------------------------------------------------------------------- reading

def load_results(path: Path | str = DEFAULT_OUT) -> dict[str, Any]:
    """A results file, with each plot's ``png`` and ``data`` paths made absolute."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"no evaluation results at {path}; run `lendsafe evaluate`")
    results = json.loads(path.read_text(encoding="utf-8"))
    if results.get("schema_version") != SCHEMA_VERSION:
        raise EvaluationMismatchError(f"{path} has schema_version {results.get('schema_version')!r}; this LendSafe "
                                      f"reads {SCHEMA_VERSION} (re-run `lendsafe evaluate --fresh`)")
    for entry in results.get("plots", {}).values():
        for key in ("png", "data"):
            if entry.get(key):
                entry[key] = str((path.parent / entry[key]).resolve())
    return results


def load_records(path: Path | str = DEFAULT_OUT) -> list[dict[str, Any]]:
    """The per-decision records next to a results file (texts, checks, latencies)."""
    file = records_path(Path(path))
    if not file.is_file():
        raise ArtifactNotFoundError(f"no evaluation records at {file}; run `lendsafe evaluate`")
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if "kind" in row]


# ---------------------------------------------------------------------------- gate

def run_gate(settings: Settings | None = None, progress: Progress | None = None, *, out: Path | str | None = None,
             generators: dict[str, Any] | None = None, bar: bool = True) -> dict[str, Any]:
    """The gate evaluation (always fresh); returns its results."""
    return run_evaluation(gate_config(out), progress, settings=settings, generators=generators, bar=bar)


def gate_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The figures the gate compares: first-pass and final faithfulness of the LoRA writer."""
    section = results["sections"]["explanations"]
    lora = section["writers"]["lora"]
    return {"schema_version": SCHEMA_VERSION, "decisions": lora["decisions"],
            "ids_sha256": section["sample"]["ids_sha256"], "first_pass_rate": lora["first_pass_rate"],
            "final_pass_rate": lora["final_pass_rate"], "fallback_rate": lora["fallback_rate"],
            "failures_by_check": lora["faithfulness"]["first_attempt"]["failures_by_check"],
            "artifacts": results["artifacts"]["writers"]["lora"], "written": now()}


def check_gate(summary: dict[str, Any], baseline: dict[str, Any], max_drop: float = GATE_MAX_DROP) -> list[str]:
    """Why the gate fails (empty when it passes)."""
    problems = []
    if summary["final_pass_rate"] is None or summary["final_pass_rate"] < 1.0:
        problems.append(f"final faithfulness is {_pct(summary['final_pass_rate'])}; every issued explanation must "
                        f"pass verification (100%)")
    if summary["ids_sha256"] != baseline.get("ids_sha256"):
        problems.append("the gate's decisions differ from the baseline's (the SFT test split changed): rewrite the "
                        "baseline with `lendsafe evaluate --gate --write-baseline`")
    floor = baseline["first_pass_rate"] - max_drop
    if summary["first_pass_rate"] is None or summary["first_pass_rate"] < floor - 1e-9:
        problems.append(f"first-pass LoRA faithfulness fell to {_pct(summary['first_pass_rate'])} from the baseline's "
                        f"{_pct(baseline['first_pass_rate'])} (at most {max_drop * 100:.0f} points lower allowed)")
    return problems


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def read_gate_baseline(path: Path | str = GATE_BASELINE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ArtifactNotFoundError(f"no gate baseline at {path}; write it with `lendsafe evaluate --gate "
                                    f"--write-baseline`")
    return json.loads(path.read_text(encoding="utf-8"))


def write_gate_baseline(summary: dict[str, Any], path: Path | str = GATE_BASELINE) -> Path:
    """Commit a gate run as the baseline; refused unless its final faithfulness is 100%."""
    if summary["final_pass_rate"] != 1.0:
        raise LendSafeError(f"final faithfulness is {_pct(summary['final_pass_rate'])}; a baseline needs 100%")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return path


__all__ = ["EvaluationConfig", "EvaluationMismatchError", "SCHEMA_VERSION", "check_gate", "gate_config",
           "gate_summary", "load_records", "load_results", "read_gate_baseline", "run_evaluation", "run_gate",
           "write_gate_baseline"]
