"""Draft-verified greedy decoding: a guess of the output checked in one forward pass.

After the prompt, the whole draft (e.g. the composer's text) is fed at once and every token the model
itself would have chosen greedily is kept. The output is the model's own greedy output (bit for bit
with the int8 default, up to near-ties with bfloat16 weights); the draft only saves one-token steps,
so it is no part of a generation's cache key.
"""
from __future__ import annotations

from contextlib import ExitStack

from lendsafe.errors import ConfigurationError
from lendsafe.explain.int8 import int8_weights_for_every_row

# After the model departs from the draft, the last LOOKUP_NGRAM tokens it wrote are looked up in the draft;
# where they occur, the draft's next tokens are checked in one pass, REALIGN_GUESS_TOKENS at first (a
# rejected guess wastes little), twice as many after each guess kept whole.
LOOKUP_NGRAM = 3
REALIGN_GUESS_TOKENS = 15
DRAFT_VERIFICATION = "greedy-verified drafts: only the model's own argmax tokens are kept"


def draft_ids(tokenizer, draft: str) -> list[int]:
    """A draft as the tokens the model would write for it: its text, then the end of turn."""
    ids = tokenizer(draft, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if ids else []


def checked_drafts(drafts: list[str | None] | None, count: int) -> list[str | None]:
    """One text or None per prompt (None for every prompt when no drafts are given)."""
    if drafts is None:
        return [None] * count
    if len(drafts) != count:
        raise ConfigurationError(f"drafts must hold one text or None per prompt ({count}); got {len(drafts)}")
    for position, draft in enumerate(drafts):
        if draft is not None and not isinstance(draft, str):
            raise ConfigurationError(f"drafts[{position}] must be a string or None; got {type(draft).__name__}")
    return list(drafts)


def draft_verified_greedy(model, prompt_ids: list[int], draft_ids: list[int], max_new_tokens: int,
                          stop_ids: list[int]) -> tuple[list[int], int]:
    """The model's greedy continuation of ``prompt_ids`` and how many of its tokens the draft supplied.

    The prompt runs alone, exactly as in ``generate``. Every later forward pass feeds the token not yet
    in the KV cache plus a guess from the draft (first the whole draft); the model's argmax at every
    guessed position is compared with the guess, the agreeing prefix is kept with the model's own next
    token after it, and the cache is cropped to what was kept. When the model departs from the draft,
    the draft is searched for the tokens it just wrote and guessed from there in a window that starts at
    REALIGN_GUESS_TOKENS and doubles while guesses are taken whole. The output is what one-token greedy
    decoding writes whatever the draft says: stop token included, at most ``max_new_tokens`` tokens.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    output: list[int] = []
    from_draft: list[bool] = []
    feed, guess, start, cursor, window = list(prompt_ids), [], 0, 0, len(draft_ids)
    with ExitStack() as decoding:
        while True:
            choices = _greedy_choices(model, cache, feed, guess)
            kept = next((i for i, (token, chosen) in enumerate(zip(guess, choices)) if token != chosen), len(guess))
            if kept < len(guess):
                cache.crop(-(len(guess) - kept))   # negative: tokens to remove (every transformers version)
            if guess:
                window = window * 2 if kept == len(guess) else REALIGN_GUESS_TOKENS
            output += guess[:kept] + [choices[kept]]
            from_draft += [True] * kept + [False]
            length = _finished_length(output, stop_ids, max_new_tokens)
            if length is not None:
                return output[:length], sum(from_draft[:length])
            if len(output) == 1:
                decoding.enter_context(int8_weights_for_every_row(model))
            feed = [choices[kept]]
            cursor = start + kept if kept else cursor   # a guess wholly rejected was a false alignment
            start, guess = _realigned_guess(output, draft_ids, cursor, min(window, max_new_tokens - len(output) - 1))


def _greedy_choices(model, cache, feed: list[int], guess: list[int]) -> list[int]:
    """The model's argmax after the last fed token and after every guessed token (len(guess) + 1)."""
    import torch

    logits = model(input_ids=torch.tensor([feed + guess]), past_key_values=cache, use_cache=True,
                   logits_to_keep=len(guess) + 1).logits
    return logits[0].argmax(dim=-1).tolist()


def _finished_length(output: list[int], stop_ids: list[int], limit: int) -> int | None:
    """Tokens to return (through the first stop token, at most ``limit``), or None to go on."""
    for position, token in enumerate(output[:limit]):
        if token in stop_ids:
            return position + 1
    return limit if len(output) >= limit else None


def _realigned_guess(output: list[int], draft_ids: list[int], cursor: int, limit: int) -> tuple[int, list[int]]:
    """``(start, tokens)``: at most ``limit`` draft tokens from the first place at or after ``cursor``
    that follows the model's last 3, 2 or 1 tokens (longest first); ``(cursor, [])`` when there is none."""
    if limit <= 0:
        return cursor, []
    for size in range(min(LOOKUP_NGRAM, len(output)), 0, -1):
        tail = output[-size:]
        for start in range(max(cursor, size), len(draft_ids)):
            if draft_ids[start - size:start] == tail:
                return start, draft_ids[start:start + limit]
    return cursor, []
