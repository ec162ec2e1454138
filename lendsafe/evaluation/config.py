"""What an evaluation measures: ``EvaluationConfig`` (settings declared once, each with its help), the
writers it can compare, the gate's configuration and where results go. Light: ``lendsafe --help`` reads it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ConfigurationError
from lendsafe.evaluation.results import SECTIONS

EVAL_DIR = PROJECT_ROOT / "data" / "eval"
DEFAULT_OUT = EVAL_DIR / "results.json"
DEFAULT_LIMIT = None                      # every held-out denial of the SFT test split (see EvaluationConfig.limit)
DEFAULT_COMPARISON_LIMIT = 60             # of which the base without adapter writes the first 60 (the comparison)
COMPARISON_WRITERS = ("base", "lora_no_passages")   # writers that only serve as a comparison, never issue a notice
NOT_IDENTITY = ("out", "fresh", "plots")  # config fields that do not change what is measured
GATE_BASELINE = EVAL_DIR / "gate_baseline.json"


@dataclass(frozen=True)
class WriterSpec:
    name: str
    label: str
    pipeline_writer: str          # the Pipeline's writer argument
    use_adapter: bool | None      # None: no language model
    timed_singly: bool            # also time single decisions (the writers the app issues with)
    passages: bool = True         # False: the retrieved passages are left out of the prompt (the ablation)


WRITERS = {
    "lora": WriterSpec("lora", "SmolLM2-135M with the LoRA adapter (verified, retry, composer fallback)", "lora",
                       True, True),
    "base": WriterSpec("base", "SmolLM2-135M without adapter (same pipeline)", "lora", False, False),
    "lora_no_passages": WriterSpec("lora_no_passages", "the LoRA writer with the retrieved passages left out of its "
                                   "prompt (retrieval ablation)", "lora", True, False, passages=False),
    "template": WriterSpec("template", "deterministic composer", "template", None, True),
}


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
