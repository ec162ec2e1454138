"""One LoRA training step on CPU: which step computes the loss (``FusedGraniteStep`` where it reproduces
the model, else the stock peft modules with ``FastDropout``), the float32 master-weight optimizer, and
keeping freed memory between steps. Built lazily: torch stays out of ``import lendsafe``.
"""
from __future__ import annotations

import ctypes
import sys

from lendsafe.train.dropout import use_fast_dropout
from lendsafe.train.fused import FusedGraniteStep, fusable
from lendsafe.train.kernels import target_cross_entropy

MALLOC_OPTIONS = {-1: 1 << 30, -2: 64 << 20, -3: 32 << 20}   # M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD


def stock_target_loss(model, batch, train: bool = True):
    """Mean next-token loss over target positions through the stock modules (LM head on targets only)."""
    model.train(train)
    inner = model.get_base_model()
    hidden = inner.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return target_cross_entropy(inner, hidden, batch["labels"])


class StockStep:
    """The loss through peft's own modules, with ``FastDropout`` in place of ``nn.Dropout``."""

    def __init__(self, model, dropout: float, seed: int = 0):
        self.model = model
        use_fast_dropout(model, dropout, seed)

    def loss(self, batch, train: bool = True):
        return stock_target_loss(self.model, batch, train)


def training_step(model, dropout: float, seed: int = 0):
    """``FusedGraniteStep`` where it reproduces the model, else ``StockStep``."""
    return FusedGraniteStep(model, dropout, seed) if fusable(model) else StockStep(model, dropout, seed)


class MasterWeightOptimizer:
    """AdamW on float32 master copies of bfloat16 LoRA weights.

    The LoRA matrices compute in bfloat16 like the base (no per-layer casts of activations, which cost
    as much as the matrix products on CPU), while the optimizer accumulates updates in float32.
    """

    def __init__(self, params, lr: float):
        import torch

        self.params = [p for p in params if p.requires_grad]
        self.masters = [p.detach().float().clone() for p in self.params]
        self.optimizer = torch.optim.AdamW(self.masters, lr=lr, weight_decay=0.0, fused=True)

    def step(self, lr: float) -> None:
        import torch

        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for param, master in zip(self.params, self.masters):
            master.grad = param.grad.float() if param.grad is not None else torch.zeros_like(master)
        self.optimizer.step()
        for param, master in zip(self.params, self.masters):
            param.data.copy_(master)
            param.grad = None


def keep_freed_memory() -> bool:
    """Ask glibc malloc to keep freed memory (no trimming, mmap only above 32 MiB): True when applied.

    A training step allocates and frees the same large activations every time; returned to the kernel,
    each comes back as fresh zeroed pages, which costs about as much as the arithmetic on them.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in MALLOC_OPTIONS.items())
