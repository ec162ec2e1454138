"""The evidence pack of a record: the sidecar with chain hashes and replay outcome, and the notice PDF
(``lendsafe.audit.evidence``)."""
from __future__ import annotations

import json

from audit_support import checkpoints_in_tmp, clock, db_url, fill, record_with_notice, store  # noqa: F401
from lendsafe.audit.chain import GENESIS_HASH, chain_hash
from lendsafe.audit.evidence import export_evidence

def test_export_writes_the_pdf_and_a_sidecar_with_chain_hashes(store, tmp_path):
    fill(store, 2)
    record, pdf = record_with_notice(store)
    sidecar = export_evidence(store, record.id, tmp_path / "pack")
    assert (tmp_path / "pack" / f"notice-{record.id}.pdf").read_bytes() == pdf
    on_disk = json.loads((tmp_path / "pack" / f"record-{record.id}.json").read_text())
    assert on_disk == json.loads(json.dumps(sidecar))
    chain = on_disk["chain"]
    assert (chain["prev_hash"], chain["record_hash"]) == (store.get(2).record_hash, record.record_hash)
    assert chain["record_hash"] == chain_hash(chain["prev_hash"], on_disk["record"]) and chain["chain_verifies"]
    assert on_disk["replay"]["status"] == "identical"
    assert on_disk["record"]["decision"]["reasons"][0]["code"] == "DEBT_TO_INCOME"


def test_export_of_a_record_without_notice_writes_the_sidecar_only(store, tmp_path):
    [approved] = fill(store, 1, decision="approve")
    sidecar = export_evidence(store, approved.id, tmp_path / "pack")
    assert sidecar["notice_pdf"] is None and sidecar["replay"]["status"] == "no notice recorded"
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [f"record-{approved.id}.json"]


def test_export_names_a_replay_that_differs_and_leaves_the_pdf_out(store, tmp_path, monkeypatch):
    import lendsafe.audit.replay as replay_module

    fill(store, 1)
    record, _ = record_with_notice(store)
    real = replay_module.render_pdf
    monkeypatch.setattr(replay_module, "render_pdf", lambda notice: real(notice) + b"\n% changed")
    sidecar = export_evidence(store, record.id, tmp_path / "pack")
    assert sidecar["replay"]["status"] == "differs" and sidecar["notice_pdf"] is None
    assert any(line.startswith("notice PDF sha256: recorded") for line in sidecar["replay"]["differences"])
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [f"record-{record.id}.json"]
    assert (sidecar["chain"]["genesis_hash"], sidecar["chain"]["head_id"]) == (GENESIS_HASH, 2)
