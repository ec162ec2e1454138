"""LoraGenerator: refusal of a foreign adapter, determinism, batching, caching, cleaning, threads."""
import json
import threading

import pytest

from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError, IncompatibleAdapterError
from lendsafe.generation import GenerationCache, LoraGenerator, clean_narrative

MAX_NEW_TOKENS = 24
REASONS = ["debt-to-income ratio of 0.45", "two late payments in the last year", "loan-to-value ratio of 1.06",
           "six months at the current job"]


def prompt(reason: str) -> list[dict]:
    return [{"role": "system", "content": "You write the explanation paragraph of a credit notice."},
            {"role": "user", "content": f"Decision: denied\nPrincipal reason: {reason}\nWrite the explanation."}]


PROMPTS = [prompt(r) for r in REASONS]


@pytest.mark.parametrize("raw, expected", [
    ("assistant\nWe cannot approve it. Your ratio is high", "We cannot approve it."),
    ("We cannot approve it.<|im_end|>\n<|im_start|>user\nMore", "We cannot approve it."),
    ("We cannot approve it.\nuser: what now?", "We cannot approve it."),
    ("Your ratio (0.45) is high. Thank you!", "Your ratio (0.45) is high. Thank you!"),
    ("No sentence end at all", "No sentence end at all"),
])
def test_clean_narrative(raw, expected):
    assert clean_narrative(raw) == expected


def test_cache_survives_a_new_process(tmp_path):
    GenerationCache(tmp_path).put("k", "text", 3, "p" * 64)
    assert GenerationCache(tmp_path).get("k") == ("text", 3, "p" * 64)
    assert GenerationCache(None).get("k") is None


def test_int8_decoding_weights_match_the_linear_layer_and_leave_prompts_in_bfloat16():
    import torch

    from lendsafe.generation import INT8_MAX_ROWS, add_int8_decoding_weights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False)).to(torch.bfloat16)
    reference = model[0].weight.float()
    assert add_int8_decoding_weights(model) == 1
    step = torch.randn(3, 1, 64, dtype=torch.bfloat16)
    expected = step.float() @ reference.T
    error = (model(step).float() - expected).abs().max() / expected.abs().max()
    assert error < 0.03
    prompt = torch.randn(1, INT8_MAX_ROWS + 1, 64, dtype=torch.bfloat16)
    assert torch.equal(model(prompt), torch.nn.functional.linear(prompt, model[0].linear.weight))


@pytest.fixture(scope="session")
def fresh_adapter(tmp_path_factory):
    from lendsafe.finetune import init_adapter

    folder = tmp_path_factory.mktemp("adapter")
    init_adapter(folder)
    return folder


@pytest.fixture(scope="session")
def generator(fresh_adapter, tmp_path_factory):
    return LoraGenerator(Settings(), adapter_dir=fresh_adapter, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.mark.slow
def test_adapter_of_another_base_is_refused_before_loading(fresh_adapter, tmp_path):
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (tmp_path / name).write_bytes((fresh_adapter / name).read_bytes())
    manifest = json.loads((fresh_adapter / "lendsafe_adapter.json").read_text()) | {"base_sha256": "0" * 64}
    (tmp_path / "lendsafe_adapter.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleAdapterError, match="0" * 64):
        LoraGenerator(adapter_dir=tmp_path)


def test_unknown_dtype_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(ConfigurationError, match="dtype"):
        LoraGenerator(adapter_dir=tmp_path, dtype="int3")


@pytest.mark.slow
def test_generation_is_deterministic(generator):
    first = generator.generate(PROMPTS[:2], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
    second = generator.generate(PROMPTS[:2], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
    assert [r.text for r in first] == [r.text for r in second]
    assert all(r.text and 0 < r.tokens <= MAX_NEW_TOKENS and not r.cached for r in first)
    assert "<|im" not in first[0].text and not first[0].text.lower().startswith("assistant")


@pytest.mark.slow
def test_batched_equals_one_by_one_in_float32(fresh_adapter, tmp_path):
    """Greedy batching with left padding changes nothing in float32 (bfloat16 rounding can flip near-ties)."""
    exact = LoraGenerator(adapter_dir=fresh_adapter, cache_dir=tmp_path, dtype="float32")
    batched = exact.generate(PROMPTS, max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
    single = [exact.generate([p], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0] for p in PROMPTS]
    assert [(r.text, r.tokens, r.prompt_sha256) for r in batched] == [(r.text, r.tokens, r.prompt_sha256) for r in single]


@pytest.mark.slow
def test_cache_hit_returns_the_same_text(generator):
    fresh = generator.generate(PROMPTS[2:3], max_new_tokens=MAX_NEW_TOKENS)[0]
    again = generator.generate(PROMPTS[2:3], max_new_tokens=MAX_NEW_TOKENS)[0]
    assert (again.text, again.tokens, again.prompt_sha256, again.cached) == (fresh.text, fresh.tokens, fresh.prompt_sha256, True)
    other_params = generator.generate(PROMPTS[2:3], max_new_tokens=MAX_NEW_TOKENS - 1)[0]
    assert not other_params.cached
    on_disk = GenerationCache(generator.cache.path.parent).get(generator.cache_key(PROMPTS[2], {
        "max_new_tokens": MAX_NEW_TOKENS, "repetition_penalty": 1.0, "do_sample": False}))
    assert on_disk[0] == fresh.text


@pytest.mark.slow
def test_untrained_adapter_equals_the_plain_base(generator, fresh_adapter, tmp_path):
    plain = LoraGenerator(adapter_dir=fresh_adapter, use_adapter=False, cache_dir=tmp_path)
    assert plain.describe()["adapter_sha256"] is None and generator.describe()["adapter_sha256"]
    assert plain.cache_key(PROMPTS[0], {}) != generator.cache_key(PROMPTS[0], {})
    ours = generator.generate(PROMPTS[:1], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0]
    theirs = plain.generate(PROMPTS[:1], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0]
    assert ours.text == theirs.text


@pytest.mark.slow
def test_describe_names_base_and_adapter(generator, fresh_adapter):
    description = generator.describe()
    assert description["base_model"] == Settings().base_model and len(description["base_sha256"]) == 64
    assert description["adapter_dir"] == str(fresh_adapter) and description["adapter_trained"] is False
    assert description["dtype"] == "int8"


@pytest.mark.slow
def test_concurrent_calls_from_threads_agree(generator):
    expected = generator.generate(PROMPTS[3:4], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0].text
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        generator.generate(PROMPTS[3:4], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0].text)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 3
