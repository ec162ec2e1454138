"""Preference tuning: settings, labelling by verifier and agreement, pairs, wordings, the shipping rule,
installing with the previous adapter kept, and a two-pair DPO round whose reference is the SFT adapter."""
import json

import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ConfigurationError
from lendsafe.lm.adapters import ADAPTER_MANIFEST, adapter_sha256, prompt_text
from lendsafe.train.preference import (ADAPTER_FILES, PreferenceSettings, distinct_wordings, install_adapter,
                                       pairs_for, ship_on_validation, train_dpo, write_manifest)
from lendsafe.train.sft import load_examples

SHIPPED_SETTINGS = PROJECT_ROOT / "data" / "sweep" / "preference.toml"


def test_the_shipped_settings_read_and_every_setting_is_documented():
    settings = PreferenceSettings.read(SHIPPED_SETTINGS)
    assert settings.samples >= 2 and settings.temperature > 0 and settings.sft_adapter.is_absolute()
    assert all(PreferenceSettings.help_table().values())


@pytest.mark.parametrize("text, problem", [("[preference]\nbeta_value = 1\n", "beta_value"),
                                           ("[preference]\nsamples = 1\n", "samples"),
                                           ("[preference]\ntemperature = 0.0\n", "temperature")])
def test_bad_settings_are_refused(tmp_path, text, problem):
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ConfigurationError, match=problem):
        PreferenceSettings.read(tmp_path / "p.toml")


def sample(text, passed, agrees=True):
    return {"text": text, "passed": passed, "agrees": agrees, "failures": [] if passed else ["numbers_match"]}


def test_each_failing_sample_is_paired_with_a_verified_agreeing_one():
    labelled = [sample("good A", True), sample("good B", True), sample("odd but verified", True, agrees=False),
                sample("bad 1", False), sample("bad 2", False), sample("bad 2", False), sample("bad 3", False)]
    pairs = pairs_for("P", labelled)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("good A", "bad 1"), ("good B", "bad 2"), ("good A", "bad 3")]
    assert pairs_for("P", [sample("bad", False), sample("odd", True, agrees=False)]) == []
    assert pairs_for("P", [sample("good", True), sample("good too", True)]) == []


def test_wordings_ignore_figures():
    texts = ["Your ratio of 0.45 is high. We cannot approve.", "Your ratio of 0.61 is high. We cannot approve.",
             "Your ratio, 0.45, is high. We cannot approve."]
    assert distinct_wordings(texts) == {"texts": 3, "distinct_texts": 2, "distinct_sentences": 3}


def figures(first, errors, sampled):
    return {"greedy": {"first_pass": first, "meaning_errors": errors}, "sampled": {"first_pass": sampled}}


@pytest.mark.parametrize("after, ships", [(figures(91, 1, 20), True), (figures(90, 0, 20), True),
                                          (figures(90, 1, 20), False), (figures(92, 2, 20), False),
                                          (figures(92, 0, 19), False)])
def test_the_shipping_rule_needs_a_gain_and_no_loss(after, ships):
    assert ship_on_validation(figures(90, 1, 20), after) is ships


