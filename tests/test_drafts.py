"""Draft-verified decoding: a guessed output changes nothing but the number of decoding steps."""
import pytest

from lendsafe.errors import ConfigurationError
from lendsafe.explain.drafts import checked_drafts, draft_ids, draft_verified_greedy
from lendsafe.explain.int8 import add_int8_decoding_weights
from lm_fixtures import (DRAFT_MAX_NEW_TOKENS, MAX_NEW_TOKENS, PROMPTS, drafts_for, exact, fresh_adapter,  # noqa: F401
                         generator, held_out_rows)

def tiny_model(int8: bool):
    """A small random Llama (eager attention): float32, or bfloat16 with int8 decoding weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

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
                assert result.draft_tokens_accepted >= min(len(draft_ids(exact.tokenizer, draft)) - 1, expected.tokens) - 2
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


def test_drafts_are_checked_before_anything_runs():
    assert checked_drafts(None, 2) == [None, None] and checked_drafts(["a", None], 2) == ["a", None]
    with pytest.raises(ConfigurationError, match="one text or None per prompt"):
        checked_drafts(["only one"], 2)
    with pytest.raises(ConfigurationError, match=r"drafts\[1\] must be a string"):
        checked_drafts(["a text", 3], 2)


@pytest.mark.slow
def test_drafts_must_match_the_prompts(generator):
    with pytest.raises(ConfigurationError, match="one text or None per prompt"):
        generator.generate(PROMPTS[:2], drafts=["only one"])
    with pytest.raises(ConfigurationError, match=r"drafts\[1\] must be a string"):
        generator.generate(PROMPTS[:2], drafts=["a text", 3])


