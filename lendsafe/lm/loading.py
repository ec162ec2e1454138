"""One lock for every model load in the process.

While transformers' ``from_pretrained`` builds a model it swaps class-level functions for no-ops
(``PreTrainedModel.tie_weights``, the ``torch.nn.init`` functions) and puts the originals back when it
is done. Two loads in different threads (the dashboard's warm-up beside a decision, say) can put a
no-op back as the "original": from then on no model of the process ties its LM head to its embedding
or initialises a weight missing from the checkpoint, and generation turns to noise. Every load in
LendSafe (base model, adapter, embedding model, BERTScore model) holds this lock.
"""
from __future__ import annotations

import threading

MODEL_LOADING = threading.RLock()
