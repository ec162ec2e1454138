"""Supervised fine-tuning data: real decisions of both datasets (risk-model training rows only, plus
realistic perturbations of those applications), prompts from ``prompts.build_messages`` and targets
from the deterministic composer. Split by application so no application (or any of its
perturbations) lands in two splits.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lendsafe.explain.composer import compose
from lendsafe.config import PROJECT_ROOT
from lendsafe.decide.datasets import load_dataset
from lendsafe.decide.specs import DatasetSpec, FeatureSpec
from lendsafe.decide.decision import Decision
from lendsafe.errors import ConfigurationError
from lendsafe.explain.grounding import retrieval_key, retrieve
from lendsafe.explain.prompts import build_messages
from lendsafe.decide.risk import RiskModel, model_dir
from lendsafe.decide.scoring import Scorer
from lendsafe.knowledge.retrieval import KnowledgeBase

SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


@dataclass(frozen=True)
class SftConfig:
    """How many examples to draw from each dataset, and where to write them."""

    out_dir: Path = field(default=PROJECT_ROOT / "data" / "sft", metadata={"help": "output folder"})
    datasets: tuple[str, ...] = field(default=("hmda", "credit"), metadata={"help": "datasets to draw from"})
    perturbations: int = field(default=2, metadata={"help": "perturbed copies of each training application"})
    denials_per_dataset: int = field(default=1000, metadata={"help": "denial examples kept per dataset"})
    approvals_per_dataset: int = field(default=220, metadata={"help": "approval examples kept per dataset"})
    cutoff_share: float = field(default=0.25, metadata={"help": "share of applications explained against the cutoff reference"})
    seed: int = field(default=20261122, metadata={"help": "seed of the perturbations"})

    def __post_init__(self) -> None:
        if not 0 <= self.cutoff_share <= 1:
            raise ConfigurationError(f"cutoff_share must be between 0 and 1; got {self.cutoff_share}")
        if self.perturbations < 0:
            raise ConfigurationError(f"perturbations must be >= 0; got {self.perturbations}")


def _stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / 16**12


def split_of(group: str) -> str:
    """Deterministic split of an application group (original row and all its perturbations)."""
    fraction, edge = _stable_fraction(f"split:{group}"), 0.0
    for name, share in SPLITS:
        edge += share
        if fraction < edge:
            return name
    return SPLITS[-1][0]


def training_applications(spec: DatasetSpec, model: RiskModel) -> list[tuple[str, dict[str, Any]]]:
    """(group id, application) for the risk model's training rows only."""
    dataset = load_dataset(spec.name)
    test_rows = set(int(i) for i in model.test_index_)
    inputs = [f.name for f in spec.input_fields]
    frame = dataset.applications[inputs].astype(object).where(dataset.applications[inputs].notna(), None)
    return [(f"{spec.name}-{row}", _clean(record)) for row, record in enumerate(frame.to_dict("records"))
            if row not in test_rows]


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}


PERTURBERS = {
    "float": lambda f, v, rng: _clip(f, round(v * rng.uniform(0.85, 1.15), 3)),
    "int": lambda f, v, rng: int(_clip(f, v + rng.choice([-1, 0, 0, 1]))),
    "bool": lambda f, v, rng: (not v) if rng.random() < 0.1 else v,
    "category": lambda f, v, rng: v,
}


def _clip(feature: FeatureSpec, value: float) -> float:
    low = feature.min if feature.min is not None else value
    high = feature.max if feature.max is not None else value
    return min(max(value, low), high)


