"""The anchor outside the database: the signed checkpoint file, whose signed bytes are the one canonical JSON
(``lendsafe.audit.anchor``; tampering with it and the audit key is tests/test_tamper.py)."""
from __future__ import annotations

import json
import math

import pytest

from lendsafe.audit.anchor import ALTERED, MISSING, OK, AuditKey, ChainState, Checkpoint
from lendsafe.canonical import canonical_json

KEY = AuditKey(b"k" * 32)
STATE = ChainState(3, "a" * 64, 3, 0, "0" * 64)


def _json_before_lendsafe_canonical(value) -> str:
    """How checkpoints were signed before they used ``lendsafe.canonical`` (files written then must still read)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_the_signed_text_of_a_checkpoint_is_unchanged(tmp_path):
    checkpoint = Checkpoint(tmp_path / "a.checkpoint", KEY, "sqlite:////tmp/å.db")
    checkpoint.reset(STATE, {"record": 1, "purge": 1})
    data = json.loads(checkpoint.path.read_text(encoding="utf-8"))
    body = {k: v for k, v in data.items() if k != "mac"}
    assert canonical_json(body) == _json_before_lendsafe_canonical(body)
    assert KEY.check("checkpoint", _json_before_lendsafe_canonical(body), data["mac"])


def test_a_checkpoint_signed_before_still_vouches_for_its_state(tmp_path):
    body = {"format": 1, "store": "postgresql://db:5432/audit", "key_id": KEY.key_id,
            "signed_from": {"record": 1, "purge": 1}, "confirmed": STATE.to_dict(), "pending": None,
            "written_at": "2025-01-02T03:04:05.000006Z"}
    path = tmp_path / "old.checkpoint"
    path.write_text(json.dumps({**body, "mac": KEY.sign("checkpoint", _json_before_lendsafe_canonical(body))},
                               indent=2, sort_keys=True) + "\n")
    reading = Checkpoint(path, KEY, body["store"]).read()
    assert reading.status == OK and reading.vouches_for(STATE) and reading.limits() == {"record": 1, "purge": 1}


@pytest.mark.parametrize("edit", [lambda data: data["confirmed"].update(count=math.nan),
                                  lambda data: data["confirmed"].update(count=4)])
def test_an_edited_checkpoint_reads_as_altered_even_with_a_value_json_cannot_hold(tmp_path, edit):
    checkpoint = Checkpoint(tmp_path / "a.checkpoint", KEY, "sqlite:///a.db")
    checkpoint.reset(STATE, {"record": 1, "purge": 1})
    data = json.loads(checkpoint.path.read_text())
    edit(data)
    checkpoint.path.write_text(json.dumps(data))                # NaN is written as the bare word NaN
    reading = checkpoint.read()
    assert reading.status == ALTERED and not reading.vouches_for(STATE)


def test_an_in_memory_checkpoint_starts_missing_and_vouches_for_the_empty_store():
    checkpoint = Checkpoint(None, KEY, "sqlite:///:memory:")
    assert checkpoint.read().status == MISSING and checkpoint.where == "memory (in-memory store)"
    checkpoint.reset(STATE, {"record": 1, "purge": 1})
    assert checkpoint.read().status == OK and checkpoint.read().confirmed == STATE
