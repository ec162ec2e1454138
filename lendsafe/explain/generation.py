"""`LoraGenerator`: the base model with its LoRA adapter merged in, greedy, batched and cached.

A prompt is a chat ``messages`` list (system + user). Many prompts run in left-padded batches of
similar length; each output is cleaned to the narrative (special tokens, role prefixes and an
unfinished trailing sentence removed). Results are cached by sha256 of (model id, base sha256,
adapter sha256, prompt, generation parameters), in memory and in SQLite under ``home/cache``.

As a ``Writer`` (``write``) it gives each decision's composer text as a draft: a prompt with a draft
runs through draft-verified decoding (``lendsafe.explain.drafts``: the same text, fewer decoding
steps). Decoding is greedy unless a ``Sampling`` is given: then every prompt is sampled on its own,
its draws seeded from the sampling's seed and the prompt (the text does not depend on the batch), and
drafts are not used. The default int8 decoding weights are ``lendsafe.explain.int8``; the merged, quantized model
is kept ready on disk by ``lendsafe.explain.prepared``.
"""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lendsafe.config import Settings
from lendsafe.decide.decision import Decision
from lendsafe.errors import ConfigurationError
from lendsafe.explain.composer import compose
from lendsafe.explain.drafts import DRAFT_VERIFICATION, checked_drafts, draft_ids, draft_verified_greedy
from lendsafe.explain.int8 import add_int8_decoding_weights
from lendsafe.explain.prepared import finish_prepared, is_prepared, load_prepared, prepared_folder, start_prepared
from lendsafe.explain.writer import GenerationResult, Messages
from lendsafe.lm.adapters import adapter_sha256, apply_adapter, check_adapter_compatible, prompt_text
from lendsafe.lm.basemodel import base_model_sha256, ensure_base_model, load_base_model

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
# Decoding one token reads every weight once: memory-bound, and on a machine whose cores are shared a
# second OpenMP thread waiting at each barrier made it up to 20x slower; one thread is the robust default.
DEFAULT_THREADS = 1
# Eager attention (softmax in float32) gives every query row the same bits whether one token or many run
# at once; with the row-invariant int8 kernel this makes a verified draft bitwise equal to one-token
# decoding (SDPA's multi-row kernel does not: its logits differed from one-token steps by up to ~1).
ATTENTION = "eager"


