"""`lendsafe prepare`: trains only missing risk models, runs every step in order, --skip-llm skips the base model."""
from __future__ import annotations

import json
from types import SimpleNamespace

from lendsafe.cli import main
from lendsafe.commands import prepare


def test_only_missing_risk_models_are_trained(monkeypatch, tmp_path):
    (tmp_path / "hmda").mkdir()
    (tmp_path / "hmda" / "model.json").write_text("{}")
    trained = []
    monkeypatch.setattr("lendsafe.decide.risk.model_dir", lambda name, settings=None: tmp_path / name)
    monkeypatch.setattr("lendsafe.decide.risk.train_risk_model",
                        lambda name: trained.append(name) or SimpleNamespace(sha256="ab" * 32))
    assert prepare._risk_models() == {"credit": "trained (abababababab)", "hmda": "present"}
    assert trained == ["credit"]


def test_committed_models_are_present():
    assert set(prepare._risk_models().values()) == {"present"}


def test_steps_run_in_order_and_skip_llm_skips_the_base_model(monkeypatch, capsys):
    ran = []
    steps = tuple((name, (lambda n=name: ran.append(n) or {"ok": n})) for name, _ in prepare.STEPS)
    monkeypatch.setattr(prepare, "STEPS", steps)
    assert main(["prepare", "--skip-llm"]) == 0
    assert ran == ["risk_models", "index", "users"]
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert list(report) == ["risk_models", "index", "users"] and report["index"]["result"] == {"ok": "index"}
    assert "prepare: risk_models ready in" in out
    ran.clear()
    assert main(["prepare"]) == 0 and ran == ["risk_models", "index", "base_model", "users"]
