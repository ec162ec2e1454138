"""The LoRA training step: which step a model trains with, the master-weight optimizer, kept memory."""
import pytest
import torch

from granite_fixtures import padded_batch, tiny_granite
from lendsafe.train import kernels
from lendsafe.train.fused import FusedGraniteStep, fusable
from lendsafe.train.trainstep import MasterWeightOptimizer, StockStep, keep_freed_memory, training_step


@pytest.fixture(autouse=True)
def small_query_blocks(monkeypatch):
    monkeypatch.setattr(kernels, "QUERY_BLOCK", 16)


def test_a_fusable_model_trains_with_the_fused_step():
    assert isinstance(training_step(tiny_granite(), 0.05), FusedGraniteStep)


@pytest.mark.parametrize("variant", [{"mlp_bias": True}, {"attention_bias": True}, {"hidden_act": "gelu"},
                                     {"targets": ("q_proj", "v_proj")}])
def test_bases_the_fused_step_does_not_reproduce_train_through_the_stock_modules(variant):
    model = tiny_granite(**variant)
    assert not fusable(model)
    step = training_step(model, 0.05)
    assert isinstance(step, StockStep)
    assert torch.isfinite(step.loss(padded_batch()))


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
