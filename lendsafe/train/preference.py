"""Preference tuning from verifier outcomes: DPO on top of the SFT adapter.

1. Sample several explanations per training application (train-split denials) from the SFT adapter at a
   non-zero temperature, each application's draws seeded from the sample seed and its prompt.
2. Label every sample: the verifier passes or fails it, and it agrees or not with the claims most of the
   samples make (the factors it states, in order, and its figures).
3. Pair a verified, agreeing sample (chosen) with each failing sample (rejected) of the same application.
4. One DPO round (trl) on the pairs: the policy starts as the SFT adapter; the reference is the same SFT
   adapter loaded apart and frozen (never the bare base).
5. Measure the SFT and the DPO adapter on the same held-apart validation denials (greedy first pass,
   meaning errors; sampled first pass and distinct wordings) and record everything in ``preference.json``.

Shipping is a separate, explicit step (``install_adapter``): the record says whether the validation rule
(``SHIP_RULE``) holds; the held-out evaluation decides the rest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.decide.decision import Decision
from lendsafe.errors import ConfigurationError
from lendsafe.explain.composer import compose
from lendsafe.explain.generation import LoraGenerator, Sampling
from lendsafe.explain.verify import NUMBER_RE, mentioned_factors, verify
from lendsafe.knowledge.retrieval import KnowledgeBase
from lendsafe.lm.adapters import (ADAPTER_MANIFEST, ADAPTER_WEIGHTS, adapter_sha256, apply_adapter, file_sha256,
                                  prompt_text, read_adapter_manifest)
from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model, load_base_model
from lendsafe.train.finetune import DATA_FILES, library_versions, save_adapter, update_card_section
from lendsafe.train.validation import (ValidationSet, first_by_hash, measure_adapter, rebuild_decisions,
                                       split_examples, validation_set, verification_figures)

PREFERENCE_RECORD = "preference.json"
PAIRS_FILE = "pairs.jsonl"
ADAPTER_FILES = (ADAPTER_WEIGHTS, "adapter_config.json", ADAPTER_MANIFEST)
SHIP_RULE = ("greedy validation first pass up or meaning errors down, and neither greedy first pass, meaning "
             "errors nor sampled first pass worse than the SFT adapter's")


@dataclass(frozen=True)
class PreferenceSettings:
    """What a preference round samples, how it trains and where it writes (a TOML ``[preference]`` table)."""

    round: str = field(default="round-1", metadata={"help": "name of this round in preference.json (rounds are kept)"})
    base_model: str = field(default="smollm2-135m", metadata={"help": "base model the SFT adapter was trained on"})
    sft_adapter: Path = field(default=PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2",
                              metadata={"help": "the SFT adapter: start of the policy and the frozen reference"})
    data_dir: Path = field(default=PROJECT_ROOT / "data" / "sft", metadata={"help": "SFT data (train and validation splits)"})
    work_dir: Path = field(default=PROJECT_ROOT / "var" / "preference",
                           metadata={"help": "samples, pairs and the DPO adapter (under adapter/)"})
    record_dir: Path = field(default=PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2",
                             metadata={"help": "where preference.json is written"})
    applications: int = field(default=96, metadata={"help": "training denials sampled (first N by a stable hash)"})
    samples: int = field(default=4, metadata={"help": "explanations sampled per training application"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the training samples"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus mass of the training samples"})
    sample_seed: int = field(default=0, metadata={"help": "seed of the sampled explanations"})
    max_pairs: int = field(default=0, metadata={"help": "pairs trained on at most, in application order (0 = all)"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (strength of the pull towards the reference)"})
    loss_type: tuple[str, ...] = field(default=("sigmoid",), metadata={
        "help": "trl loss terms: 'sigmoid' (DPO); adding 'sft' also trains on the chosen text (keeps its likelihood)"})
    lr: float = field(default=5e-5, metadata={"help": "DPO learning rate (LoRA parameters only)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the pairs"})
    batch_size: int = field(default=2, metadata={"help": "pairs per forward pass"})
    gradient_accumulation: int = field(default=2, metadata={"help": "forward passes per optimizer step"})
    max_length: int = field(default=720, metadata={"help": "tokens per prompt + completion"})
    seed: int = field(default=0, metadata={"help": "seed of DPO batch order"})
    validation_decisions: int = field(default=0, metadata={
        "help": "held-apart validation denials for the greedy before/after figures (0 = all)"})
    sampled_validation_decisions: int = field(default=48, metadata={
        "help": "of those, how many are also written sampled (sampling mode before/after)"})
    validation_temperature: float = field(default=0.7, metadata={"help": "temperature of the sampling-mode figures"})
    threads: int = field(default=1, metadata={"help": "torch threads while sampling"})

    def __post_init__(self) -> None:
        for spec in fields(self):
            if spec.type in ("Path", Path):
                object.__setattr__(self, spec.name, PROJECT_ROOT / Path(getattr(self, spec.name)))
        object.__setattr__(self, "loss_type", tuple(self.loss_type))
        if self.samples < 2 or self.applications < 1 or self.batch_size < 1 or self.gradient_accumulation < 1:
            raise ConfigurationError(f"expected samples >= 2 and applications, batch_size, gradient_accumulation >= 1; "
                                     f"got {self.samples}, {self.applications}, {self.batch_size}, "
                                     f"{self.gradient_accumulation}")
        if self.temperature <= 0 or self.lr <= 0 or self.beta <= 0 or self.epochs <= 0:
            raise ConfigurationError(f"temperature, lr, beta and epochs must be > 0; got {self.temperature}, "
                                     f"{self.lr}, {self.beta}, {self.epochs}")

    @classmethod
    def read(cls, path: Path | str, **changes: Any) -> "PreferenceSettings":
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"expected preference settings (TOML) at {path}; got no file")
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("preference", {})
        unknown = sorted(set(table) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigurationError(f"{path}: expected settings among {sorted(f.name for f in fields(cls))}; "
                                     f"got unknown {unknown}")
        return cls(**(table | changes))

    @classmethod
    def help_table(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def to_json(self) -> dict[str, Any]:
        return {k: _relative(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items()}


def _relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


# ---------------------------------------------------------------- sampling and labelling

@dataclass
class TrainingPrompts:
    """Training-split denials with their rebuilt decisions and prompts."""

    examples: list[dict[str, Any]]
    decisions: list[Decision]
    prompts: list[list[dict]]


def training_prompts(settings: PreferenceSettings, app_settings: Settings, knowledge: Any) -> TrainingPrompts:
    """The first ``applications`` training denials by a stable hash, one per application group."""
    one_per_group: dict[str, dict[str, Any]] = {}
    for example in sorted(split_examples(settings.data_dir, "train"), key=lambda e: e["id"]):
        if example["decision"] == "deny":
            one_per_group.setdefault(example["application_id"], example)
    chosen = first_by_hash(list(one_per_group.values()), settings.applications, "preference")
    return TrainingPrompts(chosen, rebuild_decisions(chosen, app_settings, knowledge), [e["messages"] for e in chosen])


def claims(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a text asserts, for agreement: the factors it states (in order, once each) and its figures."""
    factors = tuple(dict.fromkeys(code for _, code in mentioned_factors(text)))
    return factors, tuple(sorted(NUMBER_RE.findall(text)))


