"""One LoRA training step on CPU: the loss of a batch, computed for speed from peft's own parameters.

Through the stock modules most of a step goes outside the matrix products: peft applies each LoRA
update as separate bf16 element-wise passes, SDPA's CPU flash kernel runs well below the machine's
matmul rate at these lengths, and every fresh large tensor page-faults. ``FusedGraniteStep`` computes
the same loss from the same parameters (tests compare losses and gradients with the stock model):

* q/k/v and gate/up as one frozen product each; every LoRA update added inside ``addmm_``, its scale
  (and dropout's 1/(1-p)) applied on the rank-r side;
* LoRA dropout as one masked fill from 16-bit random draws, one draw shared by the projections that
  read the same input (as one dropout on the block's normalised input would be);
* causal attention in query blocks, each against only the keys it may see (bf16 products and float32
  softmax, the arithmetic of transformers' eager attention); no padding mask, because batches are
  right-padded and under a causal mask no real token sees a pad;
* the LM head and a float32 cross-entropy on target positions only.

Bases outside ``FUSED_ARCHITECTURES`` (a mixture-of-experts Granite, say) train through the stock
modules with ``FastDropout``; ``training_step`` chooses. Built lazily: torch stays out of
``import lendsafe``.
"""
from __future__ import annotations

import ctypes
import functools
import math
import sys

IGNORE_INDEX = -100
FUSED_ARCHITECTURES = ("GraniteForCausalLM",)
PROJECTION_GROUPS = (("q_proj", "k_proj", "v_proj"), ("o_proj",), ("gate_proj", "up_proj"), ("down_proj",))
QUERY_BLOCK = 96            # query rows per attention block: fewer masked-out products, few calls
DROP_RESOLUTION = 1 << 16   # dropout draws are 16-bit: probability p to 1/65536
MALLOC_OPTIONS = {-1: 1 << 30, -2: 64 << 20, -3: 32 << 20}   # M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD


# ---------------------------------------------------------------- dropout

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


# ---------------------------------------------------------------- losses

def stock_target_loss(model, batch, train: bool = True):
    """Mean next-token loss over target positions through the stock modules (LM head on targets only)."""
    model.train(train)
    inner = model.get_base_model()
    hidden = inner.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return target_cross_entropy(inner, hidden, batch["labels"])


def target_cross_entropy(inner, hidden, labels):
    """Cross-entropy of the next token at every labelled position; the LM head sees only those rows."""
    shifted = labels[:, 1:]
    selected = shifted != IGNORE_INDEX
    head = inner.lm_head
    scaling = getattr(inner.config, "logits_scaling", 1.0)
    return ChunkedHeadLoss.function().apply(hidden[:, :-1][selected], head.weight, shifted[selected], scaling)


class ChunkedHeadLoss:
    """Mean cross-entropy of ``hidden @ W^T / scaling`` for a frozen LM head, in row chunks.

    The vocabulary-wide logits of every target row (tens of MB) never exist at once: each chunk's
    logits are made in reused buffers, log-softmaxed in float32 and turned into
    ``(softmax - one_hot) @ W`` at once, so the backward pass is one scaling of a [rows, hidden]
    tensor. Fresh tensors that large would page-fault every step, which costs more than the arithmetic.
    """

    ROWS = 128
    _buffers: dict = {}

    @classmethod
    def buffer(cls, name: str, shape: tuple, dtype):
        """A scratch tensor of at least ``shape``, kept for the next call (one training thread)."""
        import torch

        key = (name, dtype)
        held = cls._buffers.get(key)
        if held is None or held.shape[0] < shape[0] or held.shape[1:] != shape[1:]:
            held = cls._buffers[key] = torch.empty(shape, dtype=dtype)
        return held[: shape[0]]

    @staticmethod
    @functools.cache
    def function():
        import torch

        class _Function(torch.autograd.Function):
            @staticmethod
            def forward(ctx, hidden, weight, labels, scaling):
                if weight.requires_grad:
                    raise ValueError("expected a frozen LM head (the adapter does not train it); got a trainable one")
                losses = torch.empty(len(labels), dtype=torch.float32)
                grad = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
                for start in range(0, len(labels), ChunkedHeadLoss.ROWS):
                    rows = slice(start, start + ChunkedHeadLoss.ROWS)
                    losses[rows] = _chunk_loss(hidden[rows], weight, labels[rows], scaling,
                                               None if grad is None else grad[rows])
                ctx.save_for_backward(grad)
                return losses.mean()

            @staticmethod
            def backward(ctx, grad_output):
                (grad,) = ctx.saved_tensors
                return grad * (grad_output / len(grad)), None, None, None

        return _Function


