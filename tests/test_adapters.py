"""Adapter files: sha256 of the weights, the manifest, refusal of an adapter trained on another base."""
import hashlib
import json

import pytest

from lendsafe.lm.adapters import (ADAPTER_MANIFEST, ADAPTER_WEIGHTS, adapter_sha256, check_adapter_compatible,
                               read_adapter_manifest)
from lendsafe.errors import ArtifactNotFoundError, IncompatibleAdapterError


def test_adapter_trained_on_another_base_is_refused(tmp_path):
    (tmp_path / ADAPTER_MANIFEST).write_text(json.dumps({"base_sha256": "a" * 64}))
    with pytest.raises(IncompatibleAdapterError) as error:
        check_adapter_compatible(tmp_path, "b" * 64)
    assert "a" * 64 in str(error.value) and "b" * 64 in str(error.value)


def test_the_matching_base_returns_the_manifest(tmp_path):
    manifest = {"base_sha256": "a" * 64, "steps": 3}
    (tmp_path / ADAPTER_MANIFEST).write_text(json.dumps(manifest))
    assert check_adapter_compatible(tmp_path, "a" * 64) == manifest == read_adapter_manifest(tmp_path)


def test_weights_hash_and_missing_files_name_the_path(tmp_path):
    with pytest.raises(ArtifactNotFoundError, match=ADAPTER_WEIGHTS):
        adapter_sha256(tmp_path)
    with pytest.raises(ArtifactNotFoundError, match=ADAPTER_MANIFEST):
        read_adapter_manifest(tmp_path)
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(b"weights")
    assert adapter_sha256(tmp_path) == hashlib.sha256(b"weights").hexdigest()
