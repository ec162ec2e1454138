"""`LoraGenerator`: the base model with its LoRA adapter merged in, greedy, batched and cached.

A prompt is a chat ``messages`` list (system + user). Many prompts run in left-padded batches of
similar length; each output is cleaned to the narrative (special tokens, role prefixes and an
unfinished trailing sentence removed). Results are cached by sha256 of (model id, base sha256,
adapter sha256, prompt, generation parameters), in memory and in SQLite under ``home/cache``.

A prompt may come with a draft (the text the model is expected to write, e.g. the composer's):
after the prompt, the whole draft is checked in one forward pass and every token the model itself
would have chosen greedily is kept (draft-verified decoding, see ``draft_verified_greedy``). The
text is the model's own greedy output (bit for bit with the int8 default, up to near-ties with
bfloat16 weights); the draft only saves one-token steps, so it is no part of the cache key.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from lendsafe.config import Settings
from lendsafe.errors import ConfigurationError

CACHE_FILE = "generations.sqlite"
STOP_TOKENS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")
ROLE_PREFIX = re.compile(r"^\s*(?:<\|im_start\|>)?\s*(?:assistant|system|user)\s*[:\n]\s*", re.IGNORECASE)
TURN_MARKER = re.compile(r"(?:<\|im_(?:start|end)\|>|\n\s*(?:user|system|assistant)\s*[:\n])", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
DEFAULT_BATCH_SIZE = 8
# "int8" (default): bfloat16 model whose linear layers also hold per-channel int8 weights, used for
# the one-token decoding steps (half the bytes read per token: 1.4x faster than bfloat16 at batch 1,
# same narratives up to near-ties); the prompt still runs in bfloat16. "float32" is the exact reference
# (batched output equals one-by-one output); bfloat16 rounding can flip near-ties between batch shapes.
DTYPES = ("bfloat16", "float32", "int8")
DTYPE_OF_WEIGHTS = {"bfloat16": "bfloat16", "float32": "float32", "int8": "bfloat16"}
INT8_MAX_ROWS = 16   # rows (batch x new tokens) up to which a linear layer uses its int8 weights
# Decoding one token reads every weight once: memory-bound, and on a machine whose cores are shared a
# second OpenMP thread waiting at each barrier made it up to 20x slower; one thread is the robust default.
DEFAULT_THREADS = 1
# Draft-verified decoding: after the model departs from the draft, the last LOOKUP_NGRAM tokens it
# wrote are looked up in the draft; where they occur, the draft's next tokens are checked in one pass,
# REALIGN_GUESS_TOKENS at first (a rejected guess wastes little), twice as many after each guess kept whole.
LOOKUP_NGRAM = 3
REALIGN_GUESS_TOKENS = 15
# Eager attention (softmax in float32) gives every query row the same bits whether one token or many run
# at once; with the row-invariant int8 kernel this makes a verified draft bitwise equal to one-token
# decoding (SDPA's multi-row kernel does not: its logits differed from one-token steps by up to ~1).
ATTENTION = "eager"
DRAFT_VERIFICATION = "greedy-verified drafts: only the model's own argmax tokens are kept"
# The merged model and its int8 weights are kept under home/cache/writer/<identity> after the first load:
# later processes read them instead of merging the adapter and quantizing again (the same bits).
PREPARED_FORMAT = 1
PREPARED_MARK = "lendsafe_prepared.json"
INT8_FILE = "int8_decoding.safetensors"


@dataclass(frozen=True)
class GenerationResult:
    """One explanation: cleaned text, the sha256 of the exact prompt text, tokens generated, timing."""

    text: str
    prompt_sha256: str
    tokens: int
    latency_ms: float
    cached: bool
    draft_tokens_accepted: int | None = None   # tokens taken from a verified draft; None: no draft used


def clean_narrative(text: str) -> str:
    """The narrative alone: no role prefix, nothing after an end of turn, no unfinished last sentence."""
    text = ROLE_PREFIX.sub("", text, count=1)
    text = TURN_MARKER.split(text, maxsplit=1)[0]
    text = re.sub(r"[ \t]+", " ", text).strip()
    ends = list(SENTENCE_END.finditer(text))
    if ends and ends[-1].end() < len(text):
        text = text[: ends[-1].end()]
    return text.strip()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class GenerationCache:
    """sha256 key -> (text, tokens, prompt sha256), in memory and in a SQLite file; safe across threads."""

    def __init__(self, directory: Path | None):
        self.memory: dict[str, tuple[str, int, str]] = {}
        self.path = Path(directory) / CACHE_FILE if directory else None
        self.lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                           "tokens INTEGER NOT NULL, prompt_sha256 TEXT NOT NULL, created REAL NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, key: str) -> tuple[str, int, str] | None:
        with self.lock:
            if key in self.memory or not self.path:
                return self.memory.get(key)
            with self._connect() as db:
                row = db.execute("SELECT text, tokens, prompt_sha256 FROM generations WHERE key = ?", (key,)).fetchone()
            if row:
                self.memory[key] = tuple(row)
            return self.memory.get(key)

    def put(self, key: str, text: str, tokens: int, prompt_sha256: str) -> None:
        with self.lock:
            self.memory[key] = (text, tokens, prompt_sha256)
            if self.path:
                with self._connect() as db:
                    db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)",
                               (key, text, tokens, prompt_sha256, time.time()))


class LoraGenerator:
    """Base model + LoRA adapter (checked against the base's sha256, then merged) writing explanations."""

    def __init__(self, settings: Settings | None = None, adapter_dir: Path | str | None = None,
                 use_adapter: bool = True, cache_dir: Path | str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, dtype: str = "int8", threads: int | None = None):
        from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model
        from lendsafe.lm.adapters import adapter_sha256, check_adapter_compatible

        self.dtype = _checked_choice("dtype", dtype, DTYPES)
        self.settings = settings or Settings()
        self.base_sha256 = base_model_sha256(ensure_base_model(self.settings))
        self.adapter_dir = Path(adapter_dir or self.settings.adapter_dir) if use_adapter else None
        self.adapter_manifest = check_adapter_compatible(self.adapter_dir, self.base_sha256) if use_adapter else {}
        self.adapter_sha256 = adapter_sha256(self.adapter_dir) if use_adapter else None
        self.batch_size = batch_size
        self.threads = threads or DEFAULT_THREADS
        self.cache = GenerationCache(Path(cache_dir) if cache_dir else self.settings.home / "cache")
        self.lock = threading.Lock()
        self.model, self.tokenizer = self._load()

    def _load(self):
        """Model and tokenizer: from the prepared folder (adapter merged, int8 weights made) when a previous
        load left one, else from the base and the adapter, leaving the prepared folder for next time."""
        prepared = self.prepared_dir()
        if prepared is not None and (prepared / PREPARED_MARK).is_file():
            model, tokenizer = self._load_prepared(prepared)
        else:
            model, tokenizer = self._load_fresh(prepared)
        _set_attention(model, ATTENTION)
        model.eval()
        tokenizer.padding_side = "left"
        self.stop_ids = [i for i in (tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS)
                         if i is not None and i != tokenizer.unk_token_id]
        return model, tokenizer

    def prepared_dir(self) -> Path | None:
        """Where the merged (and int8) weights of this base, adapter and dtype are kept ready: only for the
        configured adapter with the default int8 weights (others load as they are, leaving nothing)."""
        if self.dtype != "int8" or self.adapter_dir is None or \
                self.adapter_dir.resolve() != Path(self.settings.adapter_dir).resolve():
            return None
        identity = {"base_sha256": self.base_sha256, "adapter_sha256": self.adapter_sha256, "dtype": self.dtype,
                    "format": PREPARED_FORMAT}
        return self.settings.home / "cache" / "writer" / sha256_text(json.dumps(identity, sort_keys=True))[:32]

    def _load_fresh(self, prepared: Path | None):
        """Base + adapter merged, then int8 weights; the merged weights, the tokenizer and the int8
        weights are left in ``prepared`` as they are made."""
        import torch

        from lendsafe.lm.basemodel import load_base_model
        from lendsafe.lm.adapters import apply_adapter

        model, tokenizer = load_base_model(self.settings, dtype=getattr(torch, DTYPE_OF_WEIGHTS[self.dtype]))
        if self.adapter_dir is not None:
            model = apply_adapter(model, self.adapter_dir, self.base_sha256, merge=True)
        partial = _start_prepared(model, tokenizer, prepared) if prepared is not None else None
        if self.dtype == "int8":
            add_int8_decoding_weights(model)
        _finish_prepared(model, partial, prepared, self.describe())
        return model, tokenizer

    def _load_prepared(self, folder: Path):
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        from lendsafe.lm.basemodel import check_head_tied
        from lendsafe.lm.loading import MODEL_LOADING

        transformers_logging.disable_progress_bar()
        with MODEL_LOADING:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, DTYPE_OF_WEIGHTS[self.dtype]),
                                                         local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        check_head_tied(model, folder)
        if self.dtype == "int8":
            saved = {name: tensor.clone() for name, tensor in load_file(str(folder / INT8_FILE)).items()}
            add_int8_decoding_weights(model, saved)      # own memory: the int8 kernel does not take mapped files
        return model, tokenizer

    def describe(self) -> dict:
        """What wrote the text: base id and sha256, adapter folder and sha256."""
        return {"base_model": self.settings.base_model, "base_sha256": self.base_sha256,
                "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
                "adapter_sha256": self.adapter_sha256,
                "adapter_trained": self.adapter_manifest.get("trained") if self.adapter_dir else None,
                "adapter_merged": self.adapter_dir is not None, "dtype": self.dtype, "threads": self.threads,
                "attention": ATTENTION, "decoding": "greedy", "draft_verification": DRAFT_VERIFICATION}

    def prompt_text(self, messages: list[dict]) -> str:
        from lendsafe.lm.adapters import prompt_text

        return prompt_text(self.tokenizer, messages)

    def cache_key(self, messages: list[dict], params: dict) -> str:
        identity = {"model": self.settings.base_model, "base_sha256": self.base_sha256,
                    "adapter_sha256": self.adapter_sha256, "dtype": self.dtype, "attention": ATTENTION,
                    "prompt": messages, "params": params}
        return sha256_text(json.dumps(identity, sort_keys=True, ensure_ascii=False))

    def generate(self, prompts: list[list[dict]], max_new_tokens: int = 360, repetition_penalty: float = 1.0,
                 use_cache: bool = True, drafts: list[str | None] | None = None) -> list[GenerationResult]:
        """One result per prompt, in order; cached prompts are answered without running the model
        (``use_cache=False`` always runs the model and leaves the cache untouched).

        ``drafts`` (one text or None per prompt) are guesses of the output: a prompt with a draft runs
        alone through ``draft_verified_greedy`` (same text, fewer decoding steps when the guess is good);
        the others run in batches. Drafts are ignored with a repetition penalty (plain ``generate``).
        """
        params = {"max_new_tokens": int(max_new_tokens), "repetition_penalty": float(repetition_penalty),
                  "do_sample": False}
        drafts = _checked_drafts(drafts, len(prompts)) if params["repetition_penalty"] == 1.0 else [None] * len(prompts)
        results: list[GenerationResult | None] = [None] * len(prompts)
        pending = []
        for index, messages in enumerate(prompts):
            started = time.perf_counter()
            key = self.cache_key(messages, params)
            hit = self.cache.get(key) if use_cache else None
            if hit:
                text, tokens, prompt_sha = hit
                results[index] = GenerationResult(text, prompt_sha, tokens, _ms_since(started), True)
            else:
                pending.append((index, key, self.prompt_text(messages), drafts[index]))
        for index, key, prompt, draft in [item for item in pending if item[3] is not None]:
            results[index] = self._keep(key, self._run_drafted(prompt, draft, params), use_cache)
        for batch in self._batches([item for item in pending if item[3] is None]):
            for (index, key, _, _), result in zip(batch, self._run_batch([item[2] for item in batch], params)):
                results[index] = self._keep(key, result, use_cache)
        return results

    def _keep(self, key: str, result: GenerationResult, use_cache: bool) -> GenerationResult:
        if use_cache:
            self.cache.put(key, result.text, result.tokens, result.prompt_sha256)
        return result

    def _batches(self, pending: list[tuple]) -> list[list[tuple]]:
        """Prompts (item[2]) sorted by length and cut into batches, so left padding stays short."""
        ordered = sorted(pending, key=lambda item: len(item[2]))
        return [ordered[i:i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def draft_ids(self, draft: str) -> list[int]:
        """A draft as the tokens the model would write for it: its text, then the end of turn."""
        ids = self.tokenizer(draft, add_special_tokens=False)["input_ids"]
        return ids + [self.tokenizer.eos_token_id] if ids else []

    def _run_drafted(self, prompt: str, draft: str, params: dict) -> GenerationResult:
        import torch

        with self.lock, torch.inference_mode(), _torch_threads(self.threads):
            started = time.perf_counter()
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            tokens, accepted = draft_verified_greedy(self.model, prompt_ids, self.draft_ids(draft),
                                                     params["max_new_tokens"], self.stop_ids)
            latency = _ms_since(started)
        return GenerationResult(clean_narrative(self.tokenizer.decode(tokens, skip_special_tokens=True)),
                                sha256_text(prompt), len(tokens), latency, False, accepted)

    def _run_batch(self, prompts: list[str], params: dict) -> list[GenerationResult]:
        import torch

        with self.lock, torch.inference_mode(), _torch_threads(self.threads):
            started = time.perf_counter()
            inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            output = self.model.generate(**inputs, **params, eos_token_id=self.stop_ids,
                                         pad_token_id=self.tokenizer.pad_token_id)
            latency = _ms_since(started)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [GenerationResult(clean_narrative(self.tokenizer.decode(row, skip_special_tokens=True)),
                                 sha256_text(prompt), self._count_tokens(row), latency, False)
                for prompt, row in zip(prompts, new_tokens)]

    def _count_tokens(self, row) -> int:
        """Tokens generated up to and including the first stop token (padding after it not counted)."""
        for position, token in enumerate(row.tolist()):
            if token in self.stop_ids:
                return position + 1
        return len(row)


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


def _checked_drafts(drafts: list[str | None] | None, count: int) -> list[str | None]:
    if drafts is None:
        return [None] * count
    if len(drafts) != count:
        raise ConfigurationError(f"drafts must hold one text or None per prompt ({count}); got {len(drafts)}")
    for position, draft in enumerate(drafts):
        if draft is not None and not isinstance(draft, str):
            raise ConfigurationError(f"drafts[{position}] must be a string or None; got {type(draft).__name__}")
    return list(drafts)


def add_int8_decoding_weights(model, prepared: dict | None = None) -> int:
    """Give every linear layer per-output-channel int8 weights for small inputs (decoding steps).

    Symmetric quantization, scale = max |w| / 127 per row; ``torch.ops.aten._weight_int8pack_mm``
    multiplies without de-quantizing. The bfloat16 weights stay for the prompt (many rows at once).
    ``prepared`` (from ``int8_state``) gives the int8 weights and scales instead of computing them.
    Returns the number of layers converted.
    """
    import torch

    class Int8DecodingLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear, qweight=None, scale=None):
            super().__init__()
            if qweight is None:
                weight = linear.weight.detach().float()
                scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
                qweight = (weight / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
            self.linear = linear
            self.max_rows = INT8_MAX_ROWS
            self.register_buffer("qweight", qweight)
            self.register_buffer("scale", scale.to(linear.weight.dtype))

        def forward(self, x):
            rows = x.numel() // x.shape[-1]
            if (self.max_rows is not None and rows > self.max_rows) or self.linear.bias is not None:
                return self.linear(x)
            out = torch.ops.aten._weight_int8pack_mm(x.reshape(rows, x.shape[-1]).contiguous(), self.qweight, self.scale)
            return out.reshape(*x.shape[:-1], out.shape[-1])

    converted = 0
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                key = f"{parent_name}.{name}" if parent_name else name
                saved = (prepared[f"{key}.qweight"], prepared[f"{key}.scale"]) if prepared else (None, None)
                setattr(parent, name, Int8DecodingLinear(child, *saved))
                converted += 1
    return converted


def int8_state(model) -> dict:
    """Every int8 decoding layer's weights and scales by layer name (what ``add_int8_decoding_weights``
    takes back as ``prepared``)."""
    return {f"{name}.{part}": getattr(module, part).contiguous()
            for name, module in model.named_modules() if hasattr(module, "qweight") and hasattr(module, "max_rows")
            for part in ("qweight", "scale")}


def _start_prepared(model, tokenizer, folder: Path) -> Path | None:
    """Save the merged model and tokenizer in a partial folder beside ``folder``; None when it cannot."""
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        return partial
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        return None


def _finish_prepared(model, partial: Path | None, folder: Path, identity: dict) -> None:
    """Add the int8 weights and the mark, then move the partial folder into place (whole or not at all)."""
    from safetensors.torch import save_file

    if partial is None:
        return
    try:
        int8 = int8_state(model)
        if int8:
            save_file(int8, str(partial / INT8_FILE))
        (partial / PREPARED_MARK).write_text(json.dumps(identity, indent=1, sort_keys=True))
        os.replace(partial, folder)
    except OSError:        # read-only home, or another process put the folder in place first
        pass
    shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def int8_weights_for_every_row(model):
    """Layers with int8 decoding weights use them for inputs of any size (a verified draft is computed
    with the weights that one-token decoding uses: ``_weight_int8pack_mm`` gives every row the same
    bits whatever the number of rows); no effect on a model without them."""
    layers = [module for module in model.modules() if hasattr(module, "qweight") and hasattr(module, "max_rows")]
    previous = [layer.max_rows for layer in layers]
    for layer in layers:
        layer.max_rows = None
    try:
        yield
    finally:
        for layer, rows in zip(layers, previous):
            layer.max_rows = rows


def _set_attention(model, implementation: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:  # transformers before 4.48
        model.config._attn_implementation = implementation


def _checked_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {choices}; got {value!r}")
    return value


@contextmanager
def _torch_threads(count: int):
    """Run torch ops with ``count`` intra-op threads, restoring the previous number afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
