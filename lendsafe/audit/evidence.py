"""The evidence pack of one record, for an examiner: ``record-<id>.json`` (the record's content, its place
in the verified chain and the replay outcome) and, when the notice regenerates byte for byte,
``notice-<id>.pdf`` (``lendsafe audit export``; the dashboard's evidence pack is the same).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lendsafe.audit.chain import GENESIS_HASH, check_own_hash
from lendsafe.audit.records import AuditRecord
from lendsafe.audit.replay import replay_record, replayable
from lendsafe.audit.store import AuditStore
from lendsafe.errors import LendSafeError

HASH_RULE = ("sha256(canonical_json(record) + prev_hash); canonical_json = sorted keys, separators (',', ':'), "
             "UTF-8, no NaN")


def export_evidence(store: AuditStore, record_id: int, out_dir: str | Path) -> dict[str, Any]:
    """Write the evidence pack of record ``record_id`` into ``out_dir``; returns the sidecar dict."""
    record = store.get(record_id)
    check_own_hash(record)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    replay_section, pdf = _replay_section(record)
    if pdf is not None:
        (out / f"notice-{record.id}.pdf").write_bytes(pdf)
    sidecar = {"record": record.content, "chain": _chain_section(store, record), "replay": replay_section,
               "notice_pdf": f"notice-{record.id}.pdf" if pdf is not None else None}
    (out / f"record-{record.id}.json").write_text(json.dumps(sidecar, indent=2, sort_keys=True,
                                                             ensure_ascii=False) + "\n", encoding="utf-8")
    return sidecar


def _chain_section(store: AuditStore, record: AuditRecord) -> dict[str, Any]:
    report = store.verify()
    return {"id": record.id, "prev_hash": record.prev_hash, "record_hash": record.record_hash,
            "hash_rule": HASH_RULE, "genesis_hash": GENESIS_HASH, "anchor_id": report.anchor_id,
            "anchor_hash": report.anchor_hash, "head_id": report.head_id, "head_hash": report.head_hash,
            "chain_verifies": report.ok, "chain_problem": report.problem}


def _replay_section(record: AuditRecord) -> tuple[dict[str, Any], bytes | None]:
    if not replayable(record):
        return {"status": "no notice recorded"}, None
    try:
        result = replay_record(record)
    except (ImportError, LendSafeError) as exc:
        return {"status": "unavailable", "reason": str(exc)}, None
    status = "identical" if result.identical else "differs"
    section = {"status": status, "mode": result.mode, "recorded_sha256": result.recorded_sha256,
               "replayed_sha256": result.replayed_sha256, "differences": list(result.differences)}
    return section, result.pdf if result.identical else None
