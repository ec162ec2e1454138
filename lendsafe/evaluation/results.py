"""The evaluation's results as typed objects, the one reader of a results file, and the one key-path walker.

On disk the results stay one JSON object (schema ``SCHEMA_VERSION``) with per-decision records beside it
(``<out>.records.jsonl``). ``load_results(path)`` reads the file into ``EvaluationResults``;
``EvaluationResults.from_dict`` types a results dict and ``to_dict`` gives the plain dict back (the same
keys and values, for JSON). Keys a class does not name are kept in its ``extra`` and written back.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from lendsafe.errors import ArtifactNotFoundError, LendSafeError

SCHEMA_VERSION = 1
SECTIONS = ("risk", "reasons", "retrieval", "explanations", "notices")


class EvaluationMismatchError(LendSafeError):
    """A results file holds results of other artifacts or settings, or of another schema; they are never mixed."""


def dig(data: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` through dicts and result objects; None as soon as a key is missing."""
    for key in path:
        if isinstance(data, Mapping):
            data = data.get(key)
        elif key in _field_names(type(data)):
            data = getattr(data, key)
        else:
            return None
    return data


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "extra") if hasattr(cls, "__dataclass_fields__") else ()


def _typed(cls: type, data: Mapping[str, Any], **converted: Any) -> Any:
    """``cls`` from a dict: its named keys (missing ones left at their default), the rest kept in ``extra``."""
    names = _field_names(cls)
    values = {name: data[name] for name in names if name in data}
    return cls(**{**values, **converted}, extra={k: v for k, v in data.items() if k not in names})


def _plain(value: Any) -> Any:
    """The plain dict of a result object (fields in order, then ``extra``; an absent optional field left out)."""
    if hasattr(type(value), "__dataclass_fields__"):
        optional = getattr(type(value), "OMITTED_WHEN_NONE", ())
        named = {name: _plain(getattr(value, name)) for name in _field_names(type(value))
                 if not (name in optional and getattr(value, name) is None)}
        return {**named, **value.extra}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class WriterSummary:
    """One writer's figures over the held-out decisions (first attempt, final text, latency, similarity)."""

    label: str = ""
    decisions: int = 0
    first_pass_rate: float | None = None
    passed_on_retry_rate: float | None = None
    fallback_rate: float | None = None
    final_pass_rate: float | None = None
    not_issued: int = 0
    first_pass_rate_by_group: dict[str, float | None] = field(default_factory=dict)
    faithfulness: dict[str, dict[str, Any]] = field(default_factory=dict)     # first_attempt / final
    meaning_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    writer_share: float | None = None
    grounding: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency_ms: dict[str, Any] = field(default_factory=dict)
    batch1_latency_ms: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    text_similarity: dict[str, dict[str, Any]] | None = None               # None in the gate
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WriterSummary:
        return _typed(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True)
class RiskSection:
    split: str = ""
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)     # dataset -> model and baseline metrics
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReasonsSection:
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)     # dataset -> perturbation, references
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrievalSection:
    queries: int = 0
    k: int = 0
    ranking: str = ""
    keyword_weight: float | None = None
    corpus_sha256: str = ""
    passages: int = 0
    knowledge_base: dict[str, Any] = field(default_factory=dict)         # recall@k, MRR, latency of the retriever
    vector_only: dict[str, Any] = field(default_factory=dict)
    bm25: dict[str, Any] = field(default_factory=dict)
    recall_gain_over_bm25: float | None = None
    mrr_gain_over_bm25: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExplanationsSection:
    sample: dict[str, Any] = field(default_factory=dict)                  # the held-out sample and its overlap report
    notes: list[str] = field(default_factory=list)
    writers: dict[str, WriterSummary] = field(default_factory=dict)
    verifier_labelled_set: dict[str, Any] | None = None
    passages_needed: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExplanationsSection:
        writers = {name: WriterSummary.from_dict(summary) for name, summary in data.get("writers", {}).items()}
        return _typed(cls, data, writers=writers)


@dataclass(frozen=True)
class NoticesSection:
    notices: int = 0
    completeness_pass_rate: float | None = None
    failures_by_check: dict[str, int] = field(default_factory=dict)
    writer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SECTION_TYPES = {"risk": RiskSection, "reasons": ReasonsSection, "retrieval": RetrievalSection,
                 "explanations": ExplanationsSection, "notices": NoticesSection}


def _section(name: str, data: Mapping[str, Any]) -> Any:
    cls = SECTION_TYPES.get(name)
    if cls is None:
        return dict(data)
    return cls.from_dict(data) if hasattr(cls, "from_dict") else _typed(cls, data)


@dataclass(frozen=True)
class EvaluationResults:
    """A whole results file: what was measured (config, artifact hashes) and the finished sections."""

    OMITTED_WHEN_NONE = ("started", "updated", "machine")     # not yet written while a run is under way

    schema_version: int = SCHEMA_VERSION
    kind: str = "full"
    config: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    complete: bool = False
    sections: dict[str, Any] = field(default_factory=dict)   # name -> RiskSection, ..., in the order they finished
    timing: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, dict[str, str]] = field(default_factory=dict)
    updated: str | None = None
    machine: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResults:
        sections = {name: _section(name, section) for name, section in data.get("sections", {}).items()}
        return _typed(cls, data, sections=sections)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict, as written to the results JSON."""
        return _plain(self)

    def section(self, name: str) -> Any:
        return self.sections.get(name)

    @property
    def risk(self) -> RiskSection | None:
        return self.sections.get("risk")

    @property
    def reasons(self) -> ReasonsSection | None:
        return self.sections.get("reasons")

    @property
    def retrieval(self) -> RetrievalSection | None:
        return self.sections.get("retrieval")

    @property
    def explanations(self) -> ExplanationsSection | None:
        return self.sections.get("explanations")

    @property
    def notices(self) -> NoticesSection | None:
        return self.sections.get("notices")

    @property
    def writers(self) -> dict[str, WriterSummary]:
        """Each evaluated writer's summary (empty without an explanations section)."""
        return self.explanations.writers if self.explanations else {}


def records_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + ".records.jsonl")


def load_results(path: Path | str) -> EvaluationResults:
    """A results file, typed, with each plot's ``png`` and ``data`` paths made absolute."""
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
    return EvaluationResults.from_dict(results)


def load_records(path: Path | str) -> list[dict[str, Any]]:
    """The per-decision records next to a results file (texts, checks, latencies)."""
    file = records_path(Path(path))
    if not file.is_file():
        raise ArtifactNotFoundError(f"no evaluation records at {file}; run `lendsafe evaluate`")
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if "kind" in row]
