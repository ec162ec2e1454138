"""Base model: conversion to Granite, identical logits to the Llama architecture, hashing, clear errors."""
import json

import pytest

from lendsafe.lm.basemodel import (BUNDLED_BASE, GRANITE_IDENTITY_MULTIPLIERS, base_model_sha256, bundled_gguf_path,
                                check_head_tied, check_loads_completely, ensure_base_model, load_base_model)
from lendsafe.config import Settings
from lendsafe.errors import ArtifactNotFoundError
from lendsafe.lm.loading import MODEL_LOADING

PROMPTS = ["The application was denied because", "Debt-to-income ratio: 0.45", "x"]


@pytest.fixture(scope="module")
def base_dir():
    return ensure_base_model(Settings())


def test_bundled_gguf_is_installed():
    assert bundled_gguf_path().stat().st_size > 50_000_000


@pytest.mark.slow
def test_converted_config_is_granite_with_neutral_multipliers(base_dir):
    config = json.loads((base_dir / "config.json").read_text())
    assert config["model_type"] == "granite" and config["architectures"] == ["GraniteForCausalLM"]
    assert {k: config[k] for k in GRANITE_IDENTITY_MULTIPLIERS} == GRANITE_IDENTITY_MULTIPLIERS
    assert config["attention_multiplier"] == pytest.approx(config["head_dim"] ** -0.5)
    assert "quantization_config" not in config
    assert (base_dir / "chat_template.jinja").is_file() or "chat_template" in (base_dir / "tokenizer_config.json").read_text()


@pytest.mark.slow
def test_granite_logits_equal_llama_logits(base_dir):
    import torch
    from transformers import AutoTokenizer, GraniteForCausalLM, LlamaConfig, LlamaForCausalLM

    values = json.loads((base_dir / "config.json").read_text())
    for key in ("model_type", "architectures", "attention_multiplier", *GRANITE_IDENTITY_MULTIPLIERS):
        values.pop(key)
    with MODEL_LOADING:
        llama = LlamaForCausalLM.from_pretrained(base_dir, config=LlamaConfig(**values), dtype=torch.float32).eval()
        granite = GraniteForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt")
            llama_logits, granite_logits = llama(**ids).logits, granite(**ids).logits
            assert torch.equal(llama_logits, granite_logits), (llama_logits - granite_logits).abs().max()


@pytest.mark.slow
def test_load_base_model_gives_granite_in_bfloat16_with_chat_template(base_dir):
    import torch

    model, tokenizer = load_base_model(Settings())
    assert type(model).__name__ == "GraniteForCausalLM" and model.dtype == torch.bfloat16
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None


@pytest.mark.slow
def test_sha256_is_cached_and_follows_the_weights(base_dir, tmp_path):
    assert base_model_sha256(base_dir) == base_model_sha256(base_dir)
    assert json.loads((base_dir / "lendsafe_manifest.json").read_text())["sha256"] == base_model_sha256(base_dir)
    (tmp_path / "model.safetensors").write_bytes(b"one")
    first = base_model_sha256(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"two!")
    assert base_model_sha256(tmp_path) != first


def test_folder_without_weights_is_refused(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match="weight files"):
        base_model_sha256(tmp_path)


def test_absent_hub_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ArtifactNotFoundError, match="downloads are disabled"):
        ensure_base_model(Settings(base_model="ibm-granite/granite-3.1-3b-a800m-instruct-not-here"))


@pytest.mark.slow
def test_local_folder_goes_through_the_same_loader(base_dir):
    model, _ = load_base_model(Settings(base_model=str(base_dir)))
    assert type(model).__name__ == "GraniteForCausalLM"
    assert BUNDLED_BASE == Settings().base_model


def _tiny_granite(path, tie: bool):
    from transformers import GraniteConfig, GraniteForCausalLM

    config = GraniteConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie)
    with MODEL_LOADING:
        GraniteForCausalLM(config).save_pretrained(path)
    return path


@pytest.mark.slow
def test_converted_base_loads_every_weight_including_the_tied_head(base_dir):
    import torch
    from transformers import GraniteForCausalLM

    check_loads_completely(base_dir)
    with MODEL_LOADING:
        model = GraniteForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    assert torch.equal(model.get_output_embeddings().weight, model.get_input_embeddings().weight)
    assert torch.isfinite(model.get_output_embeddings().weight).all()


def test_folder_missing_the_output_head_is_refused(tmp_path):
    path = _tiny_granite(tmp_path / "tied", tie=True)
    check_loads_completely(path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(ArtifactNotFoundError, match="lm_head.weight"):
        check_loads_completely(path)


@pytest.mark.slow
def test_a_load_waits_for_any_other_load_in_the_process(base_dir):
    """Concurrent loads would leave transformers' no-op tie_weights patched in for good (untied heads)."""
    import threading

    loaded = {}
    with MODEL_LOADING:
        thread = threading.Thread(target=lambda: loaded.update(model=load_base_model(Settings())[0]))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive() and not loaded        # waiting for the lock this test holds
    thread.join()
    model = loaded["model"]
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_an_untied_head_under_a_tying_config_is_refused(tmp_path):
    import torch
    from transformers import GraniteForCausalLM

    with MODEL_LOADING:
        model = GraniteForCausalLM.from_pretrained(_tiny_granite(tmp_path / "tied", tie=True))
    check_head_tied(model, tmp_path)
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    with pytest.raises(ArtifactNotFoundError, match="tied"):
        check_head_tied(model, tmp_path)