def perturb(spec: DatasetSpec, application: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A realistic variant: continuous figures within +/-15%, ratings +/-1, rare flips of yes/no."""
    changed = dict(application)
    for feature in spec.input_fields:
        value = application.get(feature.name)
        if value is not None:
            changed[feature.name] = PERTURBERS[feature.type](feature, value, rng)
    return changed


def candidate_applications(spec: DatasetSpec, model: RiskModel, config: SftConfig) -> list[tuple[str, str, dict]]:
    """(example id, group id, application): originals then perturbations."""
    rng = np.random.default_rng(config.seed)
    rows = training_applications(spec, model)
    candidates = [(group, group, app) for group, app in rows]
    for copy in range(1, config.perturbations + 1):
        candidates += [(f"{group}-p{copy}", group, perturb(spec, app, rng)) for group, app in rows]
    return candidates


def select(decisions: list[tuple[str, str, Decision]], config: SftConfig) -> list[tuple[str, str, Decision]]:
    """Keep a fixed number of denials and approvals, chosen by a stable hash of the example id."""
    ranked = sorted(decisions, key=lambda item: _stable_fraction(f"pick:{item[0]}"))
    denials = [d for d in ranked if d[2].denied][: config.denials_per_dataset]
    approvals = [d for d in ranked if not d[2].denied][: config.approvals_per_dataset]
    return sorted(denials + approvals, key=lambda item: item[0])


def decide(spec: DatasetSpec, candidates: list[tuple[str, str, dict]], config: SftConfig,
           knowledge: Any) -> list[tuple[str, str, Decision]]:
    """Score every candidate with its reference and attach its retrieved citations."""
    scorer = Scorer.load(spec.name)
    by_reference: dict[str, list[int]] = {"population": [], "cutoff": []}
    for index, (_, group, _) in enumerate(candidates):
        cutoff = _stable_fraction(f"ref:{group}") < config.cutoff_share
        by_reference["cutoff" if cutoff else "population"].append(index)
    decisions: dict[int, Decision] = {}
    for reference, indexes in by_reference.items():
        scored = scorer.score_many([candidates[i][2] for i in indexes], reference) if indexes else []
        decisions.update(zip(indexes, scored))
    chosen = select([(candidates[i][0], candidates[i][1], decisions[i]) for i in range(len(candidates))], config)
    return [(eid, group, d.with_updates(citations=cached_citations(knowledge, d))) for eid, group, d in chosen]


_CITATION_CACHE: dict[tuple, tuple] = {}


def cached_citations(knowledge: Any, decision: Decision) -> tuple:
    """Retrieval depends only on the dataset, decision, reasons and rights: query once per combination."""
    key = retrieval_key(decision)
    if key not in _CITATION_CACHE:
        _CITATION_CACHE[key] = retrieve(knowledge, decision)
    return _CITATION_CACHE[key]


def example(eid: str, group: str, decision: Decision) -> dict[str, Any]:
    return {
        "id": eid, "application_id": group, "dataset": decision.dataset, "split": split_of(group),
        "decision": decision.decision, "reference": decision.reference,
        "application": decision.application, "reason_codes": [r.code for r in decision.reasons],
        "citations": [c.citation for c in decision.citations],
        "messages": build_messages(decision), "target": compose(decision),
    }


def build_examples(config: SftConfig, knowledge: Any) -> list[dict[str, Any]]:
    examples = []
    for name in config.datasets:
        model = RiskModel.load(model_dir(name))
        candidates = candidate_applications(model.spec, model, config)
        examples += [example(*item) for item in decide(model.spec, candidates, config, knowledge)]
    return examples


def write_examples(examples: Iterable[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """One JSONL file per split plus a manifest of counts and hashes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[str]] = {name: [] for name, _ in SPLITS}
    counts: Counter = Counter()
    for item in examples:
        by_split[item["split"]].append(json.dumps(item, ensure_ascii=False, sort_keys=True))
        counts[(item["split"], item["dataset"], item["decision"])] += 1
    hashes = {}
    for name, lines in by_split.items():
        payload = ("\n".join(lines) + "\n").encode()
        (out_dir / f"{name}.jsonl").write_bytes(payload)
        hashes[name] = hashlib.sha256(payload).hexdigest()
    manifest = {"examples": sum(counts.values()), "sha256": hashes,
                "counts": {"/".join(k): v for k, v in sorted(counts.items())}}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def make_sft_data(config: SftConfig | None = None, knowledge: Any = None) -> dict[str, Any]:
    """Build and write the SFT data; returns the manifest."""
    config = config or SftConfig()
    if knowledge is None:
        knowledge = KnowledgeBase()
    manifest = write_examples(build_examples(config, knowledge), config.out_dir)
    manifest["config"] = {k: str(v) for k, v in asdict(config).items()}
    return manifest


def load_examples(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