def _chunk_loss(hidden, weight, labels, scaling: float, grad_out):
    """Per-row losses of one chunk; writes ``(softmax - one_hot) @ W / scaling`` into ``grad_out`` if given."""
    import torch

    shape = (len(labels), weight.shape[0])
    logits = torch.mm(hidden, weight.t(), out=ChunkedHeadLoss.buffer("logits", shape, weight.dtype))
    log_probs = ChunkedHeadLoss.buffer("log_probs", shape, torch.float32)
    log_probs.copy_(logits)
    if scaling != 1.0:
        log_probs.div_(scaling)
    torch.log_softmax(log_probs, -1, out=log_probs)
    index = labels.unsqueeze(1)
    losses = -log_probs.gather(1, index).squeeze(1)
    if grad_out is not None:
        probs = log_probs.exp_().scatter_add_(1, index, torch.full(index.shape, -1.0))
        torch.mm(logits.copy_(probs), weight, out=grad_out)
        if scaling != 1.0:
            grad_out.div_(scaling)
    return losses


# ---------------------------------------------------------------- fused Granite step

def fusable(model) -> bool:
    """True when ``FusedGraniteStep`` reproduces ``model``: a plain Granite decoder with LoRA on every projection."""
    inner = model.get_base_model()
    config = inner.config
    if type(inner).__name__ not in FUSED_ARCHITECTURES or len(model.peft_config) != 1:
        return False
    if config.attention_bias or config.mlp_bias or config.hidden_act != "silu" or config.attention_dropout:
        return False
    lora = next(iter(model.peft_config.values()))
    names = {name for group in PROJECTION_GROUPS for name in group}
    return names <= set(lora.target_modules) and not lora.use_dora and lora.bias == "none"


