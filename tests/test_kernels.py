"""The fused step's kernels: the chunked head loss against torch (attention and RMSNorm through the fused step)."""
import pytest
import torch

from lendsafe.train.kernels import ChunkedHeadLoss, FusedRMSNorm, _query_blocks


@pytest.mark.parametrize("scaling", [1.0, 1.5])
def test_chunked_head_loss_matches_torch_and_its_gradient(scaling):
    generator = torch.Generator().manual_seed(0)
    rows = 2 * ChunkedHeadLoss.ROWS + 9
    hidden = torch.randn(rows, 32, generator=generator).requires_grad_()
    weight = 0.5 * torch.randn(500, 32, generator=generator)
    labels = torch.randint(0, 500, (rows,), generator=generator)
    expected = torch.nn.functional.cross_entropy(torch.nn.functional.linear(hidden, weight) / scaling, labels)
    (expected_grad,) = torch.autograd.grad(2 * expected, hidden)
    loss = ChunkedHeadLoss.function().apply(hidden, weight, labels, scaling)
    (grad,) = torch.autograd.grad(2 * loss, hidden)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    with torch.no_grad():
        assert ChunkedHeadLoss.function().apply(hidden, weight, labels, scaling).item() == pytest.approx(loss.item())


def test_a_trainable_head_is_refused():
    weight = torch.randn(50, 8, requires_grad=True)
    with pytest.raises(ValueError, match="frozen LM head"):
        ChunkedHeadLoss.function().apply(torch.randn(3, 8), weight, torch.tensor([1, 2, 3]), 1.0)


def test_fused_rms_norm_matches_the_formula_and_its_gradient():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 16, generator=generator, dtype=torch.float64).requires_grad_()
    weight = torch.randn(16, generator=generator, dtype=torch.float64).requires_grad_()
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight
    grads = torch.autograd.grad(expected.sum(), (x, weight))
    out = FusedRMSNorm.function().apply(x, weight, 1e-6)
    assert torch.allclose(out, expected)
    assert all(torch.allclose(a, b) for a, b in zip(torch.autograd.grad(out.sum(), (x, weight)), grads))


def test_query_blocks_cover_every_position_once():
    for length in (1, 95, 96, 97, 400):
        blocks = _query_blocks(length)
        assert blocks[0][0] == 0 and blocks[-1][1] == length
        assert all(end == start for (_, end), (start, _) in zip(blocks, blocks[1:]))
