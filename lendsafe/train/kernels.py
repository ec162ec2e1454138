"""The fused training step's autograd functions, forward and backward written out for CPU:

* ``ChunkedHeadLoss``: the LM head and a float32 cross-entropy on target positions only, in row chunks;
* ``BlockedCausalAttention``: causal attention in query blocks, each against only the keys it may see
  (bf16 products and float32 softmax, the arithmetic of transformers' eager attention);
* ``FusedRMSNorm``: torch's fused RMSNorm kernel with its backward pass.

Built lazily: torch stays out of ``import lendsafe``.
"""
from __future__ import annotations

import functools
import math

IGNORE_INDEX = -100         # label of a position that is not a target (prompt, padding)
QUERY_BLOCK = 96            # query rows per attention block: fewer masked-out products, few calls


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