class FusedGraniteStep:
    """The training loss of a peft-wrapped Granite model, computed with fused projections and attention."""

    def __init__(self, model, dropout: float, seed: int = 0):
        import torch

        self.model = model
        self.inner = model.get_base_model()
        config = self.inner.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.attention_scale = getattr(config, "attention_multiplier", self.head_dim ** -0.5)
        self.residual = getattr(config, "residual_multiplier", 1.0)
        self.embedding = getattr(config, "embedding_multiplier", 1.0)
        self.draws = DropoutDraws(dropout, seed) if dropout > 0 else None
        with torch.no_grad():
            self.layers = [self._fused_layer(layer) for layer in self.inner.model.layers]

    def _fused_layer(self, layer) -> dict:
        """Frozen weights of each projection group concatenated once; LoRA parameters by reference."""
        import torch

        groups = []
        for names in PROJECTION_GROUPS:
            modules = [_projection(layer, name) for name in names]
            adapter = modules[0].active_adapters[0]
            groups.append({
                "weight": torch.cat([m.base_layer.weight for m in modules]).detach(),
                "lora_a": [m.lora_A[adapter].weight for m in modules],
                "lora_b": [m.lora_B[adapter].weight for m in modules],
                "scale": modules[0].scaling[adapter]})
        return {"norms": (layer.input_layernorm, layer.post_attention_layernorm), "groups": groups}

    def loss(self, batch, train: bool = True):
        """Mean next-token loss over the batch's target positions (batches right-padded)."""
        import torch

        self.model.train(train)
        ids = batch["input_ids"]
        x = self.inner.model.embed_tokens(ids)
        if self.embedding != 1.0:
            x = x * self.embedding
        rotary = self._rotary_tables(x, ids.shape[1])
        for layer in self.layers:
            x = self._layer(layer, x, rotary, train)
        return target_cross_entropy(self.inner, self._norm(self.inner.model.norm, x), batch["labels"])

    def _rotary_tables(self, x, length: int):
        """cos and signed sin over [1, length, q+k heads, dim], the query heads' also scaled by the attention scale.

        With them rotation is ``x * cos + roll(x, dim/2) * sin``: ``rotate_half(x) * sin`` equals
        ``roll(x) * cat(-sin1, sin2)``. Folding the scale into the tables costs one bf16 rounding, as
        eager attention's scaling of the scores does (none for a power of two such as SmolLM2's 1/8).
        """
        import torch

        cos, sin = self.inner.model.rotary_emb(x, position_ids=torch.arange(length).unsqueeze(0))
        half = sin.shape[-1] // 2
        signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        scale = torch.tensor([self.attention_scale] * self.heads + [1.0] * self.kv_heads, dtype=x.dtype)
        return cos.unsqueeze(2) * scale[:, None], signed_sin.unsqueeze(2) * scale[:, None]

    @staticmethod
    def _norm(module, x):
        return FusedRMSNorm.function().apply(x, module.weight, module.variance_epsilon)

    def _layer(self, layer: dict, x, rotary, train: bool):
        import torch

        qkv, o, gate_up, down = layer["groups"]
        attention_norm, mlp_norm = layer["norms"]
        rows = x.shape[0] * x.shape[1]
        h = self._project(qkv, self._norm(attention_norm, x.view(rows, -1)), train)
        attended = self._attention(h.view(*x.shape[:2], -1, self.head_dim), rotary)
        x = torch.add(x, self._project(o, attended.view(rows, -1), train).view(x.shape), alpha=self.residual)
        h = self._project(gate_up, self._norm(mlp_norm, x.view(rows, -1)), train)
        gate, up = h.split(h.shape[1] // 2, dim=1)
        h = self._project(down, torch.nn.functional.silu(gate) * up, train)
        return torch.add(x, h.view(x.shape), alpha=self.residual)

    def _project(self, group: dict, x, train: bool):
        """Frozen product plus LoRA update: x W^T + (scale * drop(x) A^T) B^T, the update inside addmm_."""
        import torch

        gain = 1.0
        dropped = x
        if train and self.draws is not None:
            dropped, gain = self.draws.dropped(x), self.draws.gain
        lora_a, lora_b = group["lora_a"], group["lora_b"]
        a = lora_a[0] if len(lora_a) == 1 else torch.cat(lora_a)
        b = lora_b[0] if len(lora_b) == 1 else torch.block_diag(*lora_b)
        low = torch.nn.functional.linear(dropped, a) * (group["scale"] * gain)
        return torch.nn.functional.linear(x, group["weight"]).addmm_(low, b.t())

    def _attention(self, qkv, rotary):
        """Causal grouped-query attention of [batch, length, heads, dim] projections -> [batch, length, hidden].

        Queries are laid out [batch, kv head, position, group, dim], so each block of positions is one
        contiguous [batch * kv heads, rows * group, dim] slab against the keys of its kv head.
        """
        import torch

        batch, length = qkv.shape[:2]
        heads, kv_heads, group = self.heads, self.kv_heads, self.heads // self.kv_heads
        cos, sin = rotary
        qk = qkv[:, :, : heads + kv_heads]
        qk = torch.addcmul(qk * cos, qk.roll(qk.shape[-1] // 2, dims=-1), sin)
        q = qk[:, :, :heads].view(batch, length, kv_heads, group, -1).permute(0, 2, 1, 3, 4).contiguous()
        k = qk[:, :, heads:].permute(0, 2, 1, 3).contiguous()
        v = qkv[:, :, heads + kv_heads:].permute(0, 2, 1, 3).contiguous()
        slabs = batch * kv_heads
        out = BlockedCausalAttention.function().apply(q.view(slabs, length * group, -1), k.view(slabs, length, -1),
                                                      v.view(slabs, length, -1), group)
        out = out.view(batch, kv_heads, length, group, -1)
        return out.permute(0, 2, 1, 3, 4).reshape(batch, length, heads * self.head_dim)


def _projection(layer, name: str):
    parent = layer.self_attn if name in ("q_proj", "k_proj", "v_proj", "o_proj") else layer.mlp
    return getattr(parent, name)


def _query_blocks(length: int) -> list[tuple[int, int]]:
    count = max(1, math.ceil(length / QUERY_BLOCK))
    edges = [round(length * i / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


class BlockedCausalAttention:
    """Causal attention in query blocks, forward and backward written out.

    q: [slabs, length * group, dim] with rows ordered (position, group); k, v: [slabs, length, dim].
    Each block of positions meets only the keys up to its last position: bf16 products, float32
    softmax (the arithmetic of transformers' eager attention); gradients of k and v accumulate in place.
    """

    @staticmethod
    @functools.cache
    def function():
        import torch

        class _Function(torch.autograd.Function):
            @staticmethod
            def forward(ctx, q, k, v, group):
                out = torch.empty_like(q)
                probabilities = []
                for start, end in _query_blocks(k.shape[1]):
                    rows = slice(start * group, end * group)
                    scores = torch.baddbmm(_causal_bias(start, end, group, q.dtype), q[:, rows],
                                           k[:, :end].transpose(1, 2))
                    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
                    out[:, rows] = torch.bmm(weights.to(v.dtype), v[:, :end])
                    probabilities.append(weights)
                ctx.save_for_backward(q, k, v, *probabilities)
                ctx.group = group
                return out

            @staticmethod
            def backward(ctx, grad):
                q, k, v, *probabilities = ctx.saved_tensors
                group = ctx.group
                grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
                for (start, end), weights in zip(_query_blocks(k.shape[1]), probabilities):
                    rows = slice(start * group, end * group)
                    grad_rows = grad[:, rows]
                    grad_v[:, :end].baddbmm_(weights.to(v.dtype).transpose(1, 2), grad_rows)
                    grad_weights = torch.bmm(grad_rows, v[:, :end].transpose(1, 2))
                    grad_scores = weights * (grad_weights - (grad_weights * weights).sum(-1, keepdim=True))
                    grad_scores = grad_scores.to(q.dtype)
                    grad_q[:, rows] = torch.bmm(grad_scores, k[:, :end])
                    grad_k[:, :end].baddbmm_(grad_scores.transpose(1, 2), q[:, rows])
                return grad_q, grad_k, grad_v, None

        return _Function


@functools.lru_cache(maxsize=64)
def _causal_bias(start: int, end: int, group: int, dtype):
    """[(end - start) * group, end] additive mask: -inf where a query row's position precedes the key (read only)."""
    import torch

    rows = end - start
    future = torch.ones(rows, end, dtype=torch.bool).triu(start + 1).repeat_interleave(group, dim=0)
    return torch.zeros(rows * group, end, dtype=dtype).masked_fill_(future, float("-inf"))


class FusedRMSNorm:
    """RMSNorm through torch's fused CPU kernel, with the backward pass written out (torch has none on CPU)."""

    @staticmethod
    @functools.cache
    def function():
        import torch

        class _Function(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, weight, eps):
                y, rstd = torch.ops.aten._fused_rms_norm(x, [x.shape[-1]], weight, eps)
                ctx.save_for_backward(x, weight, rstd)
                return y

            @staticmethod
            def backward(ctx, grad):
                x, weight, rstd = ctx.saved_tensors
                xf = x.float()
                weighted = grad.float() * weight.float()
                mean = (weighted * xf).mean(-1, keepdim=True)
                grad_x = torch.addcmul(weighted, xf, mean * rstd.square(), value=-1).mul_(rstd).to(x.dtype)
                grad_weight = None
                if ctx.needs_input_grad[1]:
                    grad_weight = (grad.float() * xf * rstd).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
                return grad_x, grad_weight, None

        return _Function


# ---------------------------------------------------------------- choosing and running a step

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