def label(decision: Decision, texts: list[str]) -> list[dict[str, Any]]:
    """Each sample verified and checked for agreement with the claims most samples make."""
    asserted = [claims(text) for text in texts]
    majority, votes = Counter(asserted).most_common(1)[0]
    labelled = []
    for text, said in zip(texts, asserted):
        failures = verify(decision, text).failures
        labelled.append({"text": text, "passed": not failures, "failures": failures,
                         "agrees": said == majority and votes > 1})
    return labelled


def pairs_for(prompt: str, labelled: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One pair per failing sample: a verified, agreeing sample preferred over it (cycling through them)."""
    preferred = list(dict.fromkeys(s["text"] for s in labelled if s["passed"] and s["agrees"]))
    rejected = list(dict.fromkeys(s["text"] for s in labelled if not s["passed"]))
    if not preferred:
        return []
    return [{"prompt": prompt, "chosen": preferred[i % len(preferred)], "rejected": text}
            for i, text in enumerate(rejected)]


SAMPLING_KEYS = ("sft_adapter", "data_dir", "applications", "samples", "temperature", "top_p", "sample_seed")


def sampling_identity(settings: PreferenceSettings, tprompts: TrainingPrompts) -> dict[str, Any]:
    """What the samples depend on: kept beside them, so a later round with the same reuses them."""
    return {"settings": {k: v for k, v in settings.to_json().items() if k in SAMPLING_KEYS},
            "sft_adapter_sha256": adapter_sha256(settings.sft_adapter),
            "ids_sha256": hashlib.sha256(json.dumps([e["id"] for e in tprompts.examples]).encode()).hexdigest()}


def sample_and_pair(settings: PreferenceSettings, app_settings: Settings, tprompts: TrainingPrompts) -> dict:
    """Sample, label and pair (or reuse the samples of the same sampling); written to ``work_dir``."""
    identity = sampling_identity(settings, tprompts)
    kept = settings.work_dir / "samples.json"
    if kept.is_file() and json.loads(kept.read_text())["identity"] == identity:
        return json.loads(kept.read_text())["drawn"]
    drawn = draw(settings, app_settings, tprompts)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps({"identity": identity, "drawn": drawn}, ensure_ascii=False) + "\n")
    _write_jsonl(settings.work_dir / PAIRS_FILE, drawn["pairs"])
    return drawn


def draw(settings: PreferenceSettings, app_settings: Settings, tprompts: TrainingPrompts) -> dict:
    """Sample every training prompt, label the samples and pair them."""
    sampling = Sampling(settings.temperature, settings.top_p, settings.sample_seed)
    writer = LoraGenerator(app_settings, adapter_dir=settings.sft_adapter, cache_dir=settings.work_dir / "cache",
                           sampling=sampling, threads=settings.threads)
    started = time.perf_counter()
    rows, pairs = [], []
    for example, decision, messages in zip(tprompts.examples, tprompts.decisions, tprompts.prompts):
        texts = [r.text for r in writer.sample([messages], settings.samples)[0]]
        labelled = label(decision, texts)
        rows.append({"id": example["id"], "samples": labelled})
        pairs += [{"id": example["id"], **pair} for pair in pairs_for(writer.prompt_text(messages), labelled)]
        print(f"sampled {len(rows)}/{len(tprompts.examples)}: {len(pairs)} pairs", flush=True)
    seconds = time.perf_counter() - started
    return {"rows": rows, "pairs": pairs, "seconds": round(seconds, 1), "sampling": sampling.describe()}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows))


def sample_summary(rows: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [s for row in rows for s in row["samples"]]
    return {"applications": len(rows), "samples": len(samples), "passed": sum(s["passed"] for s in samples),
            "passed_and_agreeing": sum(s["passed"] and s["agrees"] for s in samples),
            "applications_with_pairs": len({p["id"] for p in pairs}), "pairs": len(pairs),
            "failures_by_check": dict(sorted(Counter(c for s in samples for c in s["failures"]).items()))}


# ---------------------------------------------------------------- DPO

def dpo_config(settings: PreferenceSettings, output_dir: Path):
    from trl import DPOConfig

    return DPOConfig(output_dir=str(output_dir), beta=settings.beta, learning_rate=settings.lr,
                     num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
                     gradient_accumulation_steps=settings.gradient_accumulation, max_length=settings.max_length,
                     lr_scheduler_type="linear", warmup_steps=0, loss_type=list(settings.loss_type), seed=settings.seed,
                     data_seed=settings.seed, use_cpu=True, bf16=False, logging_steps=1, save_strategy="no",
                     report_to=[], disable_dropout=True, precompute_ref_log_probs=False, dataloader_num_workers=0,
                     gradient_checkpointing=False, remove_unused_columns=False)


DPO_RECORDED = ("beta", "learning_rate", "num_train_epochs", "per_device_train_batch_size",
                "gradient_accumulation_steps", "max_length", "lr_scheduler_type", "warmup_steps", "loss_type", "seed",
                "data_seed", "disable_dropout", "precompute_ref_log_probs", "gradient_checkpointing")


def sft_policy_and_reference(settings: PreferenceSettings, app_settings: Settings):
    """The policy (SFT adapter, trainable) and the reference (the same SFT adapter merged into a second copy of
    the base, frozen: a plain causal LM, as trl's fused reference forward expects)."""
    import torch
    from peft import PeftModel

    base_sha = base_model_sha256(ensure_base_model(app_settings))
    policy_base, tokenizer = load_base_model(app_settings, dtype=torch.bfloat16)
    policy = PeftModel.from_pretrained(policy_base, str(settings.sft_adapter), is_trainable=True)
    reference_base, _ = load_base_model(app_settings, dtype=torch.bfloat16)
    reference = apply_adapter(reference_base, settings.sft_adapter, base_sha, merge=True)
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return policy, reference, tokenizer


def train_dpo(settings: PreferenceSettings, app_settings: Settings, pairs: list[dict[str, str]]) -> dict[str, Any]:
    """One DPO round on ``pairs``; the adapter goes to ``work_dir/adapter-<round>``."""
    import torch
    from datasets import Dataset
    from trl import DPOTrainer

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(settings.seed)
    policy, reference, tokenizer = sft_policy_and_reference(settings, app_settings)
    config = dpo_config(settings, settings.work_dir / "trainer")
    dataset = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    trainer = DPOTrainer(model=policy, ref_model=reference, args=config, train_dataset=dataset,
                         processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    out = settings.work_dir / f"adapter-{settings.round}"
    shutil.rmtree(out, ignore_errors=True)
    save_adapter(trainer.model, out, settings.base_model)
    history = [{k: v for k, v in entry.items() if k in LOGGED} for entry in trainer.state.log_history if "loss" in entry]
    return {"out": out, "seconds": round(seconds, 1), "steps": trainer.state.global_step, "log": history,
            "config": {k: _plain(getattr(config, k)) for k in DPO_RECORDED}}


LOGGED = ("step", "epoch", "loss", "learning_rate", "grad_norm", "rewards/chosen", "rewards/rejected",
          "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, list, type(None))) else str(value)


def write_manifest(out: Path, settings: PreferenceSettings, record_extra: dict[str, Any]) -> dict[str, Any]:
    """The DPO adapter's record: the SFT adapter's, with this round's method, data and parent."""
    parent = read_adapter_manifest(settings.sft_adapter)
    manifest = {**parent, "adapter_sha256": adapter_sha256(out), "trained": True,
                "method": "dpo on the SFT adapter", "parent_adapter_sha256": parent["adapter_sha256"],
                "preference": record_extra, "library_versions": library_versions() | _trl_version()}
    (out / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _trl_version() -> dict[str, str]:
    import trl

    return {"trl": trl.__version__}


# ---------------------------------------------------------------- measuring and recording

WORDING_MASK = re.compile(r"\d[\d,]*(?:\.\d+)?%?")


def wording(text: str) -> str:
    """A text with its figures masked: two texts with the same wording differ only in their numbers."""
    return WORDING_MASK.sub("#", text)


def distinct_wordings(texts: list[str]) -> dict[str, int]:
    sentences = [s for text in texts for s in re.split(r"(?<=[.!?])\s+", wording(text)) if s]
    return {"texts": len(texts), "distinct_texts": len(set(wording(t) for t in texts)),
            "distinct_sentences": len(set(sentences))}


def measure(adapter: Path, vset: ValidationSet, sampled: ValidationSet, settings: PreferenceSettings,
            app_settings: Settings) -> dict[str, Any]:
    """Greedy first pass on every validation decision and sampled first pass on the ``sampled`` subset."""
    greedy = measure_adapter(adapter, vset, app_settings)
    sampling = Sampling(settings.validation_temperature, 1.0, settings.sample_seed)
    drawn = measure_adapter(adapter, sampled, app_settings, sampling=sampling)
    greedy_texts, drawn_texts = greedy.pop("texts_by_id"), drawn.pop("texts_by_id")
    greedy["wordings"] = distinct_wordings([greedy_texts[e["id"]] for e in sampled.examples])
    drawn["wordings"] = distinct_wordings(list(drawn_texts.values()))
    return {"greedy": greedy, "sampled": drawn}


def composer_figures(sampled: ValidationSet) -> dict[str, Any]:
    texts = [compose(decision) for decision in sampled.decisions]
    return {**verification_figures(sampled.decisions, texts), "wordings": distinct_wordings(texts)}


def ship_on_validation(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """``SHIP_RULE``: better greedy first pass or fewer meaning errors, worse on none of the figures."""
    first, errors = after["greedy"]["first_pass"] - before["greedy"]["first_pass"], \
        before["greedy"]["meaning_errors"] - after["greedy"]["meaning_errors"]
    sampled = after["sampled"]["first_pass"] - before["sampled"]["first_pass"]
    return (first > 0 or errors > 0) and min(first, errors, sampled) >= 0


def data_hashes(settings: PreferenceSettings) -> dict[str, str]:
    hashes = {name: file_sha256(settings.data_dir / name) for name in DATA_FILES}
    pairs = settings.work_dir / PAIRS_FILE
    return hashes | ({PAIRS_FILE: file_sha256(pairs)} if pairs.is_file() else {})


def preference_round(settings: PreferenceSettings, settings_file: Path | str | None = None) -> dict[str, Any]:
    """Sample, pair, measure the SFT adapter, train, measure the DPO adapter; ``preference.json`` is
    rewritten after every stage and returned."""
    app_settings = Settings(base_model=settings.base_model)
    knowledge = KnowledgeBase(app_settings)
    tprompts = training_prompts(settings, app_settings, knowledge)
    vset = validation_set(settings.data_dir, settings.validation_decisions or None, app_settings, knowledge)
    sampled = validation_set(settings.data_dir, settings.sampled_validation_decisions, app_settings, knowledge)
    drawn = sample_and_pair(settings, app_settings, tprompts)
    pairs = drawn["pairs"][: settings.max_pairs or None]
    record = {"settings": settings.to_json(), "settings_file": settings_file and _relative(PROJECT_ROOT / Path(settings_file)),
              "ship_rule": SHIP_RULE,
              "sft_adapter_sha256": adapter_sha256(settings.sft_adapter),
              "samples": sample_summary(drawn["rows"], drawn["pairs"]), "pairs_trained": len(pairs),
              "sampling": drawn["sampling"], "sampling_seconds": drawn["seconds"],
              "training_ids_sha256": sampling_identity(settings, tprompts)["ids_sha256"],
              "validation": vset.report, "sampled_validation": sampled.report, "data_sha256": data_hashes(settings),
              "composer": composer_figures(sampled)}
    record["before"] = earlier_before(record, settings) or measure(settings.sft_adapter, vset, sampled, settings,
                                                                   app_settings)
    write_record(record, settings)
    if not pairs:
        record["outcome"] = "no pairs: every application's samples all passed or all failed; nothing trained"
        return write_record(record, settings)
    trained = train_dpo(settings, app_settings, pairs)
    record["dpo"] = {k: v for k, v in trained.items() if k != "out"}
    write_manifest(trained["out"], settings, {"pairs": len(pairs), "data_sha256": record["data_sha256"]})
    record["dpo_adapter_sha256"] = adapter_sha256(trained["out"])
    write_record(record, settings)
    record["after"] = measure(trained["out"], vset, sampled, settings, app_settings)
    record["ship_on_validation"] = ship_on_validation(record["before"], record["after"])
    return write_record(record, settings)


BEFORE_IDENTITY = (("sft_adapter_sha256",), ("validation", "ids_sha256"), ("sampled_validation", "ids_sha256"),
                   ("settings", "validation_temperature"), ("settings", "sample_seed"))


def earlier_before(record: dict[str, Any], settings: PreferenceSettings) -> dict[str, Any] | None:
    """The SFT adapter's figures from an earlier round that measured the same adapter on the same decisions."""
    def identity(r):
        return [_dig(r, path) for path in BEFORE_IDENTITY]
    for earlier in read_rounds(settings.record_dir / PREFERENCE_RECORD).values():
        if "before" in earlier and identity(earlier) == identity(record):
            return earlier["before"]
    return None


def _dig(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        record = record.get(key, {}) if isinstance(record, dict) else {}
    return record


def write_record(record: dict[str, Any], settings: PreferenceSettings) -> dict[str, Any]:
    """This round in preference.json (beside the other rounds) and the rounds' section of the adapter card."""
    settings.record_dir.mkdir(parents=True, exist_ok=True)
    path = settings.record_dir / PREFERENCE_RECORD
    rounds = read_rounds(path)
    rounds[settings.round] = record
    path.write_text(json.dumps({"rounds": rounds}, indent=1) + "\n")
    update_card_section(settings.record_dir / "README.md", "preference",
                        "\n\n".join(card_section(r, name) for name, r in rounds.items()))
    return record


def read_rounds(path: Path) -> dict[str, Any]:
    """The rounds a preference.json holds (a file of one unnamed round counts as round-1)."""
    if not path.is_file():
        return {}
    kept = json.loads(path.read_text())
    return kept["rounds"] if "rounds" in kept else {"round-1": kept}


def _row(name: str, figures: dict[str, Any] | None) -> str:
    if not figures:
        return f"| {name} | not measured | | | |"
    greedy, sampled = figures.get("greedy", figures), figures.get("sampled", figures)
    return (f"| {name} | {greedy['first_pass']}/{greedy['texts']} | {greedy['meaning_errors']} | "
            f"{sampled['first_pass']}/{sampled['texts']} | {sampled['wordings']['distinct_texts']} texts, "
            f"{sampled['wordings']['distinct_sentences']} sentences |")


def card_section(record: dict[str, Any], name: str = "round-1") -> str:
    """The round as the adapter card shows it: samples, pairs, DPO settings, before and after."""
    s, counts = record["settings"], record["samples"]
    composer = record.get("composer")
    rows = "\n".join([_row("SFT adapter (before)", record.get("before")), _row("DPO adapter (after)", record.get("after")),
                      _row("composer", composer and {"greedy": composer, "sampled": composer})])
    return (f"## Preference {name} (DPO)\n\n`lendsafe finetune --preference {record.get('settings_file', 'data/sweep/preference.toml')}`: "
            f"{counts['samples']} explanations sampled from this adapter ({record['sampling']}) for "
            f"{counts['applications']} training denials; {counts['passed']} passed verification, "
            f"{counts['passed_and_agreeing']} also agreed with most samples; {counts['pairs']} pairs "
            f"(verified and agreeing preferred over failing), {record['pairs_trained']} trained on: DPO beta {s['beta']}, "
            f"loss {'+'.join(s.get('loss_type', ['sigmoid']))}, lr {s['lr']}, {s['epochs']} epoch(s), reference = this "
            f"SFT adapter (frozen). Validation: greedy on "
            f"{record['validation']['evaluated']} held-apart validation denials, sampled (temperature "
            f"{s['validation_temperature']}) and wordings (figures masked) on {record['sampled_validation']['evaluated']}."
            f"\n\n| writer | greedy first pass | meaning errors | sampled first pass | distinct wordings |\n"
            f"|---|---|---|---|---|\n{rows}\n\nShips on validation ({record['ship_rule']}): "
            f"{record.get('ship_on_validation', 'not decided yet')}. Record: `preference.json`.")


def install_adapter(new: Path, shipped: Path, keep_previous: Path) -> Path:
    """Put the adapter files of ``new`` in ``shipped``, first copying the shipped ones to ``keep_previous``."""
    keep_previous.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        if not (keep_previous / name).is_file():
            shutil.copy2(shipped / name, keep_previous / name)
    for name in ADAPTER_FILES:
        shutil.copy2(new / name, shipped / name)
    return shipped
