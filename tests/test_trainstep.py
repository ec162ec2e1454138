"""The LoRA training step: the fused Granite step computes the stock model's loss and gradients."""
import pytest
import torch

from lendsafe.train import trainstep
from lendsafe.train.finetune import LORA_TARGETS
from lendsafe.lm.loading import MODEL_LOADING
from lendsafe.train.trainstep import (IGNORE_INDEX, ChunkedHeadLoss, DropoutDraws, FastDropout, FusedGraniteStep,
                                MasterWeightOptimizer, StockStep, fusable, keep_freed_memory, stock_target_loss,
                                training_step)

LENGTHS = (40, 33, 25)   # right-padded to 40; with 16-row query blocks, attention runs in three blocks


def tiny_granite(dtype=torch.float32, targets=LORA_TARGETS, **overrides):
    """A random two-layer Granite with non-trivial multipliers and random (non-zero) LoRA weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import GraniteConfig, GraniteForCausalLM

    config = GraniteConfig(**{"vocab_size": 96, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
                              "embedding_multiplier": 2.0, "residual_multiplier": 0.5, "attention_multiplier": 0.25,
                              "logits_scaling": 1.5, "tie_word_embeddings": True, "pad_token_id": 0, **overrides})
    with MODEL_LOADING:   # construction initialises weights through torch.nn.init, which a concurrent load patches
        torch.manual_seed(0)
        model = GraniteForCausalLM(config).to(dtype)
        lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=list(targets), init_lora_weights=False)
        return get_peft_model(model, lora, autocast_adapter_dtype=False)


def padded_batch(pad_id: int = 0, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    width = max(LENGTHS)
    ids = torch.full((len(LENGTHS), width), pad_id)
    labels = torch.full((len(LENGTHS), width), IGNORE_INDEX)
    mask = torch.zeros((len(LENGTHS), width), dtype=torch.long)
    for row, length in enumerate(LENGTHS):
        ids[row, :length] = torch.randint(1, 96, (length,), generator=generator)
        labels[row, length // 2:length] = ids[row, length // 2:length]
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def loss_and_gradients(model, compute) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    return loss.item(), {n: p.grad.float().clone() for n, p in model.named_parameters() if p.requires_grad}


def relative_errors(grads: dict, reference: dict) -> list[float]:
    return [((grads[n] - reference[n]).norm() / reference[n].norm()).item() for n in reference]


@pytest.fixture(autouse=True)
def small_query_blocks(monkeypatch):
    monkeypatch.setattr(trainstep, "QUERY_BLOCK", 16)


def test_a_plain_granite_with_lora_on_every_projection_is_fused():
    assert fusable(tiny_granite())
    assert isinstance(training_step(tiny_granite(), 0.05), FusedGraniteStep)


@pytest.mark.parametrize("variant", [{"mlp_bias": True}, {"attention_bias": True}, {"hidden_act": "gelu"},
                                     {"targets": ("q_proj", "v_proj")}])
def test_bases_the_fused_step_does_not_reproduce_train_through_the_stock_modules(variant):
    model = tiny_granite(**variant)
    assert not fusable(model)
    step = training_step(model, 0.05)
    assert isinstance(step, StockStep)
    assert torch.isfinite(step.loss(padded_batch()))


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


def test_dropout_draws_drop_at_the_requested_rate_reproducibly():
    ones = torch.ones(400_000)
    dropped = DropoutDraws(0.05, seed=1).dropped(ones)
    assert abs((dropped == 0).float().mean().item() - 0.05) < 0.003
    assert torch.equal(dropped, DropoutDraws(0.05, seed=1).dropped(ones))
    assert not torch.equal(dropped, DropoutDraws(0.05, seed=2).dropped(ones))


def test_fast_dropout_keeps_the_mean_and_is_identity_in_evaluation():
    dropout = FastDropout.module(0.05).train()
    out = dropout(torch.ones(200_000))
    assert abs((out == 0).float().mean().item() - 0.05) < 0.005
    assert abs(out.mean().item() - 1.0) < 0.02
    assert torch.equal(dropout.eval()(torch.ones(10)), torch.ones(10))


def test_master_weights_accumulate_updates_too_small_for_bfloat16():
    param = torch.nn.Parameter(torch.full((4,), 256.0, dtype=torch.bfloat16))
    optimizer = MasterWeightOptimizer([param], lr=0.25)
    for _ in range(8):
        param.grad = torch.ones_like(param)
        optimizer.step(0.25)
    assert optimizer.masters[0][0].item() == pytest.approx(254.0, abs=0.01)
    assert param.dtype == torch.bfloat16 and param[0].item() == 254.0


def test_freed_memory_is_kept_on_linux():
    import sys

    assert keep_freed_memory() is sys.platform.startswith("linux")
