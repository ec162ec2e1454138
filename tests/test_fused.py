"""The fused Granite step computes the stock model's loss and gradients."""
import pytest
import torch

from granite_fixtures import loss_and_gradients, padded_batch, relative_errors, tiny_granite
from lendsafe.train import kernels
from lendsafe.train.finetune import LORA_TARGETS
from lendsafe.train.fused import FusedGraniteStep, fusable
from lendsafe.train.trainstep import stock_target_loss


@pytest.fixture(autouse=True)
def small_query_blocks(monkeypatch):
    monkeypatch.setattr(kernels, "QUERY_BLOCK", 16)


def test_a_plain_granite_with_lora_on_every_projection_is_fused():
    assert fusable(tiny_granite())

def test_fused_step_computes_the_stock_loss_and_gradients_in_float32():
    model = tiny_granite()
    batch = padded_batch()
    stock_loss, stock_grads = loss_and_gradients(model, lambda: stock_target_loss(model, batch, train=False))
    fused_loss, fused_grads = loss_and_gradients(model, lambda: FusedGraniteStep(model, 0.0).loss(batch, train=False))
    assert fused_loss == pytest.approx(stock_loss, rel=1e-5)
    assert len(fused_grads) == 2 * len(LORA_TARGETS) * 2
    assert max(relative_errors(fused_grads, stock_grads)) < 1e-4


def test_fused_step_in_bfloat16_is_as_close_to_float32_as_transformers_eager_attention():
    """Same arithmetic class as the eager path (bf16 products, float32 softmax): typical gradient error no larger."""
    import statistics

    reference, model = tiny_granite(), tiny_granite(torch.bfloat16)
    model.set_attn_implementation("eager")
    eager_errors, fused_errors = [], []
    for seed in (1, 2, 3):
        batch = padded_batch(seed=seed)
        _, exact = loss_and_gradients(reference, lambda: stock_target_loss(reference, batch, train=False))
        _, eager = loss_and_gradients(model, lambda: stock_target_loss(model, batch, train=False))
        _, fused = loss_and_gradients(model, lambda: FusedGraniteStep(model, 0.0).loss(batch, train=False))
        eager_errors.append(statistics.median(relative_errors(eager, exact)))
        fused_errors.append(statistics.median(relative_errors(fused, exact)))
        assert max(relative_errors(fused, exact)) < 0.2
    assert statistics.mean(fused_errors) < 1.25 * statistics.mean(eager_errors)


def test_padding_is_invisible_to_the_loss():
    step = FusedGraniteStep(tiny_granite(), 0.0)
    with torch.no_grad():
        assert step.loss(padded_batch(pad_id=0), train=False).item() == pytest.approx(
            step.loss(padded_batch(pad_id=7), train=False).item(), rel=1e-6)


def test_dropout_changes_training_losses_but_never_validation_losses():
    model = tiny_granite()
    batch = padded_batch()
    dropped, clean = FusedGraniteStep(model, 0.5, seed=3), FusedGraniteStep(model, 0.0)
    with torch.no_grad():
        first, second = dropped.loss(batch).item(), dropped.loss(batch).item()
        assert first != second
        assert dropped.loss(batch, train=False).item() == clean.loss(batch, train=False).item()
        again = FusedGraniteStep(model, 0.5, seed=3)
        assert again.loss(batch).item() == first
