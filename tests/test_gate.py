"""The faithfulness gate: the shipped LoRA writer on 34 fixed held-out denials, and the gate's rules.

Fails the build when any final explanation fails verification (final faithfulness below 100%) or
when first-pass LoRA faithfulness falls more than 3 points below data/eval/gate_baseline.json
(rewrite it with `lendsafe evaluate --gate --write-baseline`). A missing adapter or baseline is a
failure, never a skip.
"""
from __future__ import annotations

import json

import pytest

from lendsafe.config import Settings
from lendsafe.errors import LendSafeError
from lendsafe.evaluation.config import GATE_BASELINE
from lendsafe.evaluation.gate import check_gate, gate_summary, read_gate_baseline, run_gate, write_gate_baseline
from lendsafe.evaluation.sample import GATE_QUOTAS
from lendsafe.lm.adapters import ADAPTER_WEIGHTS


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gate(tmp_path):
    adapter = Settings().adapter_dir
    if not (adapter / ADAPTER_WEIGHTS).is_file():
        pytest.fail(f"the gate needs the shipped LoRA adapter at {adapter} (no {ADAPTER_WEIGHTS}); "
                    f"train it with scripts/train_adapter.sh or `lendsafe finetune`")
    if not GATE_BASELINE.is_file():
        pytest.fail(f"no gate baseline at {GATE_BASELINE}; write it with `lendsafe evaluate --gate --write-baseline`")
    summary = gate_summary(run_gate(out=tmp_path / "gate.json", bar=False))
    assert summary["decisions"] == sum(GATE_QUOTAS.values())
    problems = check_gate(summary, read_gate_baseline())
    assert not problems, "gate failed:\n" + "\n".join(problems) + f"\nfirst-attempt failures: {summary['failures_by_check']}"


def summary(first: float, final: float = 1.0, ids: str = "x") -> dict:
    return {"first_pass_rate": first, "final_pass_rate": final, "ids_sha256": ids}


@pytest.mark.parametrize("current, baseline, failing", [
    (summary(0.90), summary(0.90), []),
    (summary(0.87), summary(0.90), []),
    (summary(0.86), summary(0.90), ["first-pass"]),
    (summary(0.95, final=29 / 30), summary(0.90), ["final faithfulness"]),
    (summary(0.90, ids="y"), summary(0.90), ["differ from the baseline"]),
])
def test_gate_rules(current, baseline, failing):
    problems = check_gate(current, baseline)
    assert len(problems) == len(failing) and all(word in p for word, p in zip(failing, problems))


def test_a_baseline_needs_full_final_faithfulness(tmp_path):
    with pytest.raises(LendSafeError, match="100%"):
        write_gate_baseline(summary(0.9, final=0.95), tmp_path / "baseline.json")
    assert json.loads(write_gate_baseline(summary(0.9), tmp_path / "b.json").read_text())["first_pass_rate"] == 0.9
