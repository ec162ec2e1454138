"""A recorded LoRA sweep: every configuration of a small TOML grid trained from the base with the same data,
seed and step budget, then measured on held-apart validation denials (``lendsafe.train.validation``):
first-pass verification (greedy, int8, in batches of 8: the same measuring device for every run),
meaning errors, validation loss and training tokens/s.

The grid (``data/sweep/lora.toml``)::

    [budget]                 # the same for every run
    max_steps = 20           # optimizer steps per configuration
    validation_decisions = 32
    validation_loss_examples = 16
    [defaults]               # FinetuneSettings shared by every run
    batch_size = 4
    [[runs]]                 # one table per configuration: a name and the settings it changes
    name = "r16-all-lr2e-4"
    lora_r = 16

Results go to ``<record_dir>/sweep.json`` (rewritten after every run, so an interrupted sweep resumes
with the runs it finished) and ``sweep.png``; each run's adapter and texts stay under ``work_dir``.
The configuration to ship is chosen by ``CHOICE_ORDER``.
"""
from __future__ import annotations

import gc
import json
import os
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ConfigurationError
from lendsafe.knowledge.retrieval import KnowledgeBase
from lendsafe.lm.adapters import adapter_sha256, file_sha256
from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model
from lendsafe.train.finetune import DATA_FILES, FinetuneSettings, finetune, library_versions, update_card_section
from lendsafe.train.validation import ValidationSet, measure_adapter, validation_set

SWEEP_RECORD = "sweep.json"
SWEEP_PLOT = "sweep.png"
BUDGET_KEYS = {"max_steps": 20, "validation_decisions": 32, "validation_loss_examples": 16}
# How the configuration to ship is chosen: most first-pass verified texts, then lowest validation loss (measured
# on every target token, it still separates configurations whose texts all fail at a small budget), then
# fewest meaning errors, then fastest training (tokens/s depend on what else ran on the machine meanwhile).
CHOICE_ORDER = (("first_pass", -1), ("validation_loss", 1), ("meaning_errors", 1), ("train_tokens_per_s", -1))


@dataclass(frozen=True)
class SweepGrid:
    """A parsed grid: the step budget, the shared settings and one set of changes per run."""

    path: Path
    sha256: str
    budget: dict[str, int]
    defaults: dict[str, Any]
    runs: tuple[dict[str, Any], ...]
    work_dir: Path

    @classmethod
    def read(cls, path: Path | str) -> "SweepGrid":
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"expected a sweep grid (TOML) at {path}; got no file")
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        budget = BUDGET_KEYS | raw.get("budget", {})
        runs = tuple(raw.get("runs", ()))
        _check_grid(budget, raw.get("defaults", {}), runs)
        work_dir = PROJECT_ROOT / raw.get("work_dir", "var/sweep")
        return cls(path, file_sha256(path), budget, raw.get("defaults", {}), runs, work_dir)

    def settings(self, run: dict[str, Any], data_dir: Path, base_model: str) -> FinetuneSettings:
        """The run's FinetuneSettings: defaults, then the run's changes, the budget's steps, its own folder."""
        changes = {k: v for k, v in run.items() if k != "name"}
        return FinetuneSettings(**(self.defaults | changes), data_dir=data_dir, base_model=base_model,
                                out=self.work_dir / run["name"], max_steps=self.budget["max_steps"],
                                eval_every=self.budget["max_steps"],
                                eval_limit=self.budget["validation_loss_examples"])


def _check_grid(budget: dict, defaults: dict, runs: tuple[dict, ...]) -> None:
    known = {f.name for f in fields(FinetuneSettings)} - {"data_dir", "out", "base_model", "max_steps", "eval_limit"}
    unknown = sorted(set(budget) - set(BUDGET_KEYS)) + sorted(
        k for table in (defaults, *runs) for k in table if k not in known | {"name"})
    if unknown:
        raise ConfigurationError(f"sweep grid: expected budget keys {sorted(BUDGET_KEYS)} and settings among "
                                 f"{sorted(known)}; got unknown {unknown}")
    names = [run.get("name") for run in runs]
    if not runs or None in names or len(set(names)) != len(names):
        raise ConfigurationError(f"sweep grid: expected at least one [[runs]] table, each with a unique name; got {names}")


