"""``FusedGraniteStep``: the training loss of a peft-wrapped Granite model, computed for speed from peft's
own parameters.

Through the stock modules most of a step goes outside the matrix products: peft applies each LoRA
update as separate bf16 element-wise passes, SDPA's CPU flash kernel runs well below the machine's
matmul rate at these lengths, and every fresh large tensor page-faults. The fused step computes the
same loss from the same parameters (tests compare losses and gradients with the stock model):

* q/k/v and gate/up as one frozen product each; every LoRA update added inside ``addmm_``, its scale
  (and dropout's 1/(1-p)) applied on the rank-r side;
* LoRA dropout as one masked fill from 16-bit random draws, one draw shared by the projections that
  read the same input (``lendsafe.train.dropout``);
* causal attention in query blocks, RMSNorm and the chunked head loss (``lendsafe.train.kernels``); no
  padding mask, because batches are right-padded and under a causal mask no real token sees a pad.

Bases outside ``FUSED_ARCHITECTURES`` (a mixture-of-experts Granite, say) train through the stock
modules (``lendsafe.train.trainstep``).
"""
from __future__ import annotations

from lendsafe.train.dropout import DropoutDraws
from lendsafe.train.kernels import BlockedCausalAttention, FusedRMSNorm, target_cross_entropy

FUSED_ARCHITECTURES = ("GraniteForCausalLM",)
PROJECTION_GROUPS = (("q_proj", "k_proj", "v_proj"), ("o_proj",), ("gate_proj", "up_proj"), ("down_proj",))


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
