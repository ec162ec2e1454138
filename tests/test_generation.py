"""LoraGenerator: refusal of a foreign adapter, determinism, batching, caching, cleaning, threads, its
``Writer`` face (each decision's composer text given as the draft) and seeded sampling beside greedy."""
import json
import threading
from dataclasses import dataclass

import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ConfigurationError, IncompatibleAdapterError
from lendsafe.explain.generation import GenerationCache, LoraGenerator, Sampling, clean_narrative
from lm_fixtures import MAX_NEW_TOKENS, PROMPTS, exact, fresh_adapter, generator  # noqa: F401 (fixtures)

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
def test_batched_equals_one_by_one_in_float32(exact):
    """Greedy batching with left padding changes nothing in float32 (bfloat16 rounding can flip near-ties)."""
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


@dataclass
class DraftEcho:
    text: str
    draft_tokens_accepted: int
    latency_ms: float = 1.0
    cached: bool = False


def recording_writer():
    """A LoraGenerator whose ``generate`` answers with the drafts it is given (a model that agrees with the
    composer), recording them; nothing is loaded."""
    writer = LoraGenerator.__new__(LoraGenerator)
    writer.drafts, writer.calls = [], []
    writer.describe = lambda: {"adapter_sha256": "ab" * 32}

    def generate(prompts, max_new_tokens=360, use_cache=True, drafts=None):
        writer.drafts.append(drafts)
        writer.calls.append((len(prompts), max_new_tokens, use_cache))
        return [DraftEcho(draft or "", len((draft or "").split())) for draft in drafts or [None] * len(prompts)]

    writer.generate = generate
    return writer


@pytest.mark.slow
def test_the_writer_gives_each_decisions_composer_text_as_draft():
    """Slow: loads the knowledge base (no language model)."""
    from lendsafe.explain.pipeline import Pipeline
    from lendsafe.knowledge.retrieval import KnowledgeBase

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    knowledge = KnowledgeBase(Settings())
    composed = Pipeline(Settings(use_llm=False), knowledge=knowledge).run(application)
    recorder = recording_writer()
    decision = Pipeline(Settings(), generator=recorder, knowledge=knowledge).run(application)
    assert recorder.drafts == [[composed.explanation]] and recorder.calls == [(1, 360, True)]
    assert decision.writer == "lora" and decision.explanation == composed.explanation
    assert decision.verification["attempts"][0]["draft_tokens_accepted"] == len(composed.explanation.split())
    recorder.write([composed], [[]], use_cache=False, drafts=False, max_new_tokens=7)
    assert recorder.drafts[-1] is None and recorder.calls[-1] == (1, 7, False)


def test_the_generation_cache_survives_its_file_being_removed(tmp_path):
    from lendsafe.explain.generation import GenerationCache

    cache = GenerationCache(tmp_path)
    cache.put("a", "text", 3, "sha")
    cache.path.unlink()
    assert GenerationCache(tmp_path).get("a") is None
    assert cache.get("b") is None
    cache.put("b", "other", 1, "sha")
    assert GenerationCache(tmp_path).get("b") == ("other", 1, "sha")


@pytest.mark.parametrize("bad", [{"temperature": 0.0}, {"temperature": -1.0}, {"temperature": 0.7, "top_p": 0.0},
                                 {"temperature": 0.7, "top_p": 1.5}])
def test_sampling_settings_are_checked(bad):
    with pytest.raises(ConfigurationError, match="temperature"):
        Sampling(**bad)


def test_a_prompts_sampling_seed_depends_on_the_seed_and_the_prompt_only():
    assert Sampling(0.7, seed=1).prompt_seed("p") == Sampling(1.3, top_p=0.9, seed=1).prompt_seed("p")
    assert len({Sampling(0.7, seed=1).prompt_seed("p"), Sampling(0.7, seed=2).prompt_seed("p"),
                Sampling(0.7, seed=1).prompt_seed("q")}) == 3


@pytest.fixture(scope="module")
def sampler(fresh_adapter, tmp_path_factory):
    return LoraGenerator(Settings(), adapter_dir=fresh_adapter, cache_dir=tmp_path_factory.mktemp("sampled"),
                         sampling=Sampling(1.0, seed=3))


@pytest.mark.slow
def test_sampled_texts_are_seeded_and_do_not_depend_on_the_batch(sampler):
    alone = sampler.generate(PROMPTS[:1], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
    together = sampler.generate(PROMPTS[:3], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)
    assert alone[0].text == together[0].text
    draws = sampler.sample(PROMPTS[:1], 3, max_new_tokens=MAX_NEW_TOKENS)[0]
    again = sampler.sample(PROMPTS[:1], 3, max_new_tokens=MAX_NEW_TOKENS)[0]
    assert [d.text for d in draws] == [d.text for d in again]
    assert len({d.text for d in draws}) > 1
    assert sampler.describe()["decoding"] == "sampled (temperature 1.0, top_p 1.0, seed 3)"


@pytest.mark.slow
def test_greedy_keeps_its_cache_keys_and_description(generator):
    """Greedy texts are cached under the same key as before sampling existed, and only greedy draws drafts."""
    generator.generate(PROMPTS[:1], max_new_tokens=MAX_NEW_TOKENS)
    params = {"max_new_tokens": MAX_NEW_TOKENS, "repetition_penalty": 1.0, "do_sample": False}
    assert generator.cache.get(generator.cache_key(PROMPTS[0], params)) is not None
    assert generator.describe()["decoding"] == "greedy"
    with pytest.raises(ConfigurationError, match="Sampling"):
        generator.sample(PROMPTS[:1], 2)
