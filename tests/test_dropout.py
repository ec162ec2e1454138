"""LoRA dropout: seeded 16-bit draws at the requested rate, FastDropout in place of nn.Dropout."""
import torch

from granite_fixtures import tiny_granite
from lendsafe.train.dropout import DropoutDraws, FastDropout, use_fast_dropout


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


def test_every_lora_dropout_is_swapped_and_projections_of_one_input_share_a_draw():
    model = tiny_granite(dropout=0.1)
    swapped = use_fast_dropout(model, 0.1, seed=4)
    assert swapped == 2 * 7
    dropouts = {name: module.lora_dropout["default"] for name, module in model.named_modules()
                if hasattr(module, "lora_dropout")}
    q, k, o = (dropouts[f"base_model.model.model.layers.0.self_attn.{n}"] for n in ("q_proj", "k_proj", "o_proj"))
    assert q.shared is k.shared and q.shared is not o.shared
