"""The audit chain's anchor outside the database: a secret key and an HMAC'd checkpoint file.

A hash chain alone proves only that the rows agree with each other: whoever can write the
database can delete its tail, or rewrite it and recompute every hash. Two things kept outside the
database close that gap:

* the **audit key** (``LENDSAFE_AUDIT_KEY``, else ``<LENDSAFE_HOME>/audit.key``, created on first use
  with mode 0600) signs every record hash and purge-log entry (HMAC-SHA256), so a record written
  or re-chained without the key is named as the first broken link;
* the **checkpoint file** (``<sqlite file>.checkpoint``; other backends
  ``<LENDSAFE_HOME>/audit-checkpoints/``; ``LENDSAFE_AUDIT_CHECKPOINT_DIR`` overrides both) holds
  the chain head (id, hash), the record count and the purge-log head, HMAC'd with the key. Every
  write updates it in two steps: under the store's write lock, before the commit, it vouches for
  ``confirmed`` (the head before) and ``pending`` (the head after); after the commit ``pending``
  becomes ``confirmed``. The database therefore always sits at one of the two vouched states, even
  after a crash, and anything else (a deleted tail, a rolled-back copy, a forged append) is seen.

The file is only as safe as its location: keep it (or copies of it, ``lendsafe audit checkpoint``)
where the database's writers cannot restore an older one.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from lendsafe.canonical import CanonicalValueError, canonical_json
from lendsafe.errors import AuditIntegrityError, ConfigurationError

log = logging.getLogger(__name__)

KEY_ENV = "LENDSAFE_AUDIT_KEY"
CHECKPOINT_DIR_ENV = "LENDSAFE_AUDIT_CHECKPOINT_DIR"
KEY_FILE_NAME = "audit.key"
CHECKPOINT_SUFFIX = ".checkpoint"
KEY_MIN_CHARS = 32
CHECKPOINT_FORMAT = 1
ZERO_HASH = "0" * 64

# checkpoint statuses: the file is usable, or why it is not
OK, MISSING, ALTERED, WRONG_KEY, UNREADABLE = "ok", "missing", "altered", "wrong key", "unreadable"


# ----------------------------------------------------------------------------- the key

class AuditKey:
    """HMAC-SHA256 with the audit key; ``key_id`` names the key without revealing it."""

    def __init__(self, secret: bytes | str):
        secret = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(secret) < KEY_MIN_CHARS:
            raise ConfigurationError(f"audit key must be at least {KEY_MIN_CHARS} characters; got {len(secret)}")
        self._secret = secret
        self.key_id = self.sign("key-id", "lendsafe audit key")[:16]

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    def sign(self, kind: str, text: str) -> str:
        return hmac.new(self._secret, f"{kind}\n{text}".encode("utf-8"), hashlib.sha256).hexdigest()

    def check(self, kind: str, text: str, mac: str | None) -> bool:
        return isinstance(mac, str) and hmac.compare_digest(self.sign(kind, text), mac)

    @classmethod
    def load(cls, home: Path) -> "AuditKey":
        """From ``LENDSAFE_AUDIT_KEY``, else the key file under ``home`` (created with mode 0600)."""
        from_env = os.environ.get(KEY_ENV, "").strip()
        if from_env:
            return cls(from_env)
        return cls(_read_or_create_key_file(Path(home) / KEY_FILE_NAME))


def _read_or_create_key_file(path: Path) -> str:
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(f"audit key file {path} must be readable by its owner only (chmod 600); "
                                 f"got mode {mode:o}")
    return path.read_text(encoding="utf-8").strip()


def _create_key_file(path: Path) -> None:
    """Write a fresh key atomically; if another process created one first, keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-key-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(temporary, path)
            log.warning("created audit key %s (keep a copy: records signed with it verify only with it)", path)
        except FileExistsError:
            pass
    finally:
        Path(temporary).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- chain state

@dataclass(frozen=True)
class ChainState:
    """What the checkpoint vouches for: the chain head, the record count and the purge-log head."""

    head_id: int
    head_hash: str
    count: int
    purges: int
    purge_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"head {self.head_id} ({self.head_hash[:16]}…), {self.count} record(s), "
                f"{self.purges} purge(s)")


EMPTY_STATE = ChainState(0, ZERO_HASH, 0, 0, ZERO_HASH)
FRESH_SIGNED_FROM = {"record": 1, "purge": 1}


@dataclass(frozen=True)
class CheckpointReading:
    """The checkpoint as read: ``status`` (ok, missing, altered, wrong key, unreadable) and its states."""

    status: str
    path: str
    confirmed: ChainState | None = None
    pending: ChainState | None = None
    signed_from: dict[str, int] | None = None
    detail: str = ""

    @property
    def states(self) -> tuple[ChainState, ...]:
        return tuple(s for s in (self.confirmed, self.pending) if s is not None)

    def vouches_for(self, state: ChainState) -> bool:
        if self.status == MISSING:
            return state == EMPTY_STATE
        return self.status == OK and state in self.states

    def limits(self) -> dict[str, int]:
        """Ids from which records and purge entries must be signed (earlier ones predate signing)."""
        return dict(self.signed_from or FRESH_SIGNED_FROM) if self.status == OK else dict(FRESH_SIGNED_FROM)


# ----------------------------------------------------------------------------- the checkpoint file

