"""The prepared-weights cache: the configured adapter merged and quantized once, read back bit for bit."""
import pytest

from lendsafe.config import Settings
from lendsafe.explain.generation import LoraGenerator
from lendsafe.explain.prepared import PREPARED_MARK, is_prepared, prepared_folder
from lm_fixtures import MAX_NEW_TOKENS, PROMPTS, fresh_adapter  # noqa: F401 (fixtures)


def test_the_folder_is_named_by_base_adapter_dtype_and_format(tmp_path):
    import hashlib
    import json

    identity = {"base_sha256": "b" * 64, "adapter_sha256": "a" * 64, "dtype": "int8"}
    folder = prepared_folder(tmp_path, identity)
    key = json.dumps({**identity, "format": 1}, sort_keys=True).encode()
    assert folder == tmp_path / "cache" / "writer" / hashlib.sha256(key).hexdigest()[:32]
    assert prepared_folder(tmp_path, {**identity, "dtype": "float32"}) != folder
    assert not is_prepared(folder) and not is_prepared(None)
    folder.mkdir(parents=True)
    (folder / PREPARED_MARK).write_text("{}")
    assert is_prepared(folder)

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
