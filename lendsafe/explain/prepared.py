"""The prepared-weights cache: the merged model and its int8 weights, kept under
``home/cache/writer/<identity>`` after the first load, so later processes read them instead of merging
the adapter and quantizing again (the same bits).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from lendsafe.explain.int8 import add_int8_decoding_weights, int8_state
from lendsafe.lm.basemodel import check_head_tied
from lendsafe.lm.loading import MODEL_LOADING

PREPARED_FORMAT = 1
PREPARED_MARK = "lendsafe_prepared.json"
INT8_FILE = "int8_decoding.safetensors"


def prepared_folder(home: Path, identity: dict) -> Path:
    """The folder of one (base, adapter, dtype) identity under ``home/cache/writer``."""
    key = {**identity, "format": PREPARED_FORMAT}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()
    return Path(home) / "cache" / "writer" / digest[:32]


def is_prepared(folder: Path | None) -> bool:
    return folder is not None and (folder / PREPARED_MARK).is_file()


def load_prepared(folder: Path, dtype, int8: bool):
    """``(model, tokenizer)`` read from a prepared folder, with its int8 weights when ``int8``."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    with MODEL_LOADING:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    check_head_tied(model, folder)
    if int8:
        saved = {name: tensor.clone() for name, tensor in load_file(str(folder / INT8_FILE)).items()}
        add_int8_decoding_weights(model, saved)      # own memory: the int8 kernel does not take mapped files
    return model, tokenizer


def start_prepared(model, tokenizer, folder: Path) -> Path | None:
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


def finish_prepared(model, partial: Path | None, folder: Path, identity: dict) -> None:
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
