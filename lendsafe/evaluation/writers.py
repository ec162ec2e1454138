"""The explanation writers the evaluation compares, and running one over the held-out decisions chunk by
chunk (each chunk one ``Pipeline.run_many`` call, its records saved as it finishes)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lendsafe.config import Settings
from lendsafe.errors import LendSafeError
from lendsafe.evaluation.config import WRITERS, WriterSpec
from lendsafe.evaluation.records import decision_record, failed_record, notice_check
from lendsafe.evaluation.sample import stable_fraction
from lendsafe.explain.pipeline import Pipeline
from lendsafe.explain.writer import GenerationResult, Writer


class Uncached:
    """A language-model writer that always runs the model (honest latency; the generation cache left untouched).

    With ``drafts`` it takes the composer's text as a guess of the output, so the issuing writer decodes
    as in the app and the CLI (the same text as plain greedy, at the speed that ships); without, plain
    batched greedy: how the comparison writer (the base without adapter, whose texts rarely match the
    composer's) runs fastest.
    """

    name = "lora"

    def __init__(self, inner: Any, drafts: bool, max_new_tokens: int = 360):
        self.inner, self.drafts, self.max_new_tokens = inner, drafts, max_new_tokens

    def write(self, decisions: list[Any], prompts: list[list[dict]]) -> list[GenerationResult]:
        return self.inner.write(decisions, prompts, use_cache=False, drafts=self.drafts,
                                max_new_tokens=self.max_new_tokens)

    def describe(self) -> dict:
        return self.inner.describe()


@dataclass
class ExplainRun:
    """What a writer's run needs: settings, sizes, where records go and whom to tell about progress."""

    settings: Settings
    chunk_size: int
    batch1_sample: int
    check_notices: bool
    done: Callable[[str, str], set[str]]                 # (kind, writer) -> ids already recorded
    append: Callable[[list[dict[str, Any]]], None]
    progress: Callable[[int, int, str], None]
    make_generator: Callable[[WriterSpec], Writer]
    knowledge: Any = None
    generators: dict[str, Writer] = field(default_factory=dict)  # writer -> language-model writer (loaded on first use)
    pipelines: dict[tuple[str, str], Any] = field(default_factory=dict)

    def generator(self, spec: WriterSpec) -> Writer | None:
        if spec.use_adapter is not None and spec.name not in self.generators:
            self.generators[spec.name] = self.make_generator(spec)
        return self.generators.get(spec.name)

    def pipeline(self, spec: WriterSpec, dataset: str, fresh: bool = False) -> Any:
        """The writer's pipeline for a dataset; ``fresh`` gives a new one (no retrieval results kept)."""
        key = (spec.name, dataset)
        if fresh or key not in self.pipelines:
            pipeline = Pipeline(self.settings, dataset=dataset, writer=spec.pipeline_writer,
                                generator=self.generator(spec), knowledge=self.knowledge, passages=spec.passages)
            if fresh:
                return pipeline
            self.pipelines[key] = pipeline
        return self.pipelines[key]


def chunks(examples: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Examples grouped by (dataset, reference), in id order, cut into chunks (one run_many call each)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for example in sorted(examples, key=lambda e: e["id"]):
        groups.setdefault((example["dataset"], example["reference"]), []).append(example)
    return [group[i:i + size] for key in sorted(groups) for group in [groups[key]] for i in range(0, len(group), size)]


def decide(pipeline: Any, examples: list[dict[str, Any]]) -> list[Any]:
    """Decisions for a chunk; when the pipeline refuses the chunk, one by one (an error text per refusal)."""
    reference = examples[0]["reference"]
    try:
        return pipeline.run_many([e["application"] for e in examples], reference)
    except LendSafeError:
        results = []
        for example in examples:
            try:
                results.append(pipeline.run(example["application"], reference))
            except LendSafeError as exc:
                results.append(str(exc))
        return results


def run_writer(writer: str, examples: list[dict[str, Any]], run: ExplainRun) -> None:
    """Decide every example not yet recorded with this writer, chunk by chunk, recording as it goes."""
    spec = WRITERS[writer]
    stage = f"explanations: {writer}"
    sample = _batch1_examples(examples, run.batch1_sample if spec.timed_singly else 0)
    total = len(examples) + len(sample)
    done = run.done("decision", writer)
    count = len(done & {e["id"] for e in examples})
    run.progress(count, total, stage)
    for chunk in chunks([e for e in examples if e["id"] not in done], run.chunk_size):
        started = time.perf_counter()
        results = decide(run.pipeline(spec, chunk[0]["dataset"]), chunk)
        wall_ms = (time.perf_counter() - started) * 1000 / len(chunk)
        run.append([_record(example, writer, result, wall_ms, run.check_notices)
                    for example, result in zip(chunk, results)])
        count += len(chunk)
        run.progress(count, total, stage)
    _run_batch1(spec, sample, run, count, total, stage)


def _record(example: dict[str, Any], writer: str, result: Any, wall_ms: float, check_notices: bool) -> dict[str, Any]:
    if isinstance(result, str):
        return failed_record(example, writer, result, wall_ms)
    record = decision_record(example, writer, result, wall_ms)
    if check_notices and result.denied:
        record["notice"] = notice_check(result)
    return record


def _batch1_examples(examples: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    return sorted(examples, key=lambda e: stable_fraction(f"batch1:{e['id']}"))[:size]


def _run_batch1(spec: WriterSpec, sample: list[dict[str, Any]], run: ExplainRun, count: int, total: int,
                stage: str) -> None:
    """Latency of single decisions (batch of one), as an analyst deciding one application sees it."""
    done = run.done("batch1", spec.name)
    for example in sample:
        if example["id"] not in done:
            started = time.perf_counter()
            pipeline = run.pipeline(spec, example["dataset"], fresh=True)
            decision = pipeline.run(example["application"], example["reference"])
            run.append([{"kind": "batch1", "writer": spec.name, "id": example["id"],
                         "latency_ms": decision.latency_ms,
                         "wall_ms": round((time.perf_counter() - started) * 1000, 1)}])
        count += 1
        run.progress(count, total, stage)