@dataclass(frozen=True)
class Sampling:
    """Sampled decoding: softmax temperature, nucleus ``top_p`` and the seed every prompt's draws start from."""

    temperature: float
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.temperature <= 5 or not 0 < self.top_p <= 1:
            raise ConfigurationError(f"sampling needs 0 < temperature <= 5 and 0 < top_p <= 1; "
                                     f"got temperature={self.temperature!r}, top_p={self.top_p!r}")

    def params(self) -> dict:
        """What the cache key records of the sampling (greedy keys stay as they were)."""
        return {"do_sample": True, "temperature": float(self.temperature), "top_p": float(self.top_p),
                "seed": int(self.seed)}

    def prompt_seed(self, prompt: str) -> int:
        """The seed of one prompt's draws: from the sampling's seed and the prompt text alone."""
        return int(sha256_text(f"{self.seed}:{prompt}")[:15], 16)

    def describe(self) -> str:
        return f"sampled (temperature {self.temperature}, top_p {self.top_p}, seed {self.seed})"


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

    def _connect(self) -> sqlite3.Connection:
        """A connection to the cache file, its table made first (the file may have been removed since)."""
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                   "tokens INTEGER NOT NULL, prompt_sha256 TEXT NOT NULL, created REAL NOT NULL)")
        return db

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
    """Base model + LoRA adapter (checked against the base's sha256, then merged) writing explanations;
    a ``Writer`` whose texts carry the name 'lora'."""

    name = "lora"

    def __init__(self, settings: Settings | None = None, adapter_dir: Path | str | None = None,
                 use_adapter: bool = True, cache_dir: Path | str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, dtype: str = "int8", threads: int | None = None,
                 sampling: Sampling | None = None):
        """``sampling``: sample every text (seeded) instead of greedy decoding (the default)."""
        self.sampling = sampling
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
        import torch

        prepared = self.prepared_dir()
        if is_prepared(prepared):
            model, tokenizer = load_prepared(prepared, getattr(torch, DTYPE_OF_WEIGHTS[self.dtype]), self.dtype == "int8")
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
        return prepared_folder(self.settings.home, {"base_sha256": self.base_sha256,
                                                    "adapter_sha256": self.adapter_sha256, "dtype": self.dtype})

    def _load_fresh(self, prepared: Path | None):
        """Base + adapter merged, then int8 weights; the merged weights, the tokenizer and the int8
        weights are left in ``prepared`` as they are made."""
        import torch

        model, tokenizer = load_base_model(self.settings, dtype=getattr(torch, DTYPE_OF_WEIGHTS[self.dtype]))
        if self.adapter_dir is not None:
            model = apply_adapter(model, self.adapter_dir, self.base_sha256, merge=True)
        partial = start_prepared(model, tokenizer, prepared) if prepared is not None else None
        if self.dtype == "int8":
            add_int8_decoding_weights(model)
        finish_prepared(model, partial, prepared, self.describe())
        return model, tokenizer

    def describe(self) -> dict:
        """What wrote the text: base id and sha256, adapter folder and sha256."""
        return {"base_model": self.settings.base_model, "base_sha256": self.base_sha256,
                "adapter_dir": str(self.adapter_dir) if self.adapter_dir else None,
                "adapter_sha256": self.adapter_sha256,
                "adapter_trained": self.adapter_manifest.get("trained") if self.adapter_dir else None,
                "adapter_merged": self.adapter_dir is not None, "dtype": self.dtype, "threads": self.threads,
                "attention": ATTENTION, "decoding": self.sampling.describe() if self.sampling else "greedy",
                "draft_verification": DRAFT_VERIFICATION}

    def prompt_text(self, messages: list[dict]) -> str:
        return prompt_text(self.tokenizer, messages)

    def cache_key(self, messages: list[dict], params: dict) -> str:
        identity = {"model": self.settings.base_model, "base_sha256": self.base_sha256,
                    "adapter_sha256": self.adapter_sha256, "dtype": self.dtype, "attention": ATTENTION,
                    "prompt": messages, "params": params}
        return sha256_text(json.dumps(identity, sort_keys=True, ensure_ascii=False))

    def write(self, decisions: Sequence[Decision], prompts: Sequence[Messages], *, use_cache: bool = True,
              drafts: bool = True, max_new_tokens: int = 360) -> list[GenerationResult]:
        """The ``Writer`` face: ``generate`` with each decision's composer text as its draft (``drafts``;
        the same text, fewer decoding steps when the model agrees with the composer)."""
        guesses = [compose(decision) for decision in decisions] if drafts else None
        return self.generate(list(prompts), max_new_tokens=max_new_tokens, use_cache=use_cache, drafts=guesses)

    def generate(self, prompts: list[list[dict]], max_new_tokens: int = 360, repetition_penalty: float = 1.0,
                 use_cache: bool = True, drafts: list[str | None] | None = None) -> list[GenerationResult]:
        """One result per prompt, in order; cached prompts are answered without running the model
        (``use_cache=False`` always runs the model and leaves the cache untouched).

        ``drafts`` (one text or None per prompt) are guesses of the output: a prompt with a draft runs
        alone through ``draft_verified_greedy`` (same text, fewer decoding steps when the guess is good);
        the others run in batches. Drafts are ignored with a repetition penalty (plain ``generate``).
        """
        params = {"max_new_tokens": int(max_new_tokens), "repetition_penalty": float(repetition_penalty),
                  "do_sample": False} | (self.sampling.params() if self.sampling else {})
        greedy = params["repetition_penalty"] == 1.0 and not self.sampling
        drafts = checked_drafts(drafts, len(prompts)) if greedy else [None] * len(prompts)
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
        undrafted = [item for item in pending if item[3] is None]
        batches = [[item] for item in undrafted] if self.sampling else self._batches(undrafted)
        run = self._run_sampled if self.sampling else self._run_batch
        for batch in batches:
            for (index, key, _, _), result in zip(batch, run([item[2] for item in batch], params)):
                results[index] = self._keep(key, result, use_cache)
        return results

    def sample(self, prompts: list[list[dict]], count: int, max_new_tokens: int = 360) -> list[list[GenerationResult]]:
        """``count`` sampled texts per prompt (never cached), drawn together from the prompt's own seed."""
        if self.sampling is None:
            raise ConfigurationError("sample() needs a writer made with a Sampling; got greedy decoding")
        params = {"max_new_tokens": int(max_new_tokens), "repetition_penalty": 1.0} | self.sampling.params()
        return [self._run_sampled([self.prompt_text(messages)], params, count) for messages in prompts]

    def _keep(self, key: str, result: GenerationResult, use_cache: bool) -> GenerationResult:
        if use_cache:
            self.cache.put(key, result.text, result.tokens, result.prompt_sha256)
        return result

    def _batches(self, pending: list[tuple]) -> list[list[tuple]]:
        """Prompts (item[2]) sorted by length and cut into batches, so left padding stays short."""
        ordered = sorted(pending, key=lambda item: len(item[2]))
        return [ordered[i:i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def _run_drafted(self, prompt: str, draft: str, params: dict) -> GenerationResult:
        import torch

        with self.lock, torch.inference_mode(), _torch_threads(self.threads):
            started = time.perf_counter()
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            tokens, accepted = draft_verified_greedy(self.model, prompt_ids, draft_ids(self.tokenizer, draft),
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

    def _run_sampled(self, prompts: list[str], params: dict, count: int = 1) -> list[GenerationResult]:
        """``count`` sampled continuations of one prompt, the random draws seeded from the prompt alone."""
        import torch

        (prompt,) = prompts
        with self.lock, torch.inference_mode(), _torch_threads(self.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.sampling.prompt_seed(prompt))
            started = time.perf_counter()
            inputs = self.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
            output = self.model.generate(**inputs, max_new_tokens=params["max_new_tokens"], do_sample=True,
                                         temperature=params["temperature"], top_p=params["top_p"], top_k=0,
                                         num_return_sequences=count, eos_token_id=self.stop_ids,
                                         pad_token_id=self.tokenizer.pad_token_id)
            latency = _ms_since(started)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return [GenerationResult(clean_narrative(self.tokenizer.decode(row, skip_special_tokens=True)),
                                 sha256_text(prompt), self._count_tokens(row), latency, False) for row in new_tokens]

    def _count_tokens(self, row) -> int:
        """Tokens generated up to and including the first stop token (padding after it not counted)."""
        for position, token in enumerate(row.tolist()):
            if token in self.stop_ids:
                return position + 1
        return len(row)


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
