"""LoRA dropout for training: masks from a seeded 16-bit random stream, and ``FastDropout``, the drop-in
replacement of peft's ``nn.Dropout`` (one draw shared by the projections that read the same input, as
one dropout on the block's normalised input would be). Built lazily: torch stays out of ``import lendsafe``.
"""
from __future__ import annotations

DROP_RESOLUTION = 1 << 16   # dropout draws are 16-bit: probability p to 1/65536


class DropoutDraws:
    """Keep/drop masks from a seeded PCG64 stream: 16-bit slices of 64-bit draws (about 3x torch.randint)."""

    def __init__(self, p: float, seed: int):
        import numpy as np

        self.p = p
        self.gain = 1.0 / (1.0 - p)
        self.threshold = round(p * DROP_RESOLUTION) - DROP_RESOLUTION // 2   # int16 draws below it are dropped
        self.bits = np.random.PCG64(seed)

    def dropped(self, x):
        """``x`` with each element zeroed with probability p (not rescaled: the caller applies ``gain``)."""
        import numpy as np
        import torch

        words = -(-x.numel() // 4)
        draws = torch.from_numpy(self.bits.random_raw(words).view(np.int16))[: x.numel()].view(x.shape)
        return x.masked_fill(draws < self.threshold, 0)


class FastDropout:
    """Inverted dropout for the stock peft modules, drawing its masks from ``DropoutDraws``."""

    @staticmethod
    def module(p: float, shared: list | None = None, seed: int = 0):
        import torch

        class _FastDropout(torch.nn.Module):
            def __init__(self, p: float, shared: list | None, seed: int):
                super().__init__()
                self.p = p
                self.draws = DropoutDraws(p, seed) if p > 0 else None
                self.shared = shared   # [input, output] of the last call, shared by layers fed the same input

            def forward(self, x):
                if not self.training or self.draws is None:
                    return x
                if self.shared is not None and self.shared[0] is x:
                    return self.shared[1]
                dropped = self.draws.dropped(x) * self.draws.gain
                if self.shared is not None:
                    self.shared[:] = [x, dropped]
                return dropped

        return _FastDropout(p, shared, seed)


def use_fast_dropout(model, p: float, seed: int = 0) -> int:
    """Swap every LoRA layer's ``nn.Dropout`` for ``FastDropout``; returns how many were swapped.

    Projections that read the same tensor (q/k/v; gate/up) share one dropped copy of it.
    """
    import torch

    swapped, groups = 0, {}
    for name, module in model.named_modules():
        dropouts = getattr(module, "lora_dropout", None)
        if dropouts is None:
            continue
        shared = groups.setdefault(_input_group(name), [None, None])
        for adapter, dropout in dropouts.items():
            if isinstance(dropout, torch.nn.Dropout):
                dropouts[adapter] = FastDropout.module(p, shared, seed + swapped)
                swapped += 1
    return swapped


def _input_group(module_name: str) -> str:
    """Modules fed the same tensor: '<layer>.self_attn.qkv' and '<layer>.mlp.gate_up'; others alone."""
    parent, _, leaf = module_name.rpartition(".")
    return parent + {"q_proj": ".qkv", "k_proj": ".qkv", "v_proj": ".qkv", "gate_proj": ".gate_up",
                     "up_proj": ".gate_up"}.get(leaf, "." + leaf)