class Checkpoint:
    """The signed checkpoint of one store: a file, or (for an in-memory database) a value in memory."""

    def __init__(self, path: Path | None, key: AuditKey, store: str):
        self.path, self.key, self.store = path, key, store
        self._memory: dict[str, Any] | None = None

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "memory (in-memory store)"

    # -- reading
    def read(self) -> CheckpointReading:
        with self._locked():
            return self._read()

    def _read(self) -> CheckpointReading:
        try:
            data = self._load()
        except (OSError, ValueError) as exc:
            return CheckpointReading(UNREADABLE, self.where, detail=f"cannot be read ({exc})")
        if data is None:
            return CheckpointReading(MISSING, self.where, detail="no checkpoint file")
        return self._parse(data)

    def _load(self) -> dict[str, Any] | None:
        if self.path is None:
            return self._memory
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object; got {type(data).__name__}")
        return data

    def _parse(self, data: dict[str, Any]) -> CheckpointReading:
        body = {k: v for k, v in data.items() if k != "mac"}
        if data.get("key_id") != self.key.key_id:
            return CheckpointReading(WRONG_KEY, self.where, detail=(
                f"signed with audit key {data.get('key_id')!r}; this process has key {self.key.key_id!r} "
                f"(set {KEY_ENV} or the key file to the store's key)"))
        if not self._signed(body, data.get("mac")):
            return CheckpointReading(ALTERED, self.where, detail="its signature does not match its content "
                                                                 "(the file was edited)")
        try:
            confirmed = ChainState(**data["confirmed"])
            pending = None if data.get("pending") is None else ChainState(**data["pending"])
            signed_from = {name: int(data["signed_from"][name]) for name in FRESH_SIGNED_FROM}
        except (KeyError, TypeError, ValueError) as exc:
            return CheckpointReading(UNREADABLE, self.where, detail=f"has an unexpected shape ({exc!r})")
        return CheckpointReading(OK, self.where, confirmed, pending, signed_from)

    def _signed(self, body: dict[str, Any], mac: Any) -> bool:
        """Whether ``mac`` signs the canonical JSON of ``body``; a NaN or infinity (which LendSafe never
        writes, so the file was edited) has no canonical JSON and is not signed."""
        try:
            return self.key.check("checkpoint", canonical_json(body), mac)
        except CanonicalValueError:
            return False

    # -- writing
    def advance(self, before: ChainState, after: ChainState) -> bool:
        """Before a commit (under the store's write lock): vouch for ``before`` and ``after``.

        Only a store at a state the checkpoint already vouches for is carried forward; otherwise the
        checkpoint is left as evidence and False is returned (``audit verify`` will say why).
        """
        with self._locked():
            reading = self._read()
            if not reading.vouches_for(before):
                log.warning("audit checkpoint %s not advanced: the store (%s) is not at a state it vouches "
                            "for (%s); run `lendsafe audit verify`", self.where, before.describe(),
                            reading.status)
                return False
            self._write(before, after, reading.signed_from or FRESH_SIGNED_FROM)
            return True

    def settle(self, after: ChainState) -> None:
        """After the commit: ``after`` becomes the confirmed state (unless a later write moved on)."""
        try:
            with self._locked():
                reading = self._read()
                if reading.status == OK and reading.pending == after:
                    self._write(after, None, reading.signed_from)
        except (OSError, AuditIntegrityError) as exc:   # the pending state already covers the commit
            log.warning("audit checkpoint %s not settled: %s", self.where, exc)

    def reset(self, state: ChainState, signed_from: dict[str, int], *, keep_old: bool = True) -> None:
        """Anchor ``state`` (``lendsafe audit checkpoint``); with ``keep_old`` the replaced file is kept."""
        with self._locked():
            if keep_old and self.path is not None and self.path.exists():
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
                self.path.rename(self.path.with_name(f"{self.path.name}.replaced-{stamp}"))
            self._write(state, None, signed_from)

    def _write(self, confirmed: ChainState, pending: ChainState | None, signed_from: dict[str, int]) -> None:
        body = {"format": CHECKPOINT_FORMAT, "store": self.store, "key_id": self.key.key_id,
                "signed_from": dict(signed_from), "confirmed": confirmed.to_dict(),
                "pending": None if pending is None else pending.to_dict(),
                "written_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        data = {**body, "mac": self.key.sign("checkpoint", canonical_json(body))}
        if self.path is None:
            self._memory = data
            return
        try:
            _write_atomically(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise AuditIntegrityError(f"audit checkpoint {self.path} cannot be written ({exc.strerror or exc}); "
                                      "nothing was recorded") from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# ----------------------------------------------------------------------------- where a store's file lives

def store_label(url: Any) -> str:
    """The store's identity without credentials: ``sqlite:////abs/path.db`` or ``postgresql://host:port/db``."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{_sqlite_file(url) or ':memory:'}"
    return f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"


def checkpoint_path(url: Any, home: Path) -> Path | None:
    """``LENDSAFE_AUDIT_CHECKPOINT_DIR/<store>.checkpoint``; else beside a SQLite file; else under home."""
    label = store_label(url)
    digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:16]
    named = f"{url.get_backend_name()}-{digest}{CHECKPOINT_SUFFIX}"
    folder = os.environ.get(CHECKPOINT_DIR_ENV, "").strip()
    sqlite_file = _sqlite_file(url) if url.get_backend_name() == "sqlite" else None
    if url.get_backend_name() == "sqlite" and sqlite_file is None:
        return None
    if folder:
        return Path(folder).expanduser() / named
    if sqlite_file is not None:
        return sqlite_file.with_name(sqlite_file.name + CHECKPOINT_SUFFIX)
    return Path(home) / "audit-checkpoints" / named


def _sqlite_file(url: Any) -> Path | None:
    if url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().resolve()
