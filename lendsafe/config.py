"""Settings, declared once as frozen dataclasses with help text and checked on creation."""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from dataclasses import dataclass, field, fields
from pathlib import Path

from lendsafe.errors import ConfigurationError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
SPECS_DIR = PROJECT_ROOT / "data" / "specs"
REFERENCES = ("population", "cutoff")   # reason references, Reg B comment 9(b)(2)-5


def _default_home() -> Path:
    """Where runtime state lives (converted base model, index, audit DB, caches)."""
    return Path(os.environ.get("LENDSAFE_HOME") or PROJECT_ROOT / "var")


def _env_flag(name: str, default: bool) -> bool:
    """A boolean environment variable: 1/true/yes/on or 0/false/no/off."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value not in FLAG_VALUES:
        raise ConfigurationError(f"{name} must be one of {sorted(FLAG_VALUES)}; got {value!r}")
    return FLAG_VALUES[value]


FLAG_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class Settings:
    """Where LendSafe finds its artifacts and which defaults it applies."""

    dataset: str = field(default="hmda", metadata={"help": "built-in dataset whose model scores applications"})
    reference: str = field(default="population", metadata={
        "help": "reason reference: 'population' (average applicant) or 'cutoff' (applicants at or just "
                "above the passing score), Reg B comment 9(b)(2)-5"})
    models_dir: Path = field(default=PROJECT_ROOT / "models", metadata={"help": "committed model artifacts"})
    data_dir: Path = field(default=PROJECT_ROOT / "data", metadata={"help": "specs, corpus, evaluation sets"})
    home: Path = field(default_factory=_default_home, metadata={
        "help": "runtime state: converted base model, Chroma index, audit database, caches (env LENDSAFE_HOME)"})
    base_model: str = field(default="smollm2-135m", metadata={
        "help": "'smollm2-135m' (bundled, converted on first use) or a Hugging Face id / local path"})
    adapter_dir: Path = field(default=PROJECT_ROOT / "models" / "adapters" / "lendsafe-smollm2", metadata={
        "help": "LoRA adapter folder"})
    use_llm: bool = field(default_factory=lambda: _env_flag("LENDSAFE_USE_LLM", True), metadata={
        "help": "write explanations with the LoRA model; False uses the composer only (env LENDSAFE_USE_LLM=0)"})
    database_url: str = field(default="", metadata={
        "help": "SQLAlchemy URL of the audit store (env LENDSAFE_DATABASE_URL); empty = SQLite under home"})
    chroma_url: str = field(default="", metadata={
        "help": "http://host:port of a Chroma server (env LENDSAFE_CHROMA_URL); empty = embedded index under home"})

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ConfigurationError(f"reference must be one of {REFERENCES}; got {self.reference!r}")
        for name in ("models_dir", "data_dir", "home", "adapter_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if not self.database_url:
            url = os.environ.get("LENDSAFE_DATABASE_URL") or f"sqlite:///{self.home / 'audit.db'}"
            object.__setattr__(self, "database_url", url)
        if not self.chroma_url:
            object.__setattr__(self, "chroma_url", os.environ.get("LENDSAFE_CHROMA_URL", ""))

    @classmethod
    def help_table(cls) -> dict[str, str]:
        """Every setting with its help text (a test fails if one is undocumented)."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home

    def risk_model_dir(self, dataset: str) -> Path:
        """Where the risk model of `dataset` is kept."""
        return self.models_dir / "risk" / dataset


# The dataset catalogue, read without loading a spec (no numpy or pandas: the dashboard's first page).

def builtin_dataset_names() -> list[str]:
    """The built-in datasets: one spec file each under data/specs (the reason catalog aside)."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.toml") if p.stem != "reasons")


@lru_cache(maxsize=64)
def dataset_title(name: str) -> str:
    """A built-in dataset's title as its spec file states it; its name when the file has none."""
    try:
        with open(SPECS_DIR / f"{name}.toml", "rb") as handle:
            title = tomllib.load(handle).get("title")
    except (OSError, tomllib.TOMLDecodeError):
        return name
    return title if isinstance(title, str) and title else name
