"""Int8 decoding weights: close to the linear layer for decoding steps, the bfloat16 weights for prompts."""
from lendsafe.explain.int8 import INT8_MAX_ROWS, add_int8_decoding_weights, int8_state, int8_weights_for_every_row


def test_int8_decoding_weights_match_the_linear_layer_and_leave_prompts_in_bfloat16():
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False)).to(torch.bfloat16)
    reference = model[0].weight.float()
    assert add_int8_decoding_weights(model) == 1
    step = torch.randn(3, 1, 64, dtype=torch.bfloat16)
    expected = step.float() @ reference.T
    error = (model(step).float() - expected).abs().max() / expected.abs().max()
    assert error < 0.03
    prompt = torch.randn(1, INT8_MAX_ROWS + 1, 64, dtype=torch.bfloat16)
    assert torch.equal(model(prompt), torch.nn.functional.linear(prompt, model[0].linear.weight))


def test_int8_state_gives_back_the_same_layers_and_every_row_can_use_them():
    import torch

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False)).to(torch.bfloat16)
    add_int8_decoding_weights(model)
    state = int8_state(model)
    assert sorted(state) == ["0.qweight", "0.scale"] and state["0.qweight"].dtype == torch.int8
    copy = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False)).to(torch.bfloat16)
    copy[0].weight.data.copy_(model[0].linear.weight)
    add_int8_decoding_weights(copy, state)
    prompt = torch.randn(1, INT8_MAX_ROWS + 1, 64, dtype=torch.bfloat16)
    with int8_weights_for_every_row(model):
        assert model[0].max_rows is None
        every_row = model(prompt)
    assert model[0].max_rows == INT8_MAX_ROWS
    assert torch.equal(every_row[:, :1], model(prompt[:, :1]))          # each row as one decoding step gives it
    assert torch.equal(model(prompt[:, :1]), copy(prompt[:, :1]))       # the saved weights compute the same