def sweep(grid: SweepGrid, record_dir: Path, data_dir: Path, base_model: str = "smollm2-135m",
          settings: Settings | None = None) -> dict[str, Any]:
    """Train and measure every run of ``grid`` not yet recorded; returns the record (also written)."""
    settings = settings or Settings(base_model=base_model)
    knowledge = KnowledgeBase(settings)
    vset = validation_set(data_dir, grid.budget["validation_decisions"], settings, knowledge)
    record = _start_record(grid, record_dir, data_dir, base_model, vset)
    for run in grid.runs:
        if run["name"] in {r["name"] for r in record["runs"]}:
            continue
        print(f"sweep: {run['name']}", flush=True)
        record["runs"].append(train_and_measure(grid.settings(run, data_dir, base_model), run["name"], vset, settings))
        record["chosen"] = choose(record["runs"])
        write_record(record, record_dir)
        gc.collect()
    record["chosen"], record["choice_order"] = choose(record["runs"]), [k for k, _ in CHOICE_ORDER]
    write_record(record, record_dir)
    return record


def _start_record(grid: SweepGrid, record_dir: Path, data_dir: Path, base_model: str, vset: ValidationSet) -> dict:
    """The record so far: the existing one when it measured the same grid, data and validation set."""
    identity = {"grid": str(grid.path.relative_to(PROJECT_ROOT)) if grid.path.is_relative_to(PROJECT_ROOT)
                else str(grid.path), "grid_sha256": grid.sha256, "budget": grid.budget,
                "data_sha256": {name: file_sha256(data_dir / name) for name in DATA_FILES},
                "base_model": base_model, "base_sha256": base_model_sha256(ensure_base_model(Settings(base_model=base_model))),
                "validation": vset.report}
    existing = record_dir / SWEEP_RECORD
    if existing.is_file():
        old = json.loads(existing.read_text())
        if all(old.get(k) == v for k, v in identity.items()):
            return old
    return {**identity, "library_versions": library_versions(), "choice_order": [k for k, _ in CHOICE_ORDER],
            "runs": [], "chosen": None}


def train_and_measure(run_settings: FinetuneSettings, name: str, vset: ValidationSet, settings: Settings) -> dict:
    """One configuration: trained within the budget, then its first attempts on the validation decisions."""
    started = time.perf_counter()
    trained = finetune(run_settings, validation=vset.examples)
    training_seconds = time.perf_counter() - started
    measured = measure_adapter(run_settings.out, vset, settings, drafts=False)
    texts = measured.pop("texts_by_id")
    (run_settings.out / "validation_texts.json").write_text(json.dumps(texts, indent=1, ensure_ascii=False) + "\n")
    hp = trained.manifest["hyperparameters"]
    return {"name": name, "lora_r": hp["lora_r"], "lora_alpha": hp["lora_alpha"], "lora_targets": hp["lora_targets"],
            "lr": hp["lr"], "steps": trained.steps, "batch_size": hp["batch_size"], "seed": hp["seed"],
            "train_tokens_per_s": round(trained.train_tokens_per_s, 1), "training_step": trained.training_step,
            "final_train_loss": round(trained.train_losses[-1], 4),
            "validation_loss": round(trained.validation_losses[-1][1], 4) if trained.validation_losses else None,
            **measured, "adapter_sha256": adapter_sha256(run_settings.out),
            "training_seconds": round(training_seconds, 1), "load_average": [round(x, 2) for x in os.getloadavg()],
            "hyperparameters": hp}


