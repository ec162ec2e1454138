"""LoRA fine-tuning of the base model on the SFT set (``train.jsonl`` / ``validation.jsonl``).

One example a line: ``{"id", "application_id", "dataset", "split", "messages": [system, user], "target"}``.
The prompt is the tokenizer's chat template over ``messages`` with the generation prompt; the target
is appended with EOS and is the only part the loss sees. Batches are grouped by length to cut padding
and right-padded; how one step computes its loss (fused on Granite bases) is ``lendsafe.train.trainstep``
(choosing) and ``lendsafe.train.fused``.

The adapter folder carries its own record (``lendsafe_adapter.json``): base id and sha256, data
hashes, hyperparameters, throughput and losses; ``check_adapter_compatible`` refuses any other base.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.lm.adapters import ADAPTER_MANIFEST, adapter_sha256, check_adapter_compatible, file_sha256, prompt_text
from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model, load_base_model
from lendsafe.train.kernels import IGNORE_INDEX
from lendsafe.train.trainstep import MasterWeightOptimizer, keep_freed_memory, training_step

DATA_FILES = ("train.jsonl", "validation.jsonl")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# The projections a LoRA adapter may wrap, by the name a setting (or a sweep grid) gives them.
TARGET_SETS = {"all": LORA_TARGETS, "attention": ("q_proj", "k_proj", "v_proj", "o_proj")}
LENGTH_GROUP_BATCHES = 32   # batches per length-sorted pool: little padding, order still shuffled
MINIMUMS = {"batch_size": 1, "max_length": 16, "lora_r": 1, "lora_alpha": 1, "eval_every": 1, "eval_limit": 1,
            "max_steps": 0, "limit": 0, "warmup_steps": 0, "seed": 0}


@dataclass(frozen=True)
class FinetuneSettings:
    """What `lendsafe finetune` trains and where it writes (each field is also a command-line flag)."""

    base_model: str = field(default="smollm2-135m", metadata={"help": "base model: 'smollm2-135m' or a local HF id/path"})
    data_dir: Path = field(default=PROJECT_ROOT / "data" / "sft", metadata={"help": "folder with train.jsonl and validation.jsonl"})
    out: Path = field(default=PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2", metadata={"help": "adapter output folder"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training set"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0 = no cap)"})
    limit: int = field(default=0, metadata={"help": "use only the first N training examples (0 = all)"})
    batch_size: int = field(default=4, metadata={"help": "examples per optimizer step"})
    lr: float = field(default=2e-4, metadata={"help": "peak learning rate (linear warm-up, linear decay)"})
    max_length: int = field(default=384, metadata={"help": "tokens per example (prompt + target); longer targets are cut"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    lora_targets: str = field(default="all", metadata={"help": "projections wrapped: 'all' (attention and MLP) or "
                                                               "'attention' (q, k, v, o only)"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warm-up steps"})
    eval_every: int = field(default=50, metadata={"help": "validation loss every N steps (and at the end)"})
    eval_limit: int = field(default=64, metadata={"help": "validation examples used for the validation loss"})
    seed: int = field(default=0, metadata={"help": "seed for LoRA init, dropout and batch order"})

    def __post_init__(self) -> None:
        for name in ("data_dir", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        for name, minimum in MINIMUMS.items():
            if getattr(self, name) < minimum:
                raise ConfigurationError(f"{name} must be >= {minimum}; got {getattr(self, name)!r}")
        if self.epochs <= 0 or self.lr <= 0:
            raise ConfigurationError(f"epochs and lr must be > 0; got epochs={self.epochs!r}, lr={self.lr!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigurationError(f"lora_dropout must be in [0, 1); got {self.lora_dropout!r}")
        if self.lora_targets not in TARGET_SETS:
            raise ConfigurationError(f"lora_targets must be one of {tuple(TARGET_SETS)}; got {self.lora_targets!r}")

    @classmethod
    def help_table(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


# ---------------------------------------------------------------- data

def read_examples(path: Path, limit: int = 0) -> list[dict]:
    """Examples of one JSONL file, checked for the fields training needs."""
    if not path.is_file():
        raise ArtifactNotFoundError(f"expected SFT data at {path}; got no file (build it first)")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        example = json.loads(line)
        if not isinstance(example.get("messages"), list) or not isinstance(example.get("target"), str):
            raise ConfigurationError(f"{path}:{number}: expected 'messages' (list) and 'target' (str); "
                                     f"got keys {sorted(example)}")
        examples.append(example)
        if limit and len(examples) >= limit:
            break
    return examples


def encode_example(tokenizer, example: dict, max_length: int) -> dict | None:
    """Token ids and labels (prompt masked); None when the prompt alone fills ``max_length``."""
    prompt_ids = tokenizer(prompt_text(tokenizer, example["messages"]), add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(example["target"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(prompt_ids) >= max_length - 1:
        return None
    ids = (prompt_ids + target_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_length]
    return {"input_ids": ids, "labels": labels, "truncated": len(prompt_ids) + len(target_ids) > max_length}


def encode_all(tokenizer, examples: list[dict], max_length: int) -> tuple[list[dict], dict]:
    encoded = [encode_example(tokenizer, example, max_length) for example in examples]
    kept = [item for item in encoded if item is not None]
    counts = {"examples": len(examples), "kept": len(kept), "skipped_prompt_too_long": len(encoded) - len(kept),
              "target_truncated": sum(item["truncated"] for item in kept)}
    return kept, counts


def length_grouped_batches(items: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffle, sort pools of similar length into batches, shuffle the batches: little padding, random order."""
    order = items[:]
    rng.shuffle(order)
    pool_size = batch_size * LENGTH_GROUP_BATCHES
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start:start + pool_size], key=lambda item: len(item["input_ids"]))
        batches += [pool[i:i + batch_size] for i in range(0, len(pool), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[dict], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels."""
    import torch

    width = max(len(item["input_ids"]) for item in batch)
    rows = [(item["input_ids"], item["labels"], width - len(item["input_ids"])) for item in batch]
    return {
        "input_ids": torch.tensor([ids + [pad_id] * pad for ids, _, pad in rows]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * pad for ids, _, pad in rows]),
        "labels": torch.tensor([labels + [IGNORE_INDEX] * pad for _, labels, pad in rows]),
    }


# ---------------------------------------------------------------- model

def lora_config(settings: FinetuneSettings):
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(TARGET_SETS[settings.lora_targets]), bias="none", task_type="CAUSAL_LM")


def validation_loss(trainer, batches) -> float:
    """Target-token loss over ``batches`` without dropout, weighted by each batch's target count."""
    import torch

    with torch.no_grad():
        losses = [(trainer.loss(batch, train=False).item(), int((batch["labels"] != IGNORE_INDEX).sum())) for batch in batches]
    total = sum(count for _, count in losses)
    return sum(loss * count for loss, count in losses) / max(total, 1)


def learning_rate(step: int, total: int, settings: FinetuneSettings) -> float:
    warmup = min(settings.warmup_steps, max(total // 10, 1))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    return settings.lr * max(0.0, (total - step) / max(total - warmup, 1))


# ---------------------------------------------------------------- training

@dataclass
class TrainingRun:
    """What a finished run produced (also written to the adapter folder)."""

    out: Path
    steps: int
    train_losses: list[float]
    validation_losses: list[tuple[int, float]]
    train_tokens_per_s: float
    manifest: dict
    training_step: str = ""


def finetune(settings: FinetuneSettings, validation: list[dict] | None = None) -> TrainingRun:
    """Train a LoRA adapter and write adapter, manifest, loss.json and loss_curve.png into ``settings.out``.

    ``validation``: the examples the validation loss is measured on (the first ``eval_limit``), instead of
    ``validation.jsonl`` (a sweep passes the validation denials that share nothing with training).
    """
    import torch
    from peft import get_peft_model

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(settings.seed)
    keep_freed_memory()
    base_settings = Settings(base_model=settings.base_model)
    model, tokenizer = load_base_model(base_settings, dtype=torch.bfloat16)
    model.config.use_cache = False
    model = get_peft_model(model, lora_config(settings), autocast_adapter_dtype=False)
    trainer = training_step(model, settings.lora_dropout, settings.seed)
    train, validation, counts = _load_data(tokenizer, settings, validation)
    run = _train_loop(trainer, tokenizer, train, validation, settings)
    base_sha = base_model_sha256(ensure_base_model(base_settings))
    manifest = _write_artifacts(trainer.model, tokenizer, run, settings, base_sha, counts)
    run.manifest = manifest
    return run


def _load_data(tokenizer, settings: FinetuneSettings, validation: list[dict] | None = None):
    train_raw = read_examples(settings.data_dir / DATA_FILES[0], settings.limit)
    validation_raw = validation[: settings.eval_limit] if validation is not None else \
        read_examples(settings.data_dir / DATA_FILES[1], settings.eval_limit)
    train, train_counts = encode_all(tokenizer, train_raw, settings.max_length)
    validation, validation_counts = encode_all(tokenizer, validation_raw, settings.max_length)
    if not train:
        raise ConfigurationError(f"expected at least one training example within max_length={settings.max_length}; "
                                 f"got {train_counts}")
    return train, validation, {"train": train_counts, "validation": validation_counts}


def _train_loop(trainer, tokenizer, train, validation, settings: FinetuneSettings) -> TrainingRun:
    import torch

    rng = random.Random(settings.seed)
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total = math.ceil(steps_per_epoch * settings.epochs)
    total = min(total, settings.max_steps) if settings.max_steps else total
    pad_id = tokenizer.pad_token_id
    validation_batches = [collate(b, pad_id) for b in length_grouped_batches(validation, settings.batch_size, random.Random(0))]
    optimizer = MasterWeightOptimizer(trainer.model.parameters(), settings.lr)
    losses, validation_losses, tokens, seconds, step = [], [], 0, 0.0, 0
    while step < total:
        for batch_items in length_grouped_batches(train, settings.batch_size, rng):
            if step >= total:
                break
            batch = collate(batch_items, pad_id)
            started = time.perf_counter()
            loss = _optimizer_step(trainer, optimizer, batch, learning_rate(step, total, settings))
            seconds += time.perf_counter() - started
            tokens += int(batch["attention_mask"].sum())
            losses.append(loss)
            step += 1
            if validation_batches and (step % settings.eval_every == 0 or step == total):
                validation_losses.append((step, validation_loss(trainer, validation_batches)))
            print(f"step {step}/{total} loss {loss:.4f} tokens/s {tokens / max(seconds, 1e-9):.0f}", flush=True)
    return TrainingRun(settings.out, step, losses, validation_losses, tokens / max(seconds, 1e-9), {},
                       type(trainer).__name__)


def _optimizer_step(trainer, optimizer, batch, lr: float) -> float:
    import torch

    loss = trainer.loss(batch)
    if not torch.isfinite(loss):
        raise ConfigurationError(f"expected a finite training loss; got {loss.item()} (lower --lr?)")
    loss.backward()
    optimizer.step(lr)
    return float(loss.item())


def _write_artifacts(model, tokenizer, run: TrainingRun, settings: FinetuneSettings, base_sha: str, counts) -> dict:
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    save_adapter(model, out, settings.base_model)
    manifest = {
        "base_model": settings.base_model,
        "base_sha256": base_sha,
        "adapter_sha256": adapter_sha256(out),
        "trained": True,
        "data_sha256": {name: file_sha256(settings.data_dir / name) for name in DATA_FILES},
        "examples": counts,
        "hyperparameters": settings.to_json() | {"lora_target_modules": list(TARGET_SETS[settings.lora_targets])},
        "steps": run.steps,
        "train_tokens_per_s": round(run.train_tokens_per_s, 1),
        "training_step": run.training_step,
        "final_train_loss": run.train_losses[-1] if run.train_losses else None,
        "final_validation_loss": run.validation_losses[-1][1] if run.validation_losses else None,
        "library_versions": library_versions(),
    }
    (out / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    losses = {"train": [{"step": i + 1, "loss": loss} for i, loss in enumerate(run.train_losses)],
              "validation": [{"step": s, "loss": loss} for s, loss in run.validation_losses]}
    (out / "loss.json").write_text(json.dumps(losses, indent=2) + "\n")
    plot_loss_curve(losses, out / "loss_curve.png")
    (out / "README.md").write_text(model_card(manifest))
    return manifest


def save_adapter(model, out: Path, base_model: str) -> None:
    """The adapter weights and config, naming the base by its setting rather than this machine's path."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = base_model
    model.save_pretrained(out)


def model_card(manifest: dict) -> str:
    """The adapter's README: what it is, what it was trained on and how, from its own manifest."""
    hp = manifest["hyperparameters"]
    examples = manifest["examples"]
    rows = [("base model", f"{manifest['base_model']} (sha256 {manifest['base_sha256'][:16]}...)"),
            ("method", f"LoRA r={hp['lora_r']}, alpha={hp['lora_alpha']}, dropout {hp['lora_dropout']} on "
                       f"{', '.join(target_modules(hp))}"),
            ("training", f"{manifest['steps']} steps, {hp['epochs']} epoch(s), batch {hp['batch_size']}, lr {hp['lr']}, "
                         f"max length {hp['max_length']}, seed {hp['seed']}"),
            ("examples", f"{examples['train']['kept']} train / {examples['validation']['kept']} validation"),
            ("final loss", f"train {_rounded(manifest['final_train_loss'])}, "
                           f"validation {_rounded(manifest['final_validation_loss'])}"),
            ("throughput", f"{manifest['train_tokens_per_s']} training tokens/s"),
            ("libraries", ", ".join(f"{k} {v}" for k, v in manifest["library_versions"].items()))]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return (f"# LendSafe explanation adapter\n\nA LoRA adapter that writes the plain-language explanation of an "
            f"adverse-action decision from the decision's facts (principal reasons, rounded figures, retrieved "
            f"citations). Every text it writes is verified before use; the deterministic composer takes over when "
            f"verification fails. Trained by `lendsafe finetune` on `data/sft/` (risk-model training rows only).\n\n"
            f"| | |\n|---|---|\n{table}\n\nData hashes, hyperparameters and versions: `{ADAPTER_MANIFEST}`; "
            f"losses per step: `loss.json`, `loss_curve.png`.\n")


def update_card_section(card: Path, name: str, text: str) -> None:
    """Put ``text`` into the adapter card between the markers of section ``name`` (appended the first time)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    current = card.read_text() if card.is_file() else ""
    block = f"{start}\n{text.strip()}\n{end}"
    if start in current and end in current:
        current = current[:current.index(start)] + block + current[current.index(end) + len(end):]
    else:
        current = current.rstrip("\n") + "\n\n" + block
    card.write_text(current.rstrip("\n") + "\n")


def target_modules(hyperparameters: dict) -> list[str]:
    """The wrapped projections an adapter record names (older records list them under 'lora_targets')."""
    if "lora_target_modules" in hyperparameters:
        return hyperparameters["lora_target_modules"]
    targets = hyperparameters.get("lora_targets", "all")
    return list(TARGET_SETS[targets]) if isinstance(targets, str) else list(targets)


def _rounded(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def plot_loss_curve(losses: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot([p["step"] for p in losses["train"]], [p["loss"] for p in losses["train"]], label="train", lw=1)
    if losses["validation"]:
        axes.plot([p["step"] for p in losses["validation"]], [p["loss"] for p in losses["validation"]],
                  "o-", label="validation")
    axes.set(xlabel="step", ylabel="loss (target tokens)", title="LoRA fine-tuning")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def library_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def init_adapter(out: Path | str, settings: FinetuneSettings | None = None) -> dict:
    """Write a freshly initialised (untrained, identity) LoRA adapter with its manifest: for benchmarks."""
    import torch
    from peft import get_peft_model

    settings = settings or FinetuneSettings(out=Path(out))
    base_settings = Settings(base_model=settings.base_model)
    torch.manual_seed(settings.seed)
    model, _ = load_base_model(base_settings)
    model = get_peft_model(model, lora_config(settings))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_adapter(model, out, settings.base_model)
    manifest = {"base_model": settings.base_model, "base_sha256": base_model_sha256(ensure_base_model(base_settings)),
                "adapter_sha256": adapter_sha256(out), "trained": False, "steps": 0,
                "hyperparameters": settings.to_json() | {"lora_target_modules": list(TARGET_SETS[settings.lora_targets])},
                "library_versions": library_versions()}
    (out / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
