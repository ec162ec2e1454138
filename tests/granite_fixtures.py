"""A tiny random Granite with LoRA and a right-padded batch: shared by the training-step test files."""
import torch

from lendsafe.lm.loading import MODEL_LOADING
from lendsafe.train.finetune import LORA_TARGETS
from lendsafe.train.kernels import IGNORE_INDEX

LENGTHS = (40, 33, 25)   # right-padded to 40; with 16-row query blocks, attention runs in three blocks


def tiny_granite(dtype=torch.float32, targets=LORA_TARGETS, dropout=0.0, **overrides):
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
        lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=list(targets), init_lora_weights=False)
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
