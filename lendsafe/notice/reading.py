"""Reading the lender's own files (notice settings and wording templates): bounded size, UTF-8, TOML or
JSON, every failure a ConfigurationError naming the file and what is wrong."""
from __future__ import annotations

import json
import tomllib
from typing import Any

from lendsafe.errors import ConfigurationError
from lendsafe.redaction import printable

SETTINGS_MAX_BYTES = 256_000
TEXT_MAX_CHARS = 100_000


def read_settings_bytes(name: str, data: bytes) -> dict[str, Any]:
    """The field = value table of a settings file's bytes; ConfigurationError naming what is wrong."""
    shown = printable(name)
    if len(data) > SETTINGS_MAX_BYTES:
        raise ConfigurationError(f"notice settings file {shown} is larger than {SETTINGS_MAX_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"notice settings file {shown} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                 f"at offset {exc.start})") from None
    kind = "JSON" if name.lower().endswith(".json") else "TOML"
    try:
        return SETTINGS_READERS[kind](text)
    except (ValueError, RecursionError) as exc:      # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigurationError(f"notice settings file {shown} is not valid {kind}: {printable(exc)[:200]}") from None


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"gives {printable(twice[0])!r} more than once; expected each setting once")
    return dict(pairs)


def _read_json(text: str) -> Any:
    """JSON refusing duplicate keys and NaN/Infinity (too deep or too long numbers fail in json itself)."""
    return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)


def _json_constant(name: str) -> Any:
    raise ValueError(f"contains {name}; expected finite numbers")


SETTINGS_READERS = {"JSON": _read_json, "TOML": tomllib.loads}


def is_text(value: Any) -> bool:
    """True for a str of at most TEXT_MAX_CHARS characters."""
    return isinstance(value, str) and len(value) <= TEXT_MAX_CHARS
