"""LoRA adapter files, shared by inference and training: the weights' sha256, the manifest that names
the base model an adapter was trained on, the compatibility check, applying an adapter to a base, and
the chat prompt both sides build the same way."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lendsafe.errors import ArtifactNotFoundError, IncompatibleAdapterError
from lendsafe.lm.loading import MODEL_LOADING

ADAPTER_MANIFEST = "lendsafe_adapter.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prompt_text(tokenizer, messages: list[dict]) -> str:
    """The chat template over ``messages`` ending with the assistant's generation prompt."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def adapter_sha256(adapter_dir: Path | str) -> str:
    path = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ArtifactNotFoundError(f"expected LoRA weights at {path}; got no file (run `lendsafe finetune`)")
    return file_sha256(path)


def read_adapter_manifest(adapter_dir: Path | str) -> dict:
    path = Path(adapter_dir) / ADAPTER_MANIFEST
    if not path.is_file():
        raise ArtifactNotFoundError(f"expected an adapter record at {path}; got no file (run `lendsafe finetune`)")
    return json.loads(path.read_text())


def check_adapter_compatible(adapter_dir: Path | str, base_sha256: str) -> dict:
    """The adapter's manifest, or IncompatibleAdapterError when it was trained on another base."""
    manifest = read_adapter_manifest(adapter_dir)
    if manifest.get("base_sha256") != base_sha256:
        raise IncompatibleAdapterError(
            f"adapter {adapter_dir} was trained on base sha256 {manifest.get('base_sha256')}; "
            f"the loaded base model has sha256 {base_sha256}")
    return manifest


def apply_adapter(model, adapter_dir: Path | str, base_sha256: str, merge: bool = True):
    """Base ``model`` with the checked adapter applied (merged into the weights by default)."""
    from peft import PeftModel

    check_adapter_compatible(adapter_dir, base_sha256)
    with MODEL_LOADING:
        adapted = PeftModel.from_pretrained(model, str(adapter_dir))
    return adapted.merge_and_unload() if merge else adapted