def test_installing_keeps_the_previous_adapter(tmp_path):
    shipped, new, kept = tmp_path / "shipped", tmp_path / "new", tmp_path / "kept"
    for folder, text in ((shipped, "old"), (new, "new")):
        folder.mkdir()
        for name in ADAPTER_FILES:
            (folder / name).write_text(text)
    install_adapter(new, shipped, kept)
    install_adapter(new, shipped, kept)       # a second install keeps the first previous adapter
    assert all((shipped / n).read_text() == "new" and (kept / n).read_text() == "old" for n in ADAPTER_FILES)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_two_pair_dpo_round_starts_from_the_sft_adapter_as_reference(tmp_path):
    """Before the first update the policy equals the reference, so the first logged rewards are ~0: the
    reference is the SFT adapter, not the bare base (against which the SFT policy would score far higher)."""
    from lendsafe.lm.basemodel import load_base_model

    settings = PreferenceSettings(work_dir=tmp_path, record_dir=tmp_path, batch_size=1, gradient_accumulation=1)
    _, tokenizer = load_base_model(Settings())
    examples = load_examples(PROJECT_ROOT / "data" / "sft" / "train.jsonl")[:2]
    pairs = [{"prompt": prompt_text(tokenizer, e["messages"]), "chosen": e["target"],
              "rejected": e["target"].replace("We cannot approve", "We are pleased to approve")} for e in examples]
    trained = train_dpo(settings, Settings(), pairs)
    assert trained["steps"] == 2 and trained["config"]["beta"] == settings.beta
    first = trained["log"][0]
    assert abs(first["rewards/chosen"]) < 0.05 and abs(first["rewards/rejected"]) < 0.05
    manifest = write_manifest(trained["out"], settings, {"pairs": 2})
    assert manifest["adapter_sha256"] == adapter_sha256(trained["out"])
    assert manifest["parent_adapter_sha256"] == adapter_sha256(settings.sft_adapter)
    assert json.loads((trained["out"] / ADAPTER_MANIFEST).read_text())["preference"] == {"pairs": 2}


def test_the_card_section_shows_before_after_and_the_composer():
    from lendsafe.train.preference import card_section

    wordings = {"texts": 16, "distinct_texts": 16, "distinct_sentences": 40}
    figures = {"greedy": {"first_pass": 47, "texts": 48, "meaning_errors": 1},
               "sampled": {"first_pass": 14, "texts": 16, "meaning_errors": 0, "wordings": wordings}}
    record = {"settings": {"beta": 0.1, "lr": 2e-4, "epochs": 1.0, "validation_temperature": 0.7},
              "samples": {"samples": 96, "applications": 24, "passed": 80, "passed_and_agreeing": 70, "pairs": 15},
              "pairs_trained": 12, "sampling": "sampled (temperature 1.0, top_p 1.0, seed 0)",
              "validation": {"evaluated": 48}, "sampled_validation": {"evaluated": 16}, "ship_rule": "rule",
              "before": figures, "composer": {"first_pass": 16, "texts": 16, "meaning_errors": 0, "wordings": wordings}}
    text = card_section(record)
    assert "| SFT adapter (before) | 47/48 | 1 | 14/16 | 16 texts, 40 sentences |" in text
    assert "| DPO adapter (after) | not measured" in text and "| composer | 16/16 | 0 | 16/16 |" in text
    assert "not decided yet" in text


def test_rounds_are_kept_side_by_side_and_an_unnamed_record_is_round_1(tmp_path):
    from lendsafe.train.preference import PREFERENCE_RECORD, read_rounds, write_record

    wordings = {"texts": 1, "distinct_texts": 1, "distinct_sentences": 3}
    figures = {"first_pass": 1, "texts": 1, "meaning_errors": 0, "wordings": wordings}
    record = {"settings": {"beta": 0.1, "lr": 1e-5, "epochs": 1.0, "validation_temperature": 0.7},
              "samples": {"samples": 4, "applications": 1, "passed": 3, "passed_and_agreeing": 3, "pairs": 1},
              "pairs_trained": 1, "sampling": "s", "validation": {"evaluated": 1}, "sampled_validation": {"evaluated": 1},
              "ship_rule": "rule", "composer": figures}
    (tmp_path / PREFERENCE_RECORD).write_text(json.dumps(record))
    write_record(record, PreferenceSettings(round="round-2", record_dir=tmp_path, work_dir=tmp_path))
    assert list(read_rounds(tmp_path / PREFERENCE_RECORD)) == ["round-1", "round-2"]
    card = (tmp_path / "README.md").read_text()
    assert "## Preference round-1 (DPO)" in card and "## Preference round-2 (DPO)" in card
