"""The faithfulness gate: the shipped LoRA writer on 34 fixed held-out denials.

Fails the build when any final explanation fails verification (final faithfulness below 100%) or
when first-pass LoRA faithfulness falls more than 3 points below data/eval/gate_baseline.json
(rewrite it with `lendsafe evaluate --gate --write-baseline`). A missing adapter or baseline is a
failure, never a skip.
"""
from __future__ import annotations

import pytest

from lendsafe.config import Settings
from lendsafe.evaluation.run import GATE_BASELINE, check_gate, gate_summary, read_gate_baseline, run_gate
from lendsafe.evaluation.explain import GATE_QUOTAS
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
