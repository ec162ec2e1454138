"""LoraGenerator: refusal of a foreign adapter, determinism, batching, caching, cleaning, threads,
draft-verified decoding (a guessed output changes nothing but the number of decoding steps)."""
import json
import threading
from dataclasses import dataclass

import pytest

from lendsafe.config import PROJECT_ROOT, Settings
from lendsafe.errors import ConfigurationError, IncompatibleAdapterError
from lendsafe.explain.generation import GenerationCache, LoraGenerator, clean_narrative, draft_verified_greedy

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

    from lendsafe.explain.generation import INT8_MAX_ROWS, add_int8_decoding_weights

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
    from lendsafe.train.finetune import init_adapter

    folder = tmp_path_factory.mktemp("adapter")
    init_adapter(folder)
    return folder


@pytest.fixture(scope="session")
def generator(fresh_adapter, tmp_path_factory):
    return LoraGenerator(Settings(), adapter_dir=fresh_adapter, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def exact(fresh_adapter, tmp_path_factory):
    """The float32 reference generator."""
    return LoraGenerator(adapter_dir=fresh_adapter, cache_dir=tmp_path_factory.mktemp("exact"), dtype="float32")


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


# ---------------------------------------------------------------------------- draft-verified decoding

def tiny_model(int8: bool):
    """A small random Llama (eager attention): float32, or bfloat16 with int8 decoding weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lendsafe.explain.generation import add_int8_decoding_weights

    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = LlamaForCausalLM(config).eval()
    model.set_attn_implementation("eager")
    if int8:
        model = model.to(torch.bfloat16)
        add_int8_decoding_weights(model)
    return model


def plain_greedy(model, prompt_ids: list[int], max_new_tokens: int, stop_ids: list[int]) -> list[int]:
    import torch

    with torch.inference_mode():
        output = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
                                eos_token_id=stop_ids, pad_token_id=0)
    return output[0, len(prompt_ids):].tolist()


TINY_PROMPT = [(7 * i + 3) % 96 for i in range(24)]     # more than INT8_MAX_ROWS tokens: a bfloat16 prefill


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8 decoding weights"])
def test_draft_verified_greedy_equals_plain_greedy_for_any_draft(int8):
    import torch

    model = tiny_model(int8)
    own = plain_greedy(model, TINY_PROMPT, 40, [])
    stop = next(t for i, t in enumerate(own) if i >= 20 and t not in own[:i])   # first written at i >= 20
    reference = plain_greedy(model, TINY_PROMPT, 40, [stop])
    assert len(reference) < len(own) and reference[-1] == stop
    changed = own[:10] + [(own[10] + 1) % 96] + own[11:]
    # the replaced token also appears further on: a guess from there fails, the right place must still be found
    decoy = own[:5] + [(own[5] + 1) % 96] + own[6:15] + [own[5]] + own[15:]
    drafts = {"own": own, "one token changed": changed, "changed, decoy further on": decoy, "shifted": own[1:],
              "unrelated": list(range(40)), "empty": [], "longer than the limit": own + own}
    with torch.inference_mode():
        outputs = {name: draft_verified_greedy(model, TINY_PROMPT, draft, 40, [stop]) for name, draft in drafts.items()}
        short = draft_verified_greedy(model, TINY_PROMPT, own, 7, [stop])
    assert {name: tokens for name, (tokens, _) in outputs.items()} == {name: reference for name in drafts}
    assert outputs["own"][1] == len(reference) - 1          # all but the first token came from the draft
    assert outputs["empty"][1] == 0 and outputs["unrelated"][1] < 3
    assert outputs["one token changed"][1] > len(reference) - 6    # guessing resumes after the changed token
    assert outputs["changed, decoy further on"][1] > len(reference) - 6
    assert short == (reference[:7], 5)                      # the 7th token is the model's own, after 5 guessed


@pytest.mark.slow
def test_drafts_change_nothing_in_float32(exact):
    """Held-out prompts, five guesses each (right, wrong, empty, exact, exact but one word): plain greedy text."""
    rows = held_out_rows()
    prompts = [row["messages"] for row in rows]
    plain = [exact.generate([p], max_new_tokens=DRAFT_MAX_NEW_TOKENS, use_cache=False)[0] for p in prompts]
    for index, (messages, expected) in enumerate(zip(prompts, plain)):
        for name, draft in drafts_for(rows, index, expected.text).items():
            result = exact.generate([messages], max_new_tokens=DRAFT_MAX_NEW_TOKENS, use_cache=False, drafts=[draft])[0]
            assert (name, result.text, result.tokens) == (name, expected.text, expected.tokens)
            assert result.draft_tokens_accepted is not None and expected.draft_tokens_accepted is None
            if name == "own output":   # all its text but the first token (prompt pass) and the model's last
                assert result.draft_tokens_accepted >= min(len(exact.draft_ids(draft)) - 1, expected.tokens) - 2
    mixed = exact.generate(prompts, max_new_tokens=DRAFT_MAX_NEW_TOKENS, use_cache=False,
                           drafts=[rows[0]["target"], None, plain[2].text])
    assert [r.text for r in mixed] == [r.text for r in plain]
    assert [r.draft_tokens_accepted is None for r in mixed] == [False, True, False]


@pytest.mark.slow
def test_drafts_change_nothing_with_the_default_int8_weights(generator):
    """Eager attention and the row-invariant int8 kernel: a verified draft gives the same bits as decoding."""
    rows = held_out_rows()[:2]
    for index, row in enumerate(rows):
        expected = generator.generate([row["messages"]], max_new_tokens=DRAFT_MAX_NEW_TOKENS, use_cache=False)[0]
        guesses = drafts_for(rows, index, expected.text)
        for name in ("composer", "own output", "own output, one word changed"):
            result = generator.generate([row["messages"]], max_new_tokens=DRAFT_MAX_NEW_TOKENS, use_cache=False,
                                        drafts=[guesses[name]])[0]
            assert (name, result.text, result.tokens) == (name, expected.text, expected.tokens)


@pytest.mark.slow
def test_the_cache_ignores_the_draft(generator, tmp_path):
    messages = held_out_rows()[0]["messages"]
    first = generator.generate([messages], max_new_tokens=MAX_NEW_TOKENS - 2, drafts=["We cannot approve it."])[0]
    again = generator.generate([messages], max_new_tokens=MAX_NEW_TOKENS - 2)[0]
    other = generator.generate([messages], max_new_tokens=MAX_NEW_TOKENS - 2, drafts=["Something else."])[0]
    assert not first.cached and first.draft_tokens_accepted is not None
    assert (again.cached, again.text, other.cached, other.text) == (True, first.text, True, first.text)
    assert generator.describe()["draft_verification"] and generator.describe()["attention"] == "eager"


@pytest.mark.slow
def test_drafts_must_match_the_prompts(generator):
    with pytest.raises(ConfigurationError, match="one text or None per prompt"):
        generator.generate(PROMPTS[:2], drafts=["only one"])
    with pytest.raises(ConfigurationError, match=r"drafts\[1\] must be a string"):
        generator.generate(PROMPTS[:2], drafts=["a text", 3])


@dataclass
class DraftEcho:
    text: str
    draft_tokens_accepted: int
    latency_ms: float = 1.0
    cached: bool = False


class DraftRecorder:
    """A writer that takes drafts and answers with them (as a model that agrees with the composer would)."""

    def __init__(self):
        self.drafts: list[list[str]] = []

    def generate(self, prompts, drafts=None):
        self.drafts.append(list(drafts))
        return [DraftEcho(draft, len(draft.split())) for draft in drafts]

    def describe(self):
        return {"adapter_sha256": "ab" * 32}


@pytest.mark.slow
def test_the_pipeline_gives_the_composer_text_as_draft():
    """Slow: loads the knowledge base (no language model)."""
    from lendsafe.explain.pipeline import Pipeline
    from lendsafe.knowledge.retrieval import KnowledgeBase

    application = json.loads((PROJECT_ROOT / "data" / "examples" / "hmda_denial.json").read_text())
    knowledge = KnowledgeBase(Settings())
    composed = Pipeline(Settings(use_llm=False), knowledge=knowledge).run(application)
    recorder = DraftRecorder()
    decision = Pipeline(Settings(), generator=recorder, knowledge=knowledge).run(application)
    assert recorder.drafts == [[composed.explanation]]
    assert decision.writer == "lora" and decision.explanation == composed.explanation
    assert decision.verification["attempts"][0]["draft_tokens_accepted"] == len(composed.explanation.split())


@pytest.mark.slow
def test_a_later_process_reads_the_prepared_weights_and_gets_the_same_bits(tmp_path):
    """The configured adapter, merged and quantized once, is read back from disk: the same weights and text
    as merging and quantizing again."""
    import torch

    prepared = LoraGenerator(Settings(), cache_dir=tmp_path / "a")
    folder = prepared.prepared_dir()
    assert folder is not None and (folder / "lendsafe_prepared.json").is_file()
    fresh = LoraGenerator(Settings(), cache_dir=tmp_path / "b")
    fresh.model, _ = fresh._load_fresh(None)                  # merged and quantized in this process
    mine, theirs = fresh.model.state_dict(), prepared.model.state_dict()
    assert sorted(mine) == sorted(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert any(k.endswith("qweight") for k in theirs)
    texts = [g.generate(PROMPTS[:1], max_new_tokens=MAX_NEW_TOKENS, use_cache=False)[0].text for g in (fresh, prepared)]
    drafted = [g.generate(PROMPTS[:1], max_new_tokens=MAX_NEW_TOKENS, use_cache=False, drafts=[texts[0]])[0].text
               for g in (fresh, prepared)]                     # every row through the int8 kernel
    assert texts[0] == texts[1] == drafted[0] == drafted[1]


def test_only_the_configured_adapter_with_int8_weights_is_kept_prepared(fresh_adapter):
    generator = LoraGenerator.__new__(LoraGenerator)
    generator.settings, generator.base_sha256, generator.adapter_sha256 = Settings(), "b" * 64, "a" * 64
    for adapter, dtype, kept in [(Settings().adapter_dir, "int8", True), (fresh_adapter, "int8", False),
                                 (Settings().adapter_dir, "float32", False), (None, "int8", False)]:
        generator.adapter_dir, generator.dtype = adapter, dtype
        assert (generator.prepared_dir() is not None) == kept
