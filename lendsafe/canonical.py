"""The one canonical JSON of everything LendSafe hashes (audit records, notice evidence, issue keys).

Sorted keys, no whitespace, UTF-8 text (not ASCII escapes), NaN and infinities refused, and only the few
non-JSON types a decision may carry converted (dates, paths, decimals, sets, numpy scalars and arrays);
any other type is refused rather than written as its ``str``: two definitions of "the bytes we hash" can
never disagree.
"""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Callable

from lendsafe.errors import LendSafeError

CONVERTERS: tuple[tuple[type | tuple[type, ...], Callable[[Any], Any]], ...] = (
    ((datetime, date), lambda v: v.isoformat()),
    (PurePath, str),
    (Decimal, str),
    ((set, frozenset), sorted),
)


class CanonicalValueError(LendSafeError, ValueError):
    """A value that has no canonical JSON (NaN, infinity, or a type outside ``CONVERTERS``)."""


def _json_default(value: Any) -> Any:
    for kinds, convert in CONVERTERS:
        if isinstance(value, kinds):
            return convert(value)
    if getattr(value, "shape", ()) and callable(getattr(value, "tolist", None)):    # numpy arrays
        return value.tolist()
    if callable(getattr(value, "item", None)):                                   # numpy scalars
        return value.item()
    raise TypeError(f"expected a JSON-compatible value; got {type(value).__name__}: {value!r}")


def canonical_json(value: Any) -> str:
    """The canonical text of ``value``; CanonicalValueError when it has none."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_json_default)
    except (TypeError, ValueError) as exc:
        raise CanonicalValueError(f"no canonical JSON for this value: {exc}") from None


def canonical_sha256(value: Any) -> str:
    """sha256 (hex) of the UTF-8 bytes of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
