"""Language-model fixtures shared by the test files of the LoRA writer (generation, drafts, prepared
weights): a fresh (untrained) adapter, the default int8 generator, the float32 reference, prompts and
held-out rows with the guesses a draft may be."""
import json

import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.explain.generation import LoraGenerator

MAX_NEW_TOKENS = 24
REASONS = ["debt-to-income ratio of 0.45", "two late payments in the last year", "loan-to-value ratio of 1.06",
           "six months at the current job"]


def prompt(reason: str) -> list[dict]:
    return [{"role": "system", "content": "You write the explanation paragraph of a credit notice."},
            {"role": "user", "content": f"Decision: denied\nPrincipal reason: {reason}\nWrite the explanation."}]


PROMPTS = [prompt(r) for r in REASONS]
DRAFT_MAX_NEW_TOKENS = 32


def held_out_rows() -> list[dict]:
    """Three SFT test rows (messages + the composer's target): denials of both datasets and an approval."""
    rows = [json.loads(line) for line in (PROJECT_ROOT / "data" / "sft" / "test.jsonl").read_text().splitlines() if line]
    picks = [lambda r: r["dataset"] == "hmda" and r["decision"] == "deny",
             lambda r: r["dataset"] != "hmda" and r["decision"] == "deny", lambda r: r["decision"] != "deny"]
    return [next(row for row in rows if pick(row)) for pick in picks]


def drafts_for(rows: list[dict], index: int, own_text: str) -> dict[str, str]:
    """The guesses every output must survive unchanged: right, wrong, empty, exact, exact but one word."""
    words = own_text.split()
    middle = len(words) // 2
    return {"composer": rows[index]["target"], "another decision": rows[(index + 1) % len(rows)]["target"],
            "empty": "", "own output": own_text,
            "own output, one word changed": " ".join(words[:middle] + ["purple"] + words[middle + 1:])}


@pytest.fixture(scope="session")
def fresh_adapter(tmp_path_factory):
    from lendsafe.train.finetune import init_adapter

    folder = tmp_path_factory.mktemp("adapter")
    init_adapter(folder)
    return folder


@pytest.fixture(scope="session")
def generator(fresh_adapter, tmp_path_factory):
    return LoraGenerator(Settings(), adapter_dir=fresh_adapter, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def exact(fresh_adapter, tmp_path_factory):
    """The float32 reference generator."""
    return LoraGenerator(adapter_dir=fresh_adapter, cache_dir=tmp_path_factory.mktemp("exact"), dtype="float32")
