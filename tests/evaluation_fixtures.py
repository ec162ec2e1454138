"""Shared by the evaluation test files: the held-out sample and a stand-in for the LoRA writer."""
from __future__ import annotations

import pytest

from lendsafe.config import Settings
from lendsafe.evaluation.config import EvaluationConfig
from lendsafe.evaluation.sample import held_out_examples
from lendsafe.explain.writer import GenerationResult

SETTINGS = Settings()
SFT_DIR = SETTINGS.data_dir / "sft"
BAD_TEXT = "Good news: your application is approved and guaranteed. You may reapply any time."


@pytest.fixture(scope="module")
def held_out():
    return held_out_examples(SFT_DIR, "test")


class StandInGenerator:
    """Writes the composer's reference for known prompts: always ('good'), only on the stricter retry
    ('retry') or never ('bad'); counts the prompts it was given and can stop after a number of calls."""

    name = "lora"

    def __init__(self, examples, modes, adapter_sha256="a" * 64, stop_after_calls=None):
        self.targets = {e["messages"][1]["content"]: (e["target"], modes(e)) for e in examples}
        self.adapter_sha256, self.stop_after_calls = adapter_sha256, stop_after_calls
        self.prompts = 0
        self.calls = 0

    def write(self, decisions, prompts):
        if self.stop_after_calls is not None and self.calls >= self.stop_after_calls:
            raise KeyboardInterrupt("stand-in interruption")
        self.calls += 1
        self.prompts += len(prompts)
        return [GenerationResult(self._text(p[1]["content"]), "p" * 64, 10, 5.0, False) for p in prompts]

    def _text(self, user: str) -> str:
        strict = "\nRules:" in user
        plain = "\n".join(line for line in user.split("\n") if not line.startswith("Rules:"))
        target, mode = self.targets[plain]
        return target if mode == "good" or (mode == "retry" and strict) else BAD_TEXT

    def describe(self):
        return {"base_sha256": "b" * 64, "adapter_sha256": self.adapter_sha256}


def mode_by_rank(example) -> str:
    return ("good", "retry", "bad")[int(example["id"].encode().hex(), 16) % 3]


def small_config(tmp_path, **changes):
    values = dict(out=tmp_path / "results.json", limit=6, comparison_limit=4, batch1_sample=1, retrieval_limit=4,
                  chunk_size=4, perturbation_copies=1)
    return EvaluationConfig(**{**values, **changes})