def choose(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run ``CHOICE_ORDER`` ranks first, and the order it ranked them in."""
    if not runs:
        return None
    ranked = sorted(runs, key=lambda r: tuple(sign * (r[key] if r[key] is not None else float("inf"))
                                              for key, sign in CHOICE_ORDER))
    return {"name": ranked[0]["name"], "ranking": [r["name"] for r in ranked],
            "rule": "most first-pass verified validation texts, then lowest validation loss, then fewest "
                    "meaning errors, then most training tokens/s"}


def write_record(record: dict[str, Any], record_dir: Path) -> Path:
    """sweep.json, sweep.png and the sweep's section of the adapter card (README.md) in ``record_dir``."""
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / SWEEP_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    plot_sweep(record, record_dir / SWEEP_PLOT)
    update_card_section(record_dir / "README.md", "sweep", card_section(record))
    return record_dir / SWEEP_RECORD


CARD_COLUMNS = (("configuration", lambda r: r["name"]), ("first pass", lambda r: f"{r['first_pass']}/{r['texts']}"),
                ("meaning errors", lambda r: str(r["meaning_errors"])),
                ("validation loss", lambda r: f"{r['validation_loss']:.4f}" if r["validation_loss"] is not None else "n/a"),
                ("train tokens/s", lambda r: f"{r['train_tokens_per_s']:.0f}"), ("step", lambda r: r["training_step"]),
                ("load at end", lambda r: f"{r['load_average'][0]:.1f}"))


def card_section(record: dict[str, Any]) -> str:
    """The sweep as the adapter card shows it: budget, validation set, one row per configuration, the choice."""
    rows = "\n".join("| " + " | ".join(cell(r) for _, cell in CARD_COLUMNS) + " |" for r in record["runs"])
    chosen = record.get("chosen") or {}
    return (f"## LoRA sweep\n\n`lendsafe finetune --sweep {record['grid']}`: every configuration trained from the base "
            f"for {record['budget']['max_steps']} steps (batch {record['runs'][0]['batch_size'] if record['runs'] else '-'}, "
            f"seed {record['runs'][0]['seed'] if record['runs'] else '-'}, same batches), then its greedy first attempt "
            f"verified on {record['validation']['evaluated']} validation denials that share nothing with training "
            f"(never the test split). Record: `sweep.json`, plot: `sweep.png`.\n\n"
            f"| {' | '.join(name for name, _ in CARD_COLUMNS)} |\n|{'---|' * len(CARD_COLUMNS)}\n{rows}\n\n"
            f"Ranked by {chosen.get('rule', 'n/a')}: **{chosen.get('name', 'n/a')}** first "
            f"({len(record['runs'])} configurations measured). Tokens/s share 2 cores with whatever else ran "
            f"(the 1-minute load at the end of each run is shown): compare them within a run's conditions only.")


PLOT_PANELS = (("first_pass_rate", "first-pass verified (validation)"), ("meaning_errors", "meaning errors"),
               ("validation_loss", "validation loss"), ("train_tokens_per_s", "training tokens/s"))


def plot_sweep(record: dict[str, Any], path: Path) -> None:
    """One horizontal bar panel per figure, a bar per configuration (the chosen one darker)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = record["runs"]
    chosen = (record.get("chosen") or {}).get("name")
    names = [r["name"] for r in runs]
    colours = ["#1f4e79" if n == chosen else "#8fb3d9" for n in names]
    figure, axes = plt.subplots(1, len(PLOT_PANELS), figsize=(3.2 * len(PLOT_PANELS), 0.45 * len(runs) + 1.6),
                                sharey=True)
    for axis, (key, label) in zip(axes, PLOT_PANELS):
        values = [r[key] if r[key] is not None else 0 for r in runs]
        axis.barh(names, values, color=colours)
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:g}", va="center", fontsize=7)
        axis.set_title(label, fontsize=9)
        axis.tick_params(labelsize=8)
    axes[0].invert_yaxis()
    figure.suptitle(f"LoRA sweep: {record['budget']['max_steps']} steps each, {record['validation']['evaluated']} "
                    f"validation denials (chosen: {chosen})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
