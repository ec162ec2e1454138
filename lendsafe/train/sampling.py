"""Sampling mode of the LoRA writer, measured: on held-apart validation denials, the adapter's greedy texts
and its sampled texts (seeded, at each temperature) beside the composer's, each verified on the first
attempt, with how far the wording departs from the composer's (figures masked).

``lendsafe finetune --sampling-report FILE`` (a TOML ``[sampling]`` table) writes ``sampling.json``.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ConfigurationError
from lendsafe.explain.composer import compose
from lendsafe.explain.generation import Sampling
from lendsafe.knowledge.retrieval import KnowledgeBase
from lendsafe.lm.adapters import adapter_sha256
from lendsafe.train.finetune import update_card_section
from lendsafe.train.validation import ValidationSet, measure_adapter, validation_set, verification_figures

SAMPLING_RECORD = "sampling.json"
FIGURE = re.compile(r"\d[\d,]*(?:\.\d+)?%?")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class SamplingReportSettings:
    """Which adapter is measured, at which temperatures, on how many validation denials."""

    adapter: Path = field(default=PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2",
                          metadata={"help": "the adapter measured"})
    data_dir: Path = field(default=PROJECT_ROOT / "data" / "sft", metadata={"help": "SFT data (validation split)"})
    record_dir: Path = field(default=PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2",
                             metadata={"help": "where sampling.json is written"})
    decisions: int = field(default=24, metadata={"help": "held-apart validation denials (first N by a stable hash)"})
    temperatures: tuple[float, ...] = field(default=(0.7, 1.0), metadata={"help": "sampling temperatures measured"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})

    def __post_init__(self) -> None:
        for name in ("adapter", "data_dir", "record_dir"):
            object.__setattr__(self, name, PROJECT_ROOT / Path(getattr(self, name)))
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        if self.decisions < 1 or not self.temperatures or min(self.temperatures) <= 0:
            raise ConfigurationError(f"expected decisions >= 1 and temperatures > 0; got {self.decisions}, "
                                     f"{self.temperatures}")

    @classmethod
    def read(cls, path: Path | str) -> "SamplingReportSettings":
        table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("sampling", {})
        unknown = sorted(set(table) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigurationError(f"{path}: expected settings among {sorted(f.name for f in fields(cls))}; "
                                     f"got unknown {unknown}")
        return cls(**table)


def wording_sentences(text: str) -> list[str]:
    """The sentences of a text with its figures masked."""
    return [s for s in SENTENCE_BREAK.split(FIGURE.sub("#", text)) if s]


def departures(texts: list[str], composer_texts: list[str]) -> dict[str, int]:
    """How the texts' wording departs from the composer's: identical texts, distinct texts and sentences
    (figures masked), and sentences the composer never writes for any of these decisions."""
    composer_sentences = {s for text in composer_texts for s in wording_sentences(text)}
    sentences = [s for text in texts for s in wording_sentences(text)]
    new = [s for s in sentences if s not in composer_sentences]
    return {"texts": len(texts), "same_as_composer": sum(t == c for t, c in zip(texts, composer_texts)),
            "distinct_texts": len({FIGURE.sub("#", t) for t in texts}), "distinct_sentences": len(set(sentences)),
            "sentences_not_written_by_composer": len(new), "distinct_sentences_not_written_by_composer": len(set(new))}


def writer_figures(adapter: Path, vset: ValidationSet, composer_texts: list[str], settings: Settings,
                   sampling: Sampling | None) -> dict[str, Any]:
    measured = measure_adapter(adapter, vset, settings, **({"sampling": sampling} if sampling else {}))
    by_id = measured.pop("texts_by_id")
    texts = [by_id[e["id"]] for e in vset.examples]
    return {**measured, "wording": departures(texts, composer_texts)}


def sampling_report(settings: SamplingReportSettings) -> dict[str, Any]:
    """Greedy, each temperature and the composer on the same validation denials; written to sampling.json."""
    app_settings = Settings()
    vset = validation_set(settings.data_dir, settings.decisions, app_settings, KnowledgeBase(app_settings))
    composer_texts = [compose(decision) for decision in vset.decisions]
    writers = {"composer": {**verification_figures(vset.decisions, composer_texts),
                            "wording": departures(composer_texts, composer_texts)},
               "greedy": writer_figures(settings.adapter, vset, composer_texts, app_settings, None)}
    for temperature in settings.temperatures:
        sampling = Sampling(temperature, 1.0, settings.seed)
        writers[f"sampled T={temperature}"] = writer_figures(settings.adapter, vset, composer_texts, app_settings,
                                                             sampling)
    record = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
              "adapter_sha256": adapter_sha256(settings.adapter), "validation": vset.report, "writers": writers}
    settings.record_dir.mkdir(parents=True, exist_ok=True)
    (settings.record_dir / SAMPLING_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    update_card_section(settings.record_dir / "README.md", "sampling", card_section(record))
    return record


def card_section(record: dict[str, Any]) -> str:
    """Sampling mode as the adapter card shows it: one row per writer."""
    rows = "\n".join(f"| {name} | {w['first_pass']}/{w['texts']} | {w['meaning_errors']} | "
                     f"{w['wording']['same_as_composer']} | {w['wording']['distinct_sentences']} | "
                     f"{w['wording']['distinct_sentences_not_written_by_composer']} |" for name, w in record["writers"].items())
    return (f"## Sampling mode\n\nThe writer can sample (`LoraGenerator(sampling=Sampling(temperature, top_p, seed))`, "
            f"each prompt's draws seeded from the seed and the prompt); greedy stays the default. First attempts on "
            f"{record['validation']['evaluated']} held-apart validation denials (record: `sampling.json`):\n\n"
            f"| writer | first pass | meaning errors | texts equal to the composer's | distinct sentences (figures "
            f"masked) | of which the composer never writes |\n|---|---|---|---|---|---|\n{rows}")
