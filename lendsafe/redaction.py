"""Output safety shared by every face: secrets out of URLs, control characters out of terminal text.

``redact_url`` is the one way a database or server URL is shown (pages, logs, error messages);
``printable`` is the one way user-supplied keys and values are echoed to a terminal.
"""
from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
# userinfo password in scheme://user:password@host, and secret-looking query parameters
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)(?P<tail>@)")
SECRET_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|secret|token|api_?key|sslpassword)=)(?P<secret>[^&#\s]*)",
                          re.IGNORECASE)
# C0 and C1 controls (ESC starts ANSI sequences), DEL, and the bidirectional overrides that reorder text
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CONTROL_WITH_LINES = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def redact_url(url: Any) -> str:
    """The URL with any password (``user:***@host``) and secret query values replaced by ``***``."""
    text = str(url)
    text = URL_PASSWORD.sub(lambda m: m["head"] + (REDACTED if m["secret"] else "") + m["tail"], text)
    return SECRET_QUERY.sub(lambda m: m["head"] + REDACTED, text)


def printable(value: Any, *, keep_newlines: bool = False) -> str:
    """Text safe for a terminal: control characters shown as inert ``\\x1b``-style escapes."""
    pattern = CONTROL if keep_newlines else CONTROL_WITH_LINES
    return pattern.sub(lambda m: _escape(m.group()), str(value))


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
