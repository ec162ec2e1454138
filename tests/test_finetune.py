"""LoRA fine-tuning: settings checks, prompt masking, a few-step run writing every artifact, adapter refusal."""
import json
import random

import pytest

from lendsafe.errors import ConfigurationError
from lendsafe.lm.adapters import ADAPTER_MANIFEST
from lendsafe.train.finetune import FinetuneSettings, encode_example, finetune, length_grouped_batches
from lendsafe.train.kernels import IGNORE_INDEX

REASONS = ["your debt-to-income ratio of 0.45 is too high", "your credit history shows late payments",
           "your income is not sufficient for the amount requested"]


def tiny_example(index: int, split: str) -> dict:
    reason = REASONS[index % len(REASONS)]
    return {"id": f"{split}-{index}", "application_id": f"app-{index}", "dataset": "hmda", "split": split,
            "messages": [{"role": "system", "content": "You write the explanation paragraph of a credit notice."},
                         {"role": "user", "content": f"Decision: denied\nReason: {reason}\nWrite the explanation."}],
            "target": f"We cannot approve your application because {reason}."}


def write_tiny_data(folder, train: int = 6, validation: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("validation", validation)):
        lines = [json.dumps(tiny_example(i, split)) for i in range(count)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"lr": 0.0}, {"epochs": -1.0}, {"lora_dropout": 1.0},
                                 {"max_length": 8}, {"max_steps": -1}])
def test_settings_reject_out_of_range_values(bad):
    with pytest.raises(ConfigurationError, match=next(iter(bad))):
        FinetuneSettings(**bad)


def test_every_setting_is_documented():
    assert all(FinetuneSettings.help_table().values())


def test_length_grouping_keeps_every_example_and_cuts_padding():
    rng = random.Random(0)
    items = [{"input_ids": [0] * rng.randint(20, 300)} for _ in range(200)]
    batches = length_grouped_batches(items, 4, random.Random(1))
    assert sorted(id(i) for b in batches for i in b) == sorted(id(i) for i in items)
    padding = sum(max(len(i["input_ids"]) for i in b) * len(b) - sum(len(i["input_ids"]) for i in b) for b in batches)
    shuffled = [items[i:i + 4] for i in range(0, len(items), 4)]
    baseline = sum(max(len(i["input_ids"]) for i in b) * len(b) - sum(len(i["input_ids"]) for i in b) for b in shuffled)
    assert padding < baseline / 3


@pytest.mark.slow
def test_prompt_tokens_are_masked_and_target_ends_with_eos():
    from transformers import AutoTokenizer

    from lendsafe.lm.basemodel import ensure_base_model

    tokenizer = AutoTokenizer.from_pretrained(ensure_base_model())
    encoded = encode_example(tokenizer, tiny_example(0, "train"), 384)
    target_ids = [t for t, label in zip(encoded["input_ids"], encoded["labels"]) if label != IGNORE_INDEX]
    assert target_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(target_ids[:-1]) == tiny_example(0, "train")["target"]
    assert encoded["labels"][0] == IGNORE_INDEX and not encoded["truncated"]
    assert encode_example(tokenizer, tiny_example(0, "train"), 16) is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finetune")
    settings = FinetuneSettings(data_dir=write_tiny_data(folder / "sft"), out=folder / "adapter", max_steps=2,
                                eval_every=1, batch_size=2)
    return settings, finetune(settings)


@pytest.mark.slow
def test_few_step_training_writes_every_artifact(trained):
    settings, run = trained
    for name in ("adapter_model.safetensors", "adapter_config.json", ADAPTER_MANIFEST, "loss.json", "loss_curve.png"):
        assert (settings.out / name).stat().st_size > 0, name
    manifest = json.loads((settings.out / ADAPTER_MANIFEST).read_text())
    assert manifest["steps"] == run.steps == 2
    assert set(manifest["data_sha256"]) == {"train.jsonl", "validation.jsonl"}
    assert len(manifest["base_sha256"]) == 64 and manifest["hyperparameters"]["lora_r"] == 16
    assert manifest["train_tokens_per_s"] > 0 and {"torch", "transformers", "peft"} <= set(manifest["library_versions"])
    assert manifest["training_step"] == "FusedGraniteStep"
    losses = json.loads((settings.out / "loss.json").read_text())
    assert [p["step"] for p in losses["train"]] == [1, 2] and [p["step"] for p in losses["validation"]] == [1, 2]
    assert json.loads((settings.out / "adapter_config.json").read_text())["base_model_name_or_path"] == settings.base_model
    card = (settings.out / "README.md").read_text()
    assert "2 steps" in card and manifest["base_sha256"][:16] in card and "More Information Needed" not in card


@pytest.mark.slow
def test_training_losses_are_finite_and_validation_improves(trained):
    import math

    _, run = trained
    assert all(math.isfinite(loss) for loss in run.train_losses)
    assert run.validation_losses[-1][1] < run.validation_losses[0][1]


@pytest.mark.slow
def test_training_is_deterministic(trained, tmp_path):
    settings, run = trained
    again = finetune(FinetuneSettings(**{**settings.__dict__, "out": tmp_path / "again"}))
    assert again.train_losses == run.train_losses
    assert again.manifest["adapter_sha256"] == run.manifest["adapter_sha256"]


def test_cli_registers_finetune_with_the_settings_flags(tmp_path):
    import argparse

    from lendsafe.commands import finetune as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["finetune", "--epochs", "2", "--max-steps", "3", "--data-dir", str(tmp_path)])
    assert (args.epochs, args.max_steps, args.data_dir, args.batch_size) == (2.0, 3, tmp_path, 4)


def test_card_sections_are_appended_once_and_then_replaced(tmp_path):
    from lendsafe.train.finetune import update_card_section

    card = tmp_path / "README.md"
    card.write_text("# Adapter\n\nTrained once.\n")
    update_card_section(card, "sweep", "## Sweep\n\nfirst")
    update_card_section(card, "preference", "## Preference")
    update_card_section(card, "sweep", "## Sweep\n\nsecond")
    text = card.read_text()
    assert text.startswith("# Adapter\n\nTrained once.\n") and "first" not in text
    assert text.index("second") < text.index("## Preference") and text.count("<!-- sweep -->") == 1


def test_attention_only_targets_are_a_setting():
    from lendsafe.train.finetune import TARGET_SETS, lora_config, target_modules

    assert FinetuneSettings().lora_targets == "all"
    assert set(lora_config(FinetuneSettings(lora_targets="attention")).target_modules) == set(TARGET_SETS["attention"])
    assert target_modules({"lora_targets": ["q_proj"]}) == ["q_proj"]          # records written before the setting
    with pytest.raises(ConfigurationError, match="lora_targets"):
        FinetuneSettings(lora_targets="mlp")
