"""The notice wording: a TOML template of headings and texts with `{placeholders}` that the lender may
replace; a replacement must carry every key of the default and use only the placeholders it uses."""
from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

from lendsafe.errors import ArtifactNotFoundError, ConfigurationError
from lendsafe.notice.reading import SETTINGS_MAX_BYTES, TEXT_MAX_CHARS, is_text, read_settings_bytes
from lendsafe.redaction import printable

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE = TEMPLATE_DIR / "notice_en.toml"
SECTIONS = ("headings", "text")
# Keys added after lenders first wrote their own templates: a template without one takes the default's.
LATER_KEYS = {"headings": ("educational",)}


def load_wording(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, dict[str, str]]:
    """The template's headings and texts; every key of the default template must be present."""
    path = Path(path)
    cached = _load_wording_cached(str(path.resolve()), path.stat().st_mtime_ns if path.exists() else 0)
    return {section: dict(texts) for section, texts in cached.items()}


@lru_cache(maxsize=8)
def _load_wording_cached(path: str, _mtime: int) -> dict[str, dict[str, str]]:
    if not path.lower().endswith(".toml") or not Path(path).is_file():
        raise ArtifactNotFoundError(f"template_path must name a notice wording TOML file (.toml); got {printable(path)}")
    with open(path, "rb") as handle:
        data = handle.read(SETTINGS_MAX_BYTES + 1)
    wording = read_settings_bytes(path, data)
    if Path(path) != DEFAULT_TEMPLATE.resolve():
        default = load_wording(DEFAULT_TEMPLATE)
        _fill_later_keys(wording, default)
        _check_wording(wording, default, printable(path))
    return {section: dict(wording[section]) for section in SECTIONS}


def _fill_later_keys(wording: dict, default: dict) -> None:
    for section, keys in LATER_KEYS.items():
        if isinstance(wording.get(section), dict):
            for key in keys:
                wording[section].setdefault(key, default[section][key])


def placeholders_of(template: str) -> set[str]:
    """The `{names}` a wording text fills in (ValueError when its braces are malformed)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template_parts(template: str) -> list[str]:
    """The placeholder-free parts of a template string."""
    return [p for p in re.split(r"\{[^{}]*\}", template) if p.strip()]


def wording_parts(wording: dict[str, dict[str, str]]) -> list[str]:
    """The template's headings and the placeholder-free parts of its texts."""
    return [part for texts in wording.values() for value in texts.values() for part in template_parts(value)]


def _check_wording(wording: dict, reference: dict, path: str) -> None:
    """Every key of the default wording present as text, using only the placeholders the default uses."""
    for section, texts in reference.items():
        given = wording.get(section)
        if not isinstance(given, dict):
            raise ConfigurationError(f"template_path {path}: expected a [{section}] table; got {type(given).__name__}")
        missing = sorted(set(texts) - set(given))
        if missing:
            raise ConfigurationError(f"template_path {path}: [{section}] lacks keys {missing}")
        for key, default in texts.items():
            _check_wording_text(f"[{section}] {key}", given[key], placeholders_of(default), path)


def _check_wording_text(name: str, text: Any, allowed: set[str], path: str) -> None:
    if not is_text(text):
        raise ConfigurationError(f"template_path {path}: {name} must be text of at most {TEXT_MAX_CHARS} "
                                 f"characters; got {type(text).__name__}")
    try:
        unknown = sorted(placeholders_of(text) - allowed)
    except ValueError as exc:
        raise ConfigurationError(f"template_path {path}: {name} has malformed braces ({exc}); write {{{{ and }}}} "
                                 "for literal braces") from None
    if unknown:
        raise ConfigurationError(f"template_path {path}: {name} uses unknown placeholder(s) "
                                 f"{[printable(u) for u in unknown]}; expected only {sorted(allowed) or 'none'}")
