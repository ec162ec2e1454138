"""Who acts: a local users file with salted Argon2id password hashes and roles, and the audit actor
of a signed-in identity.

The file (``LENDSAFE_USERS_FILE``, default ``<LENDSAFE_HOME>/users.json``, mode 0600) maps a user name
to its role and its Argon2id hash (argon2-cffi's ``PasswordHasher``: salt, parameters and hash in one
string). Passwords are never stored or logged. Roles are ranked: analyst < reviewer < admin; any of
them may issue notices, nobody anonymous may. Identities from an OIDC provider (``st.login``) are
``oidc:<email>``; their role is the users file's entry for that email, if any.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError, LendSafeError

USERS_FILE_ENV = "LENDSAFE_USERS_FILE"
ROLES = ("analyst", "reviewer", "admin")          # ascending: each may do what the ones before it may
ISSUING_ROLES = frozenset(ROLES)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,127}$")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
FIRST_ADMIN = "admin"
FORMAT = 1
_WRITE_LOCK = threading.Lock()


class UserError(LendSafeError, ValueError):
    """A user name, role or password that the users file refuses; the message names the field."""


@dataclass(frozen=True)
class Identity:
    """A signed-in person: where the identity comes from (``local`` or ``oidc``), its name and role."""

    provider: str
    name: str
    role: str | None = None

    @property
    def actor(self) -> str:
        """The audit actor: ``local:alice`` or ``oidc:alice@example.com``."""
        return f"{self.provider}:{self.name}"

    @property
    def can_issue(self) -> bool:
        return self.role in ISSUING_ROLES

    def at_least(self, role: str) -> bool:
        return self.role in ROLES and ROLES.index(self.role) >= ROLES.index(role)


def users_path(settings: Settings | None = None) -> Path:
    """The users file: ``LENDSAFE_USERS_FILE``, else ``users.json`` under the runtime home."""
    override = os.environ.get(USERS_FILE_ENV, "").strip()
    return Path(override) if override else (settings or Settings()).home / "users.json"


def check_name(name: Any) -> str:
    """The user name, lower-cased; UserError when it is not 1-128 letters, digits or ``._@+-``."""
    text = str(name).strip().lower() if isinstance(name, str) else ""
    if not NAME_PATTERN.match(text):
        raise UserError("user name must be 1-128 characters: letters, digits and . _ @ + - (starting with a "
                        f"letter or digit); got {str(name)[:40]!r}")
    return text


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}; got {str(role)[:40]!r}")
    return role


def check_password(password: Any) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise UserError(f"password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return password


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


class UsersFile:
    """The local users file: add, remove, list and authenticate users."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else users_path()

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            users = data["users"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"the users file {self.path.name} cannot be read: {type(exc).__name__}") from None
        if not isinstance(users, dict):
            raise ConfigurationError(f"the users file {self.path.name} has no users table")
        return users

    def _write(self, users: dict[str, dict[str, str]]) -> None:
        """Atomically, readable by the owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "users": users}, indent=1, sort_keys=True) + "\n"
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".json")
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def list(self) -> list[dict[str, str]]:
        """Every user as {name, role, created} (no hashes)."""
        return [{"name": name, "role": entry.get("role", ""), "created": entry.get("created", "")}
                for name, entry in sorted(self._read().items())]

    def role_of(self, name: str) -> str | None:
        entry = self._read().get(str(name).strip().lower())
        return entry.get("role") if entry else None

    def add(self, name: str, password: str, role: str, *, replace: bool = False) -> Identity:
        """Add a user (or, with ``replace``, set a new password and role); UserError on bad values."""
        name, role, password = check_name(name), check_role(role), check_password(password)
        with _WRITE_LOCK:
            users = self._read()
            if name in users and not replace:
                raise UserError(f"user {name!r} already exists (use --replace to set a new password or role)")
            users[name] = {"role": role, "hash": _hasher().hash(password),
                           "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            self._write(users)
        return Identity("local", name, role)

    def remove(self, name: str) -> None:
        name = check_name(name)
        with _WRITE_LOCK:
            users = self._read()
            if name not in users:
                raise UserError(f"no user {name!r}")
            del users[name]
            self._write(users)

    def authenticate(self, name: str, password: str) -> Identity | None:
        """The identity when the password matches, else None (the same work is done for unknown names)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            key = check_name(name)
        except UserError:
            return None
        entry = self._read().get(key)
        stored = entry.get("hash") if entry else _dummy_hash()
        try:
            _hasher().verify(stored, password if isinstance(password, str) else "")
        except (VerificationError, InvalidHashError):
            return None
        if entry is None:
            return None
        return Identity("local", key, entry.get("role"))


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash no password matches, verified for unknown names so they take as long as known ones."""
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(secrets.token_urlsafe(24)))
    return _DUMMY[0]


def ensure_first_admin(users: UsersFile) -> tuple[str, str] | None:
    """When the users file has no users, add ``admin`` with a random password and return
    (name, password) so it can be shown once; None when users exist already."""
    if users.list():
        return None
    password = secrets.token_urlsafe(15)
    users.add(FIRST_ADMIN, password, "admin")
    return FIRST_ADMIN, password


def oidc_identity(email: Any, users: UsersFile | None = None) -> Identity | None:
    """The identity of an OIDC sign-in (its email), with the role the users file gives that email."""
    if not isinstance(email, str) or not email.strip():
        return None
    name = email.strip().lower()
    try:
        role = (users or UsersFile()).role_of(name)
    except ConfigurationError:
        role = None
    return Identity("oidc", name[:120], role)
